//! A bounded HTTP load generator for the serving benchmarks: closed-loop or fixed-rate, latency percentiles, status counts.

fn main() {}
