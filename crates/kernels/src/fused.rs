//! Fused float kernels of the transformer on row-major slices (GELU, softmax, layer norm),
//! forward and backward.
