//! Fused float kernels of the transformer on row-major slices (GELU, softmax, layer norm),
//! forward and backward.
//!
//! Each kernel makes one pass (or a few passes over one row held in L1) where a graph of
//! primitive tensor ops makes one pass and one allocation per op. The math is written so the
//! compiler vectorizes it: `exp` and `erf` are branch-free polynomial approximations
//! ([`exp_approx`], [`erf_approx`]; GELU's normal CDF from `erfc`, accurate relative to its
//! value in the negative tail) instead of scalar libm calls, and row reductions keep
//! 16 lane-wise partial sums. GELU and softmax's exponential run on blocks of 32 values one
//! formula step at a time (`gelu_block`, `exp_block`), so several independent vectors hide
//! each other's latency (GELU 1.5x faster on AVX2). The row kernels are compiled three times, portably, for AVX2 + FMA
//! and for AVX-512, and the process's [`crate::dispatch::level`] picks the copy at run time
//! (see the `x86` submodule; every copy gives the same bits); rows are split over rayon's
//! threads when there are many.
//!
//! Shapes: a row-major matrix is a slice plus its row length `cols`; every function checks its
//! lengths and answers a [`ShapeError`] naming the argument instead of panicking.

use rayon::prelude::*;

mod x86;

/// The copy of the fused kernels that runs at `level` on this CPU: `avx512`, `avx2-fma` or
/// `portable`.
pub(crate) fn path_at(level: crate::dispatch::Level) -> &'static str {
    x86::Variant::at(level).name()
}

/// Elements per parallel task: below this much work a kernel stays on the calling thread.
const GRAIN: usize = 1 << 15;

/// A slice whose length does not fit the shape a kernel was asked to work on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShapeError {
    /// The kernel.
    pub kernel: &'static str,
    /// What was wrong, naming the argument.
    pub message: String,
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kernel, self.message)
    }
}

impl std::error::Error for ShapeError {}

fn check(
    kernel: &'static str,
    ok: bool,
    message: impl FnOnce() -> String,
) -> Result<(), ShapeError> {
    if ok {
        Ok(())
    } else {
        Err(ShapeError {
            kernel,
            message: message(),
        })
    }
}

/// Checks that `len` is a whole number of rows of `cols` (`cols > 0`); the row count.
fn rows_of(kernel: &'static str, name: &str, len: usize, cols: usize) -> Result<usize, ShapeError> {
    check(kernel, cols > 0, || "row length (cols) is 0".into())?;
    check(kernel, len % cols == 0, || {
        format!("{name} has {len} elements, not a multiple of the row length {cols}")
    })?;
    Ok(len / cols)
}

fn same_len(kernel: &'static str, name: &str, len: usize, want: usize) -> Result<(), ShapeError> {
    check(kernel, len == want, || {
        format!("{name} has {len} elements, expected {want}")
    })
}

/// Rows per parallel task for rows of `cols` elements.
fn rows_per_task(cols: usize) -> usize {
    (GRAIN / cols.max(1)).max(1)
}

// ---------------------------------------------------------------------------------------------
// Scalar building blocks (inlined into the row kernels, where they vectorize).

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to an integer, held in the low
/// mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// Cephes' minimax polynomial for `e^f` on [-ln2/2, ln2/2] (highest degree first; see
/// [`exp_approx`]).
const EXP_POLY: [f32; 6] = [
    1.987_569_2e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// Numerical Recipes' Chebyshev fit of `erfc(z) e^(z^2)` in `t = 1 / (1 + z/2)` (highest
/// degree first; see `erfc_nonneg`).
const ERFC_POLY: [f32; 10] = [
    0.170_872_77,
    -0.822_152_23,
    1.488_515_9,
    -1.135_204,
    0.278_868_07,
    -0.186_288_06,
    0.096_784_18,
    0.374_091_96,
    1.000_023_7,
    -1.265_512_2,
];

/// `e^x` to ~2 ulp for `x` in [-87, 88] (inputs outside are clamped: the result saturates at
/// ~1.6e-38 and ~1.7e38), without branches: `2^n e^f` with `n = round(x / ln 2)`, `f` in
/// [-ln2/2, ln2/2] and Cephes' minimax polynomial for `e^f`. NaN stays NaN. The polynomials
/// here are fused multiply-adds (`mul_add`): one instruction in the kernels' SIMD copies, which
/// enable FMA (twice as fast as a multiply and an add in GELU and softmax), and a libm call
/// in the portable copy, which only CPUs without FMA run.
#[inline(always)]
pub fn exp_approx(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let f = x - n * LN2_HI - n * LN2_LO;
    let mut p = EXP_POLY[0];
    for c in &EXP_POLY[1..] {
        p = p.mul_add(f, *c);
    }
    let e = (p * f).mul_add(f, f) + 1.0;
    // The integer n sits in the low mantissa bits of `shifted`; 2^n by building the exponent.
    let n_int = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
    let scale = f32::from_bits(((n_int + 127) as u32) << 23);
    e * scale
}

/// `erfc(z)` for `z >= 0` to ~1.2e-7 relative (Numerical Recipes' `erfcc`, a Chebyshev fit of
/// `erfc(z) e^(z^2)` in `t = 1 / (1 + z/2)`), branch-free. Relative accuracy in the tail is
/// what keeps GELU accurate for negative inputs, where `1 + erf` would cancel.
#[inline(always)]
fn erfc_nonneg(z: f32) -> f32 {
    let t = 1.0 / 0.5f32.mul_add(z, 1.0);
    let mut p = ERFC_POLY[0];
    for c in &ERFC_POLY[1..] {
        p = p.mul_add(t, *c);
    }
    t * exp_approx((-z).mul_add(z, p))
}

/// The error function, from [`erfc_nonneg`]: within 3e-7 absolute (GELU does not use it: it
/// takes the CDF straight from `erfc`, see `normal_cdf`).
#[inline(always)]
pub fn erf_approx(x: f32) -> f32 {
    let e = erfc_nonneg(x.abs());
    if x < 0.0 { e - 1.0 } else { 1.0 - e }
}

/// The standard normal CDF `Phi(x) = erfc(-x / sqrt 2) / 2`, accurate relative to its value on
/// both sides.
#[inline(always)]
fn normal_cdf(x: f32) -> f32 {
    let half = 0.5 * erfc_nonneg(x.abs() * FRAC_1_SQRT_2);
    if x < 0.0 { half } else { 1.0 - half }
}

const FRAC_1_SQRT_2: f32 = std::f32::consts::FRAC_1_SQRT_2;
/// 1 / sqrt(2 pi).
const INV_SQRT_2PI: f32 = 0.398_942_3;

/// GELU, exact (erf) form: `x Phi(x) = x (1 + erf(x / sqrt 2)) / 2` (Hendrycks & Gimpel 2016).
#[inline(always)]
pub fn gelu_scalar(x: f32) -> f32 {
    x * normal_cdf(x)
}

/// The derivative of [`gelu_scalar`]: `Phi(x) + x phi(x)`.
#[inline(always)]
pub fn gelu_grad_scalar(x: f32) -> f32 {
    normal_cdf(x) + x * INV_SQRT_2PI * exp_approx(-0.5 * x * x)
}

/// Lanes of the partial sums in row reductions (one AVX-512 register of f32).
const LANES: usize = 16;

#[inline(always)]
fn sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn dot(x: &[f32], y: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (a, b) in xc.zip(yc) {
        for ((s, u), v) in acc.iter_mut().zip(a).zip(b) {
            *s += u * v;
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

// ---------------------------------------------------------------------------------------------
// Row kernels: plain loops over one block of rows, `#[inline(always)]` so that each copy in
// `x86` is compiled with that copy's target features.

/// Elements [`gelu_block`] takes at once: four AVX2 vectors, two AVX-512 ones.
const GELU_BLOCK: usize = 32;

/// `normal_cdf` on a block, one step of the formula at a time across the whole block, so the
/// vectorized copy runs the independent vectors of the block side by side: the chain (a
/// division, then two polynomials) is long, and one vector at a time leaves the core waiting
/// on it. The same operations element by element as `normal_cdf`, so the same bits.
#[inline(always)]
fn normal_cdf_block<const N: usize>(x: &[f32; N]) -> [f32; N] {
    let mut z = [0f32; N];
    let mut t = [0f32; N];
    let mut p = [ERFC_POLY[0]; N];
    for i in 0..N {
        z[i] = x[i].abs() * FRAC_1_SQRT_2;
        t[i] = 1.0 / 0.5f32.mul_add(z[i], 1.0);
    }
    for c in &ERFC_POLY[1..] {
        for i in 0..N {
            p[i] = p[i].mul_add(t[i], *c);
        }
    }
    let mut e = [0f32; N];
    for i in 0..N {
        e[i] = (-z[i]).mul_add(z[i], p[i]);
    }
    let e = exp_block(&e);
    let mut cdf = [0f32; N];
    for i in 0..N {
        let half = 0.5 * (t[i] * e[i]);
        cdf[i] = if x[i] < 0.0 { half } else { 1.0 - half };
    }
    cdf
}

/// [`gelu_scalar`] on a block (see [`normal_cdf_block`]); the same bits.
#[inline(always)]
fn gelu_block(x: &[f32; GELU_BLOCK]) -> [f32; GELU_BLOCK] {
    let cdf = normal_cdf_block(x);
    std::array::from_fn(|i| x[i] * cdf[i])
}

/// [`gelu_grad_scalar`] on a block (see [`normal_cdf_block`]); the same bits.
#[inline(always)]
fn gelu_grad_block(x: &[f32; GELU_BLOCK]) -> [f32; GELU_BLOCK] {
    let cdf = normal_cdf_block(x);
    let e = exp_block::<GELU_BLOCK>(&std::array::from_fn(|i| -0.5 * x[i] * x[i]));
    std::array::from_fn(|i| cdf[i] + x[i] * INV_SQRT_2PI * e[i])
}

/// [`exp_approx`] on a block, step by step across it (see [`normal_cdf_block`]); the same bits.
#[inline(always)]
fn exp_block<const N: usize>(x: &[f32; N]) -> [f32; N] {
    let mut shifted = [0f32; N];
    let mut f = [0f32; N];
    for i in 0..N {
        let v = x[i].clamp(-87.0, 88.0);
        shifted[i] = v * LOG2E + ROUND_MAGIC;
        let n = shifted[i] - ROUND_MAGIC;
        f[i] = v - n * LN2_HI - n * LN2_LO;
    }
    let mut p = [EXP_POLY[0]; N];
    for c in &EXP_POLY[1..] {
        for i in 0..N {
            p[i] = p[i].mul_add(f[i], *c);
        }
    }
    let mut y = [0f32; N];
    for i in 0..N {
        let e = (p[i] * f[i]).mul_add(f[i], f[i]) + 1.0;
        let n_int = shifted[i].to_bits().wrapping_sub(ROUND_MAGIC.to_bits()) as i32;
        y[i] = e * f32::from_bits(((n_int + 127) as u32) << 23);
    }
    y
}

/// The row kernels, generic code instantiated per instruction set by `x86`.
pub(crate) mod rows {
    use super::*;

    /// `gelu(x + bias)`, `bias` one row (or empty).
    #[inline(always)]
    pub(crate) fn gelu(x: &[f32], bias: &[f32], y: &mut [f32]) {
        if bias.is_empty() {
            gelu_row(x, None, y);
            return;
        }
        for (yr, xr) in y
            .chunks_exact_mut(bias.len())
            .zip(x.chunks_exact(bias.len()))
        {
            gelu_row(xr, Some(bias), yr);
        }
    }

    /// `y = gelu(x (+ bias))` on one row: blocks of [`GELU_BLOCK`] through [`gelu_block`], the
    /// tail element by element (the same operations, so the same bits).
    #[inline(always)]
    fn gelu_row(x: &[f32], bias: Option<&[f32]>, y: &mut [f32]) {
        let n = x.len().min(y.len());
        let body = n / GELU_BLOCK * GELU_BLOCK;
        let mut v = [0f32; GELU_BLOCK];
        for start in (0..body).step_by(GELU_BLOCK) {
            let end = start + GELU_BLOCK;
            v.copy_from_slice(&x[start..end]);
            if let Some(b) = bias {
                for (a, &c) in v.iter_mut().zip(&b[start..end]) {
                    *a += c;
                }
            }
            y[start..end].copy_from_slice(&gelu_block(&v));
        }
        for i in body..n {
            let v = bias.map_or(x[i], |b| x[i] + b[i]);
            y[i] = gelu_scalar(v);
        }
    }

    #[inline(always)]
    pub(crate) fn gelu_backward(x: &[f32], bias: &[f32], dy: &[f32], dx: &mut [f32]) {
        if bias.is_empty() {
            gelu_backward_row(x, None, dy, dx);
            return;
        }
        let cols = bias.len();
        for ((dr, xr), gr) in dx
            .chunks_exact_mut(cols)
            .zip(x.chunks_exact(cols))
            .zip(dy.chunks_exact(cols))
        {
            gelu_backward_row(xr, Some(bias), gr, dr);
        }
    }

    /// `dx = dy * gelu'(x (+ bias))` on one row, in blocks as [`gelu_row`]. (A shared helper
    /// taking the block formula as a closure measured 40x slower: the closure is compiled
    /// apart, without the copy's target features, so its `mul_add` became libm calls.)
    #[inline(always)]
    fn gelu_backward_row(x: &[f32], bias: Option<&[f32]>, dy: &[f32], dx: &mut [f32]) {
        let n = x.len().min(dy.len()).min(dx.len());
        let body = n / GELU_BLOCK * GELU_BLOCK;
        let mut v = [0f32; GELU_BLOCK];
        for start in (0..body).step_by(GELU_BLOCK) {
            let end = start + GELU_BLOCK;
            v.copy_from_slice(&x[start..end]);
            if let Some(b) = bias {
                for (a, &c) in v.iter_mut().zip(&b[start..end]) {
                    *a += c;
                }
            }
            let grad = gelu_grad_block(&v);
            for ((o, &g), &d) in dx[start..end].iter_mut().zip(&dy[start..end]).zip(&grad) {
                *o = g * d;
            }
        }
        for i in body..n {
            let v = bias.map_or(x[i], |b| x[i] + b[i]);
            dx[i] = dy[i] * gelu_grad_scalar(v);
        }
    }

    /// Rows of `x` (several rows share one `bias` row, `bias` empty for none).
    #[inline(always)]
    pub(crate) fn softmax(x: &[f32], bias: &[f32], cols: usize, scale: f32, y: &mut [f32]) {
        for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
            if bias.is_empty() {
                for (o, &v) in yr.iter_mut().zip(xr) {
                    *o = v * scale;
                }
            } else {
                for ((o, &v), &b) in yr.iter_mut().zip(xr).zip(bias) {
                    *o = v * scale + b;
                }
            }
            let m = max(yr);
            let mut blocks = yr.chunks_exact_mut(GELU_BLOCK);
            for b in &mut blocks {
                let mut v = [0f32; GELU_BLOCK];
                for (a, &o) in v.iter_mut().zip(b.iter()) {
                    *a = o - m;
                }
                b.copy_from_slice(&exp_block(&v));
            }
            for o in blocks.into_remainder() {
                *o = exp_approx(*o - m);
            }
            let inv = 1.0 / sum(yr);
            for o in yr.iter_mut() {
                *o *= inv;
            }
        }
    }

    #[inline(always)]
    pub(crate) fn softmax_backward(y: &[f32], dy: &[f32], cols: usize, scale: f32, dx: &mut [f32]) {
        for ((yr, gr), dr) in y
            .chunks_exact(cols)
            .zip(dy.chunks_exact(cols))
            .zip(dx.chunks_exact_mut(cols))
        {
            let s = dot(yr, gr);
            for ((o, &p), &g) in dr.iter_mut().zip(yr).zip(gr) {
                *o = scale * p * (g - s);
            }
        }
    }

    #[inline(always)]
    pub(crate) fn dropout(x: &[f32], seed: u64, first: u64, p: f32, y: &mut [f32]) {
        let keep = 1.0 / (1.0 - p);
        for (i, (o, &v)) in y.iter_mut().zip(x).enumerate() {
            *o = if dropped(seed, first + i as u64, p) {
                0.0
            } else {
                v * keep
            };
        }
    }

    #[inline(always)]
    pub(crate) fn sum_squares(x: &[f32]) -> f32 {
        dot(x, x)
    }

    #[inline(always)]
    pub(crate) fn adamw(theta: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], s: &AdamWStep) {
        let (b1, b2) = (s.beta1, s.beta2);
        let (c1, c2) = (1.0 - b1, 1.0 - b2);
        let scale_m = 1.0 / (1.0 - (b1 as f64).powi(s.t as i32)) as f32;
        let scale_v = 1.0 / (1.0 - (b2 as f64).powi(s.t as i32)) as f32;
        let decay = 1.0 - s.lr * s.weight_decay;
        let gs = s.grad_scale;
        for (((p, mi), vi), &gi) in theta.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            let gi = gi * gs;
            *mi = *mi * b1 + gi * c1;
            *vi = *vi * b2 + gi * gi * c2;
            let update = (*mi * scale_m) / ((*vi * scale_v).sqrt() + s.eps);
            *p = *p * decay - update * s.lr;
        }
    }

    /// Mean and 1/sqrt(var + eps) of one row.
    #[inline(always)]
    fn moments(xr: &[f32], eps: f32) -> (f32, f32) {
        let n = xr.len() as f32;
        let mean = sum(xr) / n;
        let mut acc = [0f32; LANES];
        let chunks = xr.chunks_exact(LANES);
        let tail: f32 = chunks
            .remainder()
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum();
        for c in chunks {
            for (a, &v) in acc.iter_mut().zip(c) {
                *a += (v - mean) * (v - mean);
            }
        }
        let var = (acc.iter().sum::<f32>() + tail) / n;
        (mean, 1.0 / (var + eps).sqrt())
    }

    #[inline(always)]
    pub(crate) fn layer_norm(
        x: &[f32],
        bias: &[f32],
        residual: &[f32],
        w: &[f32],
        b: &[f32],
        eps: f32,
        y: &mut [f32],
    ) {
        let cols = w.len();
        for (r, yr) in y.chunks_exact_mut(cols).enumerate() {
            let xr = &x[r * cols..(r + 1) * cols];
            if residual.is_empty() {
                yr.copy_from_slice(xr);
            } else {
                let rr = &residual[r * cols..(r + 1) * cols];
                for ((o, &u), &v) in yr.iter_mut().zip(xr).zip(rr) {
                    *o = u + v;
                }
            }
            if !bias.is_empty() {
                for (o, &c) in yr.iter_mut().zip(bias) {
                    *o += c;
                }
            }
            let (mean, rstd) = moments(yr, eps);
            for ((o, &g), &c) in yr.iter_mut().zip(w).zip(b) {
                *o = (*o - mean) * rstd * g + c;
            }
        }
    }

    /// `dx` of a block of rows, and that block's `dw`, `db` added into `dwb` (`[dw | db]`).
    #[inline(always)]
    pub(crate) fn layer_norm_backward(
        x: &[f32],
        w: &[f32],
        dy: &[f32],
        eps: f32,
        dx: &mut [f32],
        dwb: &mut [f32],
    ) {
        let cols = w.len();
        let (dw, db) = dwb.split_at_mut(cols);
        let inv_n = 1.0 / cols as f32;
        for ((xr, gr), dr) in x
            .chunks_exact(cols)
            .zip(dy.chunks_exact(cols))
            .zip(dx.chunks_exact_mut(cols))
        {
            let (mean, rstd) = moments(xr, eps);
            // Pass 1: sums of g w and g w xhat; dw, db.
            let mut s1 = [0f32; LANES];
            let mut s2 = [0f32; LANES];
            let mut t1 = 0f32;
            let mut t2 = 0f32;
            let full = cols - cols % LANES;
            for k in (0..full).step_by(LANES) {
                let xs = &xr[k..k + LANES];
                let gs = &gr[k..k + LANES];
                let ws = &w[k..k + LANES];
                let dws = &mut dw[k..k + LANES];
                let dbs = &mut db[k..k + LANES];
                for l in 0..LANES {
                    let xhat = (xs[l] - mean) * rstd;
                    let gw = gs[l] * ws[l];
                    s1[l] += gw;
                    s2[l] += gw * xhat;
                    dws[l] += gs[l] * xhat;
                    dbs[l] += gs[l];
                }
            }
            for k in full..cols {
                let xhat = (xr[k] - mean) * rstd;
                let gw = gr[k] * w[k];
                t1 += gw;
                t2 += gw * xhat;
                dw[k] += gr[k] * xhat;
                db[k] += gr[k];
            }
            let a = (s1.iter().sum::<f32>() + t1) * inv_n;
            let c = (s2.iter().sum::<f32>() + t2) * inv_n;
            for (((o, &v), &g), &wk) in dr.iter_mut().zip(xr).zip(gr).zip(w) {
                let xhat = (v - mean) * rstd;
                *o = rstd * (g * wk - a - xhat * c);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The public kernels: checks, then blocks of rows in parallel.

/// Elements per parallel task of an elementwise kernel over rows of `bias` (whole rows).
fn elementwise_block(kernel: &'static str, len: usize, bias: &[f32]) -> Result<usize, ShapeError> {
    if bias.is_empty() {
        return Ok(GRAIN);
    }
    rows_of(kernel, "x", len, bias.len())?;
    Ok(rows_per_task(bias.len()) * bias.len())
}

/// `y = gelu(x + bias)` elementwise (exact erf form, [`gelu_scalar`]): `bias` is empty or one
/// row added to every row of `x` (a dense layer's bias).
pub fn gelu(x: &[f32], bias: &[f32], y: &mut [f32]) -> Result<(), ShapeError> {
    let level = crate::dispatch::level();
    same_len("gelu", "y", y.len(), x.len())?;
    let n = elementwise_block("gelu", x.len(), bias)?;
    y.par_chunks_mut(n)
        .zip(x.par_chunks(n))
        .for_each(|(yb, xb)| x86::gelu(level, xb, bias, yb));
    Ok(())
}

/// `dx = dy * gelu'(x + bias)` elementwise (also the gradient of `bias` row by row).
pub fn gelu_backward(
    x: &[f32],
    bias: &[f32],
    dy: &[f32],
    dx: &mut [f32],
) -> Result<(), ShapeError> {
    let level = crate::dispatch::level();
    same_len("gelu backward", "dy", dy.len(), x.len())?;
    same_len("gelu backward", "dx", dx.len(), x.len())?;
    let n = elementwise_block("gelu backward", x.len(), bias)?;
    dx.par_chunks_mut(n)
        .zip(x.par_chunks(n).zip(dy.par_chunks(n)))
        .for_each(|(db, (xb, gb))| x86::gelu_backward(level, xb, bias, gb, db));
    Ok(())
}

/// Softmax over rows of `cols`: `y = softmax(scale * x + bias)`, as attention applies it to its
/// scores. `bias` is either empty or `groups * cols` values, row `r` of `x` taking bias row
/// `r / (rows / groups)` (scores `(B, heads, Tq, Tk)` with a mask bias `(B, Tk)`).
pub fn softmax(
    x: &[f32],
    bias: &[f32],
    cols: usize,
    scale: f32,
    y: &mut [f32],
) -> Result<(), ShapeError> {
    let level = crate::dispatch::level();
    const K: &str = "softmax";
    let rows = rows_of(K, "x", x.len(), cols)?;
    same_len(K, "y", y.len(), x.len())?;
    let per_bias = if bias.is_empty() {
        rows.max(1)
    } else {
        let groups = rows_of(K, "bias", bias.len(), cols)?;
        check(K, groups > 0 && rows % groups == 0, || {
            format!("{rows} rows do not split into {groups} bias rows")
        })?;
        rows / groups
    };
    // Tasks never straddle a bias row: blocks of whole bias groups, or of part of one.
    let block = {
        let r = rows_per_task(cols).min(per_bias);
        let mut r = r.max(1);
        while per_bias % r != 0 {
            r -= 1;
        }
        r
    };
    y.par_chunks_mut(block * cols)
        .zip(x.par_chunks(block * cols))
        .enumerate()
        .for_each(|(i, (yb, xb))| {
            let bias_row = if bias.is_empty() {
                &[][..]
            } else {
                let g = i * block / per_bias;
                &bias[g * cols..(g + 1) * cols]
            };
            x86::softmax(level, xb, bias_row, cols, scale, yb)
        });
    Ok(())
}

/// The gradient of [`softmax`] with respect to its input `x`, from its output `y` and the
/// output's gradient `dy`: `dx = scale * y * (dy - sum(dy * y))` per row.
pub fn softmax_backward(
    y: &[f32],
    dy: &[f32],
    cols: usize,
    scale: f32,
    dx: &mut [f32],
) -> Result<(), ShapeError> {
    let level = crate::dispatch::level();
    const K: &str = "softmax backward";
    rows_of(K, "y", y.len(), cols)?;
    same_len(K, "dy", dy.len(), y.len())?;
    same_len(K, "dx", dx.len(), y.len())?;
    let n = rows_per_task(cols) * cols;
    dx.par_chunks_mut(n)
        .zip(y.par_chunks(n).zip(dy.par_chunks(n)))
        .for_each(|(db, (yb, gb))| x86::softmax_backward(level, yb, gb, cols, scale, db));
    Ok(())
}

/// Layer norm over rows of `w.len()` (Ba et al. 2016): `y = (z - mean) / sqrt(var + eps) * w
/// + b` with `z = x + bias + residual` (a dense layer's output, its bias and the residual
/// stream; `bias`, `residual` empty: left out); the variance is the biased one.
pub fn layer_norm(
    x: &[f32],
    bias: &[f32],
    residual: &[f32],
    w: &[f32],
    b: &[f32],
    eps: f32,
    y: &mut [f32],
) -> Result<(), ShapeError> {
    let level = crate::dispatch::level();
    const K: &str = "layer norm";
    let cols = w.len();
    rows_of(K, "x", x.len(), cols)?;
    same_len(K, "b", b.len(), cols)?;
    same_len(K, "y", y.len(), x.len())?;
    if !residual.is_empty() {
        same_len(K, "residual", residual.len(), x.len())?;
    }
    if !bias.is_empty() {
        same_len(K, "bias", bias.len(), cols)?;
    }
    let n = rows_per_task(cols) * cols;
    y.par_chunks_mut(n).enumerate().for_each(|(i, yb)| {
        let xb = &x[i * n..i * n + yb.len()];
        let rb = if residual.is_empty() {
            &[][..]
        } else {
            &residual[i * n..i * n + yb.len()]
        };
        x86::layer_norm(level, xb, bias, rb, w, b, eps, yb)
    });
    Ok(())
}

/// The gradients of [`layer_norm`] (with `z` its normalized input, `x + residual`): writes `dz`
/// (the gradient of both `x` and `residual`) into `dx`, and returns `dw` and `db` (each
/// `w.len()` values) as one vector `[dw | db]`.
pub fn layer_norm_backward(
    z: &[f32],
    w: &[f32],
    dy: &[f32],
    eps: f32,
    dx: &mut [f32],
) -> Result<Vec<f32>, ShapeError> {
    let level = crate::dispatch::level();
    const K: &str = "layer norm backward";
    let cols = w.len();
    rows_of(K, "x", z.len(), cols)?;
    same_len(K, "dy", dy.len(), z.len())?;
    same_len(K, "dx", dx.len(), z.len())?;
    let n = rows_per_task(cols) * cols;
    let dwb = dx
        .par_chunks_mut(n)
        .enumerate()
        .map(|(i, db)| {
            let mut part = vec![0f32; 2 * cols];
            let range = i * n..i * n + db.len();
            x86::layer_norm_backward(level, &z[range.clone()], w, &dy[range], eps, db, &mut part);
            part
        })
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(u, v)| *u += v);
            a
        })
        .unwrap_or_else(|| vec![0f32; 2 * cols]);
    Ok(dwb)
}

// ---------------------------------------------------------------------------------------------
// Dropout with a counter-based generator: no mask is stored, the backward pass regenerates it.

/// Whether element `i` of a dropout with this `seed` is dropped: a SplitMix64 hash of
/// `(seed, i)`, its top 24 bits as a uniform number in [0, 1) compared with `p`.
#[inline(always)]
pub fn dropped(seed: u64, i: u64, p: f32) -> bool {
    let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 40) as f32) * (1.0 / (1u64 << 24) as f32) < p
}

/// Inverted dropout: `y[i] = 0` where [`dropped`]`(seed, i, p)`, else `x[i] / (1 - p)`. The op
/// is linear in `x`, so its backward pass is the same call on the output's gradient (same
/// `seed`). `p` must be in [0, 1).
pub fn dropout(x: &[f32], seed: u64, p: f32, y: &mut [f32]) -> Result<(), ShapeError> {
    let level = crate::dispatch::level();
    same_len("dropout", "y", y.len(), x.len())?;
    check("dropout", (0.0..1.0).contains(&p), || {
        format!("p must be in [0, 1), got {p}")
    })?;
    y.par_chunks_mut(GRAIN)
        .zip(x.par_chunks(GRAIN))
        .enumerate()
        .for_each(|(c, (yb, xb))| x86::dropout(level, xb, seed, (c * GRAIN) as u64, p, yb));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// AdamW (Loshchilov & Hutter 2019), in place over raw buffers.

/// One AdamW step's constants, in the form candle's `AdamW` applies them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the second moment's square root.
    pub eps: f32,
    /// Decoupled weight decay (0: none).
    pub weight_decay: f32,
    /// Step number, from 1: sets the bias corrections `1 / (1 - beta^t)`.
    pub t: u32,
    /// Factor on the gradient before it enters the moments (gradient clipping; 1: none).
    pub grad_scale: f32,
}

/// Sum of squares of `x` in f64 (for a global gradient norm), without a copy of `x`.
pub fn sum_squares(x: &[f32]) -> f64 {
    let level = crate::dispatch::level();
    x.par_chunks(GRAIN)
        .map(|c| x86::sum_squares(level, c) as f64)
        .sum()
}

/// One AdamW step in place: the moments `m`, `v` from the gradient `g` (times
/// `step.grad_scale`), then `theta <- theta (1 - lr wd) - lr m^ / (sqrt(v^) + eps)` with the
/// bias-corrected moments `m^`, `v^`. Two fused passes instead of a dozen tensor ops.
pub fn adamw(
    theta: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    g: &[f32],
    step: &AdamWStep,
) -> Result<(), ShapeError> {
    let level = crate::dispatch::level();
    const K: &str = "adamw";
    same_len(K, "m", m.len(), theta.len())?;
    same_len(K, "v", v.len(), theta.len())?;
    same_len(K, "g", g.len(), theta.len())?;
    check(K, step.t > 0, || "step number t must start at 1".into())?;
    theta
        .par_chunks_mut(GRAIN)
        .zip(m.par_chunks_mut(GRAIN))
        .zip(v.par_chunks_mut(GRAIN).zip(g.par_chunks(GRAIN)))
        .for_each(|((tb, mb), (vb, gb))| x86::adamw(level, tb, mb, vb, gb, step));
    Ok(())
}

#[cfg(test)]
mod tests;
