//! The int8 matmul of quantized linear layers: symmetric per-output-channel int8 weights times
//! dynamically quantized activations, with i32 accumulation (AVX-512 VNNI when present).
