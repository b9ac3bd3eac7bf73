//! The AVX-512 VNNI implementation of the int8 matmul: tiles of 6 rows x 64 outputs kept in
//! 24 zmm accumulators, one `vpdpbusd` per (row, 16-output block, 4-input group), the
//! dequantization fused into the store. Same results as the portable path, bit for bit.
#![allow(unsafe_code)]
// The AVX-512 intrinsics are stable since Rust 1.89 (the toolchain here is 1.95); the
// workspace's `rust-version` still says 1.85.
#![allow(clippy::incompatible_msrv)]

use super::{ActivationRange, PackedWeights, QuantizedRows, Sink};

/// Whether this CPU runs the VNNI kernel.
pub(super) fn available() -> bool {
    imp::available()
}

/// Quantizes one row of activations (see `quantize_row_with`), vectorized for AVX-512 when
/// the CPU has it.
pub(super) fn quantize_row(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
    imp::quantize_row(row, dst, range)
}

/// Rows of the sink's length, starting at global row `r0`.
pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
    imp::rows(xq, r0, w, sink)
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use super::{ActivationRange, PackedWeights, QuantizedRows, Sink};

    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn quantize_row(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        super::super::quantize_row_portable(row, dst, range)
    }

    pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        super::super::portable::rows(xq, r0, w, sink, 1)
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use super::super::{BLOCK_IN, BLOCK_OUT, GROUP, portable, quantize_row_portable, sink_rows};
    use super::{ActivationRange, PackedWeights, QuantizedRows, Sink};

    /// Rows per register tile.
    const MR: usize = 6;
    /// 16-output blocks per register tile.
    const NB: usize = 4;
    /// Rows per chunk (a multiple of `MR`).
    const MC: usize = 48;
    /// Input groups of 4 per chunk: 64 outputs x 768 inputs = 48 KiB of weights, read from L2
    /// (4 loads per 24 `vpdpbusd`); a width of 384 in one chunk, 1536 in two. Measured on
    /// MiniLM's shapes (one thread, Zen 4) 2-10% faster than chunks of 256 inputs, which kept
    /// the panel in L1 but reloaded the accumulators more often.
    const KC4: usize = 192;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }

    pub(super) fn quantize_row(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        if !is_x86_feature_detected!("avx512f") || !is_x86_feature_detected!("avx512bw") {
            return quantize_row_portable(row, dst, range);
        }
        // SAFETY: the CPU has AVX-512F and AVX-512BW (checked just above), the features
        // `quantize_row_avx512` is compiled for.
        unsafe { quantize_row_avx512(row, dst, range) }
    }

    /// `quantize_row_with` in AVX-512 intrinsics: the same operations (exact min / max,
    /// multiply by the inverse scale, round to nearest even, add the zero point, clamp to
    /// [0, top]) 16 lanes at a time, so the same bytes; the tail goes through the scalar code.
    #[target_feature(enable = "avx512f,avx512bw")]
    fn quantize_row_avx512(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        let n = row.len().min(dst.len());
        let (row, dst) = (&row[..n], &mut dst[..n]);
        let body = n - n % 16;
        let mut lo = _mm512_setzero_ps();
        let mut hi = _mm512_setzero_ps();
        for c in row[..body].chunks_exact(16) {
            // SAFETY: `c` holds 16 f32; the load is unaligned.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            lo = _mm512_min_ps(lo, v);
            hi = _mm512_max_ps(hi, v);
        }
        let (lo, hi) = row[body..].iter().fold(
            (_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi)),
            |(lo, hi), &v| (lo.min(v), hi.max(v)),
        );
        let top = range.top();
        let (sc, zp) = super::super::scale_and_zero(lo, hi, top);
        let inv = 1.0 / sc;
        let (vinv, vzp) = (_mm512_set1_ps(inv), _mm512_set1_ps(zp));
        let (v0, vtop) = (_mm512_setzero_ps(), _mm512_set1_ps(top));
        for (c, d) in row[..body]
            .chunks_exact(16)
            .zip(dst[..body].chunks_exact_mut(16))
        {
            // SAFETY: `c` holds 16 f32; the load is unaligned.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            let r = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm512_mul_ps(v, vinv),
            );
            let q = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, vzp), v0), vtop);
            let bytes = _mm512_cvtusepi32_epi8(_mm512_cvtps_epi32(q));
            // SAFETY: `d` holds 16 bytes; the store is unaligned.
            unsafe { _mm_storeu_si128(d.as_mut_ptr().cast(), bytes) };
        }
        for (d, &v) in dst[body..].iter_mut().zip(&row[body..]) {
            *d = super::super::quantize_value(v, inv, zp, top);
        }
        (sc, zp as i32)
    }

    pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        if !available() {
            return portable::rows(xq, r0, w, sink, 1);
        }
        // SAFETY: the CPU has AVX-512F, AVX-512BW and AVX-512 VNNI (checked just above), the
        // features `rows_vnni` is compiled for.
        unsafe { rows_vnni(xq, r0, w, sink) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn rows_vnni(xq: &QuantizedRows, r0: usize, w: &PackedWeights, mut sink: Sink<'_>) {
        let rows = sink_rows(&sink, w.out);
        let end = (r0 + rows).min(xq.rows);
        let blocks = w.blocks();
        // Partial sums of one row chunk and panel between input chunks.
        let mut partial = vec![_mm512_setzero_si512(); MC * NB];
        // Row chunks (their activations stay in L2), output panels of up to 64 outputs, input
        // chunks (the panel's slice, 48 KiB, stays in L2 across the chunk's row tiles), tiles.
        let mut c0 = r0;
        while c0 < end {
            let c1 = (c0 + MC).min(end);
            let mut b0 = 0;
            while b0 < blocks {
                let nb = (blocks - b0).min(NB);
                let mut k0 = 0;
                while k0 < w.k4 {
                    let k1 = (k0 + KC4).min(w.k4);
                    let mut r = c0;
                    while r < c1 {
                        let mr = (c1 - r).min(MR);
                        let at = (r - c0) * NB;
                        let t = Tile { r, b0, r0, k0, k1 };
                        let part = &mut partial[at..at + mr * NB];
                        match nb {
                            4 => by_rows::<4>(mr, xq, w, &t, part, &mut sink),
                            3 => by_rows::<3>(mr, xq, w, &t, part, &mut sink),
                            2 => by_rows::<2>(mr, xq, w, &t, part, &mut sink),
                            _ => by_rows::<1>(mr, xq, w, &t, part, &mut sink),
                        }
                        r += mr;
                    }
                    k0 = k1;
                }
                b0 += nb;
            }
            c0 = c1;
        }
    }

    /// Where a register tile sits: first row `r` (global), first block `b0`, the input groups
    /// `k0..k1`, and the sink's first row `r0`.
    struct Tile {
        r: usize,
        b0: usize,
        r0: usize,
        k0: usize,
        k1: usize,
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn by_rows<const B: usize>(
        mr: usize,
        xq: &QuantizedRows,
        w: &PackedWeights,
        t: &Tile,
        partial: &mut [__m512i],
        sink: &mut Sink<'_>,
    ) {
        match mr {
            6 => tile::<6, B>(xq, w, t, partial, sink),
            5 => tile::<5, B>(xq, w, t, partial, sink),
            4 => tile::<4, B>(xq, w, t, partial, sink),
            3 => tile::<3, B>(xq, w, t, partial, sink),
            2 => tile::<2, B>(xq, w, t, partial, sink),
            _ => tile::<1, B>(xq, w, t, partial, sink),
        }
    }

    /// Rows `t.r..t.r + R` times blocks `t.b0..t.b0 + B` over the input groups `t.k0..t.k1`,
    /// starting from `partial` (row-major `R x NB` registers) unless `k0` is 0; the last input
    /// chunk goes to the sink, the others back to `partial`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn tile<const R: usize, const B: usize>(
        xq: &QuantizedRows,
        w: &PackedWeights,
        t: &Tile,
        partial: &mut [__m512i],
        sink: &mut Sink<'_>,
    ) {
        let (k0, k1) = (t.k0, t.k1);
        // Slices of exactly the groups the loop reads (the callers keep r + R <= rows,
        // b0 + B <= blocks and k1 <= k4).
        // Plain loops, not `std::array::from_fn`, whose closures were not inlined (4% of the
        // time of a model's forward pass went to calling them).
        let mut xs: [&[u8]; R] = [&[]; R];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = &xq.row(t.r + i)[k0 * BLOCK_IN..k1 * BLOCK_IN];
        }
        let mut ws: [&[i8]; B] = [&[]; B];
        for (j, wj) in ws.iter_mut().enumerate() {
            *wj = &w.block(t.b0 + j)[k0 * GROUP..k1 * GROUP];
        }
        // The accumulators are only ever read and written by value (never borrowed), so they
        // stay in registers through the loop: a borrow (or passing one to a call that is not
        // inlined, which passes vectors by reference) made the compiler store all of them to
        // the stack on every iteration, which halved the speed.
        let mut acc = [[_mm512_setzero_si512(); B]; R];
        if k0 > 0 {
            for i in 0..R {
                for j in 0..B {
                    acc[i][j] = partial[i * NB + j];
                }
            }
        }
        for k in 0..k1 - k0 {
            let mut wv = [_mm512_setzero_si512(); B];
            for j in 0..B {
                // SAFETY: `ws[j]` holds (k1 - k0) * 64 bytes and k < k1 - k0, so the 64 bytes
                // at k * 64 are in bounds; the load is unaligned.
                wv[j] = unsafe { _mm512_loadu_si512(ws[j].as_ptr().add(k * GROUP).cast()) };
            }
            for i in 0..R {
                // SAFETY: `xs[i]` holds (k1 - k0) * 4 bytes and k < k1 - k0, so the 4 bytes at
                // k * 4 are in bounds; read unaligned.
                let four = unsafe {
                    xs[i]
                        .as_ptr()
                        .add(k * BLOCK_IN)
                        .cast::<i32>()
                        .read_unaligned()
                };
                let xv = _mm512_set1_epi32(four);
                for j in 0..B {
                    acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], xv, wv[j]);
                }
            }
        }
        for i in 0..R {
            for j in 0..B {
                partial[i * NB + j] = acc[i][j];
            }
        }
        if k1 < w.k4 {
            return;
        }
        for i in 0..R {
            for j in 0..B {
                store(sink, xq, w, t.r0, t.r + i, t.b0 + j, partial[i * NB + j]);
            }
        }
    }

    /// The shared epilogue (`dequantize`, after `acc - z * sum`) lane by lane: the same
    /// operations in the same order, with masked stores for a partial last block.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn store(
        sink: &mut Sink<'_>,
        xq: &QuantizedRows,
        w: &PackedWeights,
        r0: usize,
        r: usize,
        b: usize,
        acc: __m512i,
    ) {
        let out = w.out;
        let o0 = b * BLOCK_OUT;
        let width = BLOCK_OUT.min(out - o0);
        let mask: __mmask16 = if width == BLOCK_OUT {
            0xFFFF
        } else {
            (1u16 << width) - 1
        };
        let sums = &w.sums[o0..o0 + BLOCK_OUT];
        // SAFETY: `sums` holds 16 i32 (the sums are padded to whole blocks).
        let sums = unsafe { _mm512_loadu_si512(sums.as_ptr().cast()) };
        let t = _mm512_sub_epi32(acc, _mm512_mullo_epi32(_mm512_set1_epi32(xq.zero[r]), sums));
        let at = (r - r0) * out + o0;
        match sink {
            Sink::Int(dst) => {
                let dst = &mut dst[at..at + width];
                // SAFETY: `dst` holds `width` i32 and the mask enables exactly the first
                // `width` lanes.
                unsafe { _mm512_mask_storeu_epi32(dst.as_mut_ptr().cast(), mask, t) }
            }
            Sink::Float { y, bias } => {
                let scales = &w.scales[o0..o0 + BLOCK_OUT];
                // SAFETY: `scales` holds 16 f32 (padded to whole blocks).
                let sw = unsafe { _mm512_loadu_ps(scales.as_ptr()) };
                let s = _mm512_mul_ps(_mm512_set1_ps(xq.scale[r]), sw);
                let v = _mm512_mul_ps(_mm512_cvtepi32_ps(t), s);
                let bv = match bias {
                    Some(bias) => {
                        let bias = &bias[o0..o0 + width];
                        // SAFETY: `bias` holds `width` f32 and the mask enables exactly the
                        // first `width` lanes (masked-off lanes are not read).
                        unsafe { _mm512_maskz_loadu_ps(mask, bias.as_ptr()) }
                    }
                    None => _mm512_setzero_ps(),
                };
                let dst = &mut y[at..at + width];
                // SAFETY: `dst` holds `width` f32 and the mask enables exactly the first
                // `width` lanes.
                unsafe { _mm512_mask_storeu_ps(dst.as_mut_ptr(), mask, _mm512_add_ps(v, bv)) }
            }
        }
    }
}
