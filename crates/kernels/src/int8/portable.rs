//! The portable int8 matmul: the exact integer products `sum_k (u - z) w` computed by the f32
//! gemm (of [`Level::Portable`]: NEON on aarch64, gemm's scalar kernels on an x86-64 without
//! AVX2), so a CPU without an int8 kernel runs about as fast as its f32 model instead of a
//! scalar integer loop (14x slower than f32 on an AVX2 CPU).
//!
//! Exact: `|u - z| <= 255` and `|w| <= 128`, so every product is an integer below 2^15 and every
//! partial sum of at most [`CHUNK`] of them stays below 2^24, where f32 holds integers exactly
//! whatever the order and fusing of the gemm's adds; chunks are summed in i32. The accumulators
//! are therefore those of the SIMD kernels, and the shared epilogue gives the same floats.

use super::{
    BLOCK_IN, BLOCK_OUT, GROUP, PackedWeights, QuantizedRows, Sink, dequantize, sink_rows,
};

/// The int8 weights of `data` (blocks of `k4` groups) as row-major `(out, inp)` f32, the form
/// the portable path multiplies (kept by [`PackedWeights`] after its first use: 4 bytes per
/// weight, as in the f32 model).
pub(super) fn weights_f32(data: &[i8], out: usize, inp: usize, k4: usize) -> Vec<f32> {
    let mut wf = vec![0f32; out * inp];
    for (b, block) in data.chunks_exact(k4 * GROUP).enumerate() {
        for (g, group) in block.chunks_exact(GROUP).enumerate() {
            for (lane, four) in group.chunks_exact(BLOCK_IN).enumerate() {
                let o = b * BLOCK_OUT + lane;
                for (j, &v) in four.iter().enumerate() {
                    let k = g * BLOCK_IN + j;
                    if o < out && k < inp {
                        wf[o * inp + k] = f32::from(v);
                    }
                }
            }
        }
    }
    wf
}
use crate::dispatch::Level;
use crate::matmul::{View, ViewMut, matmul_at};

/// Inputs per gemm call: `512 * 255 * 128 = 16_711_680 < 2^24`.
pub(super) const CHUNK: usize = 512;

/// Rows of the sink's length starting at global row `r0`, with the gemm split over `threads`
/// threads of the current rayon pool.
pub(super) fn rows(
    xq: &QuantizedRows,
    r0: usize,
    w: &PackedWeights,
    mut sink: Sink<'_>,
    threads: usize,
) {
    let (inp, out) = (w.inp, w.out);
    let n = sink_rows(&sink, out).min(xq.rows.saturating_sub(r0));
    if n == 0 {
        return;
    }
    // The operands as f32: the weights row-major `(out, in)`, the activations minus their zero
    // points row-major `(n, in)`; both small integers, exactly represented.
    let wf = w.portable();
    let mut xf = vec![0f32; n * inp];
    for (r, d) in xf.chunks_exact_mut(inp).enumerate() {
        let z = xq.zero[r0 + r] as f32;
        for (d, &u) in d.iter_mut().zip(xq.row(r0 + r)) {
            *d = f32::from(u) - z;
        }
    }
    let chunks = inp.div_ceil(CHUNK);
    let mut part = vec![0f32; n * out];
    let mut acc = if chunks > 1 {
        vec![0i32; n * out]
    } else {
        Vec::new()
    };
    for c in 0..chunks {
        let k0 = c * CHUNK;
        let kc = CHUNK.min(inp - k0);
        let dst = ViewMut {
            data: &mut part,
            offset: 0,
            rows: n,
            cols: out,
            row_stride: out,
        };
        let lhs = View::rows(&xf, k0, n, kc, inp);
        let rhs = View::rows(wf, k0, out, kc, inp).t();
        // The views are built from these buffers' own shapes, so the product cannot fail.
        if matmul_at(Level::Portable, dst, lhs, rhs, 1.0, false, threads).is_err() {
            unreachable!("int8 portable: views of the operand buffers' own shapes");
        }
        if chunks > 1 {
            for (a, &p) in acc.iter_mut().zip(&part) {
                *a += p as i32;
            }
        }
    }
    let total = |i: usize| {
        if chunks > 1 { acc[i] } else { part[i] as i32 }
    };
    match &mut sink {
        Sink::Int(dst) => {
            for (i, d) in dst[..n * out].iter_mut().enumerate() {
                *d = total(i);
            }
        }
        Sink::Float { y, bias } => {
            for r in 0..n {
                let sx = xq.scale[r0 + r];
                for o in 0..out {
                    let i = r * out + o;
                    let b = bias.map_or(0.0, |b| b[o]);
                    y[i] = dequantize(total(i), sx, w.scales[o], b);
                }
            }
        }
    }
}
