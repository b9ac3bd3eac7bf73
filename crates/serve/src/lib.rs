//! The inference server: HTTP API, adaptive batching, cache, backpressure and hot model swap.
