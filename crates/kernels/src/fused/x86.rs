//! Run-time dispatch of the fused row kernels by [`Level`]: on x86-64 at `avx512` (with
//! AVX-512F, AVX2 and FMA present), a copy of each kernel compiled with those features (the
//! compiler vectorizes the generic code of `super::rows` with 512-bit registers); at `avx2`
//! (or `avx512` on a CPU with AVX2 and FMA only), a copy compiled for those (256-bit
//! registers); otherwise, and elsewhere, the portable copy. The level is a ceiling: a copy runs
//! only when the CPU has its features, whatever level is asked for. On aarch64 the portable
//! copy runs at every level, compiled for the target's baseline (NEON and FMA, so `mul_add` is
//! one `fmadd`). GELU's blocks (`super::gelu_block`) vectorize there too (4-lane `fmla` and
//! `fdiv` in the disassembly of a release build, Rust 1.96); the other kernels have no NEON
//! copy of their own yet, so `paths()` reports `fused=portable`.
//!
//! The only `unsafe` here calls a `#[target_feature]` function, right after
//! [`Level::supported`] has confirmed that this CPU has every feature it enables.
#![allow(unsafe_code)]

use super::{AdamWStep, rows};
use crate::dispatch::Level;

/// Which compiled copy of the row kernels runs at a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// `avx512f,avx2,fma`.
    #[cfg(target_arch = "x86_64")]
    Avx512,
    /// `avx2,fma`.
    #[cfg(target_arch = "x86_64")]
    Avx2,
    /// The target's baseline (NEON on aarch64).
    Portable,
}

impl Variant {
    /// The fastest copy at or below `level` that this CPU runs.
    pub(crate) fn at(level: Level) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if level >= Level::Avx512 && Level::Avx512.supported() {
                return Self::Avx512;
            }
            if level >= Level::Avx2 && Level::Avx2.supported() {
                return Self::Avx2;
            }
        }
        let _ = level;
        Self::Portable
    }

    /// The name [`crate::dispatch::paths`] reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => "avx512",
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => "avx2-fma",
            Self::Portable => "portable",
        }
    }
}

/// Declares, for each kernel, an AVX-512 and an AVX2 copy and a safe dispatcher that picks
/// the copy of a level.
macro_rules! dispatch {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*); )*) => {
        /// The kernels compiled with AVX-512 enabled.
        #[cfg(target_arch = "x86_64")]
        mod avx512 {
            use super::{AdamWStep, rows};
            $(
                #[target_feature(enable = "avx512f,avx2,fma")]
                pub(super) fn $name($($arg: $ty),*) {
                    rows::$name($($arg),*)
                }
            )*
        }

        /// The kernels compiled with AVX2 and FMA enabled.
        #[cfg(target_arch = "x86_64")]
        mod avx2 {
            use super::{AdamWStep, rows};
            $(
                #[target_feature(enable = "avx2,fma")]
                pub(super) fn $name($($arg: $ty),*) {
                    rows::$name($($arg),*)
                }
            )*
        }

        $(
            $(#[$doc])*
            #[inline]
            // The kernel's own arguments plus the level: layer norm's backward pass has seven.
            #[allow(clippy::too_many_arguments)]
            pub(crate) fn $name(level: Level, $($arg: $ty),*) {
                match Variant::at(level) {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `Variant::at` picks this copy only when the CPU supports
                    // `Level::Avx512` (avx512f, avx512bw, avx2 and fma), which covers the
                    // features `avx512::$name` is compiled with; its body is safe code.
                    Variant::Avx512 => unsafe { avx512::$name($($arg),*) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: `Variant::at` picks this copy only when the CPU has avx2 and fma,
                    // the only features `avx2::$name` is compiled with; its body is safe code.
                    Variant::Avx2 => unsafe { avx2::$name($($arg),*) },
                    _ => rows::$name($($arg),*),
                }
            }
        )*
    };
}

/// Like `dispatch!`, for kernels that return a value.
macro_rules! dispatch_ret {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        $(
            $(#[$doc])*
            #[inline]
            pub(crate) fn $name(level: Level, $($arg: $ty),*) -> $ret {
                #[cfg(target_arch = "x86_64")]
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn fast($($arg: $ty),*) -> $ret {
                    rows::$name($($arg),*)
                }
                #[cfg(target_arch = "x86_64")]
                #[target_feature(enable = "avx2,fma")]
                fn fma($($arg: $ty),*) -> $ret {
                    rows::$name($($arg),*)
                }
                match Variant::at(level) {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as in `dispatch!`: the CPU supports `Level::Avx512`, which covers
                    // the features `fast` is compiled with; its body is safe code.
                    Variant::Avx512 => unsafe { fast($($arg),*) },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: the CPU has avx2 and fma, the features of `fma`.
                    Variant::Avx2 => unsafe { fma($($arg),*) },
                    _ => rows::$name($($arg),*),
                }
            }
        )*
    };
}

dispatch_ret! {
    /// [`rows::sum_squares`].
    fn sum_squares(x: &[f32]) -> f32;
}

dispatch! {
    /// [`rows::gelu`].
    fn gelu(x: &[f32], bias: &[f32], y: &mut [f32]);
    /// [`rows::gelu_backward`].
    fn gelu_backward(x: &[f32], bias: &[f32], dy: &[f32], dx: &mut [f32]);
    /// [`rows::softmax`].
    fn softmax(x: &[f32], bias: &[f32], cols: usize, scale: f32, y: &mut [f32]);
    /// [`rows::softmax_backward`].
    fn softmax_backward(y: &[f32], dy: &[f32], cols: usize, scale: f32, dx: &mut [f32]);
    /// [`rows::layer_norm`].
    fn layer_norm(x: &[f32], bias: &[f32], residual: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]);
    /// [`rows::dropout`].
    fn dropout(x: &[f32], seed: u64, first: u64, p: f32, y: &mut [f32]);
    /// [`rows::adamw`].
    fn adamw(theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: &AdamWStep);
    /// [`rows::layer_norm_backward`].
    fn layer_norm_backward(x: &[f32], w: &[f32], dy: &[f32], eps: f32, dx: &mut [f32], dwb: &mut [f32]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-scale, scale).
    fn values(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
            })
            .collect()
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    /// Every kernel's outputs at one level: the same operations in the same order in every
    /// copy (lane-wise partial sums, multiply-adds fused in hardware or in libm, no other
    /// contraction), so the bits must match the portable copy's.
    fn outputs(level: Level) -> Vec<(&'static str, Vec<u32>)> {
        // 3 rows of 45: a vector body and a tail in every copy.
        let cols = 45;
        let n = 3 * cols;
        let x = values(n, 1, 6.0);
        let bias = values(cols, 2, 1.0);
        let dy = values(n, 3, 1.0);
        let res = values(n, 4, 2.0);
        let (w, b) = (values(cols, 5, 1.5), values(cols, 6, 0.5));
        let mut out = Vec::new();
        let mut y = vec![0f32; n];
        gelu(level, &x, &bias, &mut y);
        out.push(("gelu", bits(&y)));
        gelu(level, &x, &[], &mut y);
        out.push(("gelu without bias", bits(&y)));
        gelu_backward(level, &x, &bias, &dy, &mut y);
        out.push(("gelu backward", bits(&y)));
        softmax(level, &x, &bias, cols, 0.7, &mut y);
        out.push(("softmax", bits(&y)));
        let p = y.clone();
        softmax_backward(level, &p, &dy, cols, 0.7, &mut y);
        out.push(("softmax backward", bits(&y)));
        layer_norm(level, &x, &bias, &res, &w, &b, 1e-5, &mut y);
        out.push(("layer norm", bits(&y)));
        let mut dwb = vec![0f32; 2 * cols];
        layer_norm_backward(level, &x, &w, &dy, 1e-5, &mut y, &mut dwb);
        out.push(("layer norm backward dx", bits(&y)));
        out.push(("layer norm backward dw, db", bits(&dwb)));
        dropout(level, &x, 7, 100, 0.3, &mut y);
        out.push(("dropout", bits(&y)));
        out.push(("sum of squares", bits(&[sum_squares(level, &x)])));
        let (mut t, mut m, mut v) = (
            x.clone(),
            dy.clone(),
            res.iter().map(|a| a * a).collect::<Vec<f32>>(),
        );
        let step = AdamWStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            t: 3,
            grad_scale: 0.5,
        };
        adamw(level, &mut t, &mut m, &mut v, &dy, &step);
        out.push(("adamw", [bits(&t), bits(&m), bits(&v)].concat()));
        out
    }

    #[test]
    fn every_level_this_cpu_runs_gives_the_portable_bits() {
        let want = outputs(Level::Portable);
        for level in Level::supported_levels() {
            for ((name, got), (_, w)) in outputs(level).iter().zip(&want) {
                assert_eq!(got, w, "{name} at {level}");
            }
        }
    }

    #[test]
    fn the_variant_never_exceeds_the_level_or_the_cpu() {
        assert_eq!(Variant::at(Level::Portable), Variant::Portable);
        for level in Level::ALL {
            let v = Variant::at(level);
            let needs = match v {
                #[cfg(target_arch = "x86_64")]
                Variant::Avx512 => Level::Avx512,
                #[cfg(target_arch = "x86_64")]
                Variant::Avx2 => Level::Avx2,
                Variant::Portable => Level::Portable,
            };
            assert!(needs <= level && needs.supported(), "{v:?} at {level}");
        }
    }
}
