//! CPU compute kernels of taxon on plain slices, below the model code: fused float ops for
//! the transformer ([`fused`]), the f32 matrix product ([`matmul`]) and the int8 matmul
//! ([`int8`]), and the allocator settings their big per-step buffers want ([`memory`]).
//! Every kernel has a portable fallback and picks its SIMD path (AVX-512, VNNI, AVX2 on x86-64;
//! NEON and its dot-product extension on aarch64) at run time from one process-wide
//! [`dispatch::Level`]: the best this CPU runs, or the one `TAXON_KERNELS` forces
//! (`avx512|avx2|portable`, `neon-dotprod|neon|portable`); [`paths`] reports what runs. So one
//! binary runs on any x86-64 or aarch64 CPU (and elsewhere), and every path can be tested and
//! measured on a CPU that has it.
//!
//! `unsafe` is denied across the workspace; the SIMD modules here are the one place that
//! allows it, each call behind a run-time feature check with a `SAFETY:` comment, and every
//! public function is safe.

pub mod dispatch;
pub mod fused;
pub mod int8;
pub mod matmul;
pub mod memory;

pub use dispatch::{Level, Paths, paths};
