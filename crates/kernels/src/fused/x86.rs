//! Run-time dispatch of the fused row kernels: on x86-64 with AVX-512 (F, with AVX2 and FMA),
//! a copy of each kernel compiled with those features (the compiler vectorizes the generic
//! code of `super::rows` with 512-bit registers); with AVX2 and FMA only, a copy compiled for
//! those (256-bit registers); elsewhere the portable copy.
//!
//! The only `unsafe` here calls a `#[target_feature]` function, right after
//! `is_x86_feature_detected!` has confirmed that this CPU has every feature it enables.
#![allow(unsafe_code)]

use super::{AdamWStep, rows};

/// Declares, for each kernel, an AVX-512 copy and a safe dispatcher that picks it when the CPU
/// has the features, else the portable copy.
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
            pub(crate) fn $name($($arg: $ty),*) {
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has avx512f, avx2 and fma (checked just above), the
                    // only features `avx512::$name` is compiled with; its body is safe code.
                    return unsafe { avx512::$name($($arg),*) };
                }
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has avx2 and fma (checked just above), the only features
                    // `avx2::$name` is compiled with; its body is safe code.
                    return unsafe { avx2::$name($($arg),*) };
                }
                rows::$name($($arg),*)
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
            pub(crate) fn $name($($arg: $ty),*) -> $ret {
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
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has avx512f, avx2 and fma (checked just above), the
                    // only features `fast` is compiled with; its body is safe code.
                    return unsafe { fast($($arg),*) };
                }
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has avx2 and fma (checked just above), the only features
                    // `fma` is compiled with; its body is safe code.
                    return unsafe { fma($($arg),*) };
                }
                rows::$name($($arg),*)
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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::{avx2, avx512, rows};

    type Gelu = fn(&[f32], &[f32], &mut [f32]);
    type Softmax = fn(&[f32], &[f32], usize, f32, &mut [f32]);

    /// GELU and softmax give the same bits in every copy this CPU runs: the same operations
    /// in the same order, the multiply-adds fused in each (in hardware or in libm).
    #[test]
    fn every_copy_gives_the_portable_bits() {
        let x: Vec<f32> = (0..300)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.13)
            .collect();
        let bias: Vec<f32> = (0..30).map(|i| (i as f32 - 15.0) * 0.05).collect();
        let mut want = (vec![0f32; 300], vec![0f32; 300]);
        rows::gelu(&x, &bias, &mut want.0);
        rows::softmax(&x, &[], 30, 0.7, &mut want.1);
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        let mut copies: Vec<(&str, Gelu, Softmax)> = Vec::new();
        let has = |f: &str| match f {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            _ => std::arch::is_x86_feature_detected!("fma"),
        };
        if has("avx512f") && has("avx2") && has("fma") {
            copies.push((
                "avx512",
                // SAFETY: the CPU has the features these copies are compiled with (checked
                // just above).
                |x, b, y| unsafe { avx512::gelu(x, b, y) },
                |x, b, c, s, y| unsafe { avx512::softmax(x, b, c, s, y) },
            ));
        }
        if has("avx2") && has("fma") {
            copies.push((
                "avx2",
                // SAFETY: as above.
                |x, b, y| unsafe { avx2::gelu(x, b, y) },
                |x, b, c, s, y| unsafe { avx2::softmax(x, b, c, s, y) },
            ));
        }
        for (name, gelu, softmax) in copies {
            let mut got = (vec![0f32; 300], vec![0f32; 300]);
            gelu(&x, &bias, &mut got.0);
            softmax(&x, &[], 30, 0.7, &mut got.1);
            assert_eq!(bits(&got.0), bits(&want.0), "{name} gelu");
            assert_eq!(bits(&got.1), bits(&want.1), "{name} softmax");
        }
    }
}
