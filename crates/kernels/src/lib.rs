//! CPU compute kernels of taxon on plain slices, below the model code: fused float ops for
//! the transformer ([`fused`]) and the int8 matmul ([`int8`]), and the allocator settings
//! their big per-step buffers want ([`memory`]). Every kernel has a portable
//! fallback and picks its SIMD path (AVX-512, VNNI) at run time, so one binary runs on any
//! x86-64 (and elsewhere).
//!
//! `unsafe` is denied across the workspace; the SIMD modules here are the one place that
//! allows it, each call behind a run-time feature check with a `SAFETY:` comment, and every
//! public function is safe.

pub mod fused;
pub mod int8;
pub mod matmul;
pub mod memory;
