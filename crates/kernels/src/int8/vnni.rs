//! The AVX-512 VNNI implementation of the int8 matmul: tiles of 6 rows x 64 outputs kept in
//! 24 zmm accumulators, one `vpdpbusd` per (row, 16-output block, 4-input group), the
//! dequantization fused into the store. Same results as the portable path, bit for bit.
#![allow(unsafe_code)]

use super::{PackedWeights, QuantizedRows, Sink};

/// Whether this CPU runs the VNNI kernel.
pub(super) fn available() -> bool {
    imp::available()
}

/// Rows of the sink's length, starting at global row `r0`.
pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
    imp::rows(xq, r0, w, sink)
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    use super::{PackedWeights, QuantizedRows, Sink};

    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        super::super::portable_rows(xq, r0, w, sink)
    }
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    use super::super::{BLOCK_IN, BLOCK_OUT, GROUP, portable_rows, sink_rows};
    use super::{PackedWeights, QuantizedRows, Sink};

    /// Rows per register tile.
    const MR: usize = 6;
    /// 16-output blocks per register tile.
    const NB: usize = 4;

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
    }

    pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        if !available() {
            return portable_rows(xq, r0, w, sink);
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
        // Output panels of up to 64 outputs (their weights stay in L2), then row tiles.
        let mut b0 = 0;
        while b0 < blocks {
            let nb = (blocks - b0).min(NB);
            let mut r = r0;
            while r < end {
                let mr = (end - r).min(MR);
                match nb {
                    4 => by_rows::<4>(mr, xq, r, w, b0, r0, &mut sink),
                    3 => by_rows::<3>(mr, xq, r, w, b0, r0, &mut sink),
                    2 => by_rows::<2>(mr, xq, r, w, b0, r0, &mut sink),
                    _ => by_rows::<1>(mr, xq, r, w, b0, r0, &mut sink),
                }
                r += mr;
            }
            b0 += nb;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn by_rows<const B: usize>(
        mr: usize,
        xq: &QuantizedRows,
        r: usize,
        w: &PackedWeights,
        b0: usize,
        r0: usize,
        sink: &mut Sink<'_>,
    ) {
        match mr {
            6 => tile::<6, B>(xq, r, w, b0, r0, sink),
            5 => tile::<5, B>(xq, r, w, b0, r0, sink),
            4 => tile::<4, B>(xq, r, w, b0, r0, sink),
            3 => tile::<3, B>(xq, r, w, b0, r0, sink),
            2 => tile::<2, B>(xq, r, w, b0, r0, sink),
            _ => tile::<1, B>(xq, r, w, b0, r0, sink),
        }
    }

    /// Rows `r..r + R` times blocks `b0..b0 + B`, over the whole input width.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[inline]
    fn tile<const R: usize, const B: usize>(
        xq: &QuantizedRows,
        r: usize,
        w: &PackedWeights,
        b0: usize,
        r0: usize,
        sink: &mut Sink<'_>,
    ) {
        let k4 = w.k4;
        // Slices of exactly the length the loop reads: k4 groups of 4 bytes per row, of 64
        // bytes per block (the callers keep r + R <= rows and b0 + B <= blocks).
        let xs: [&[u8]; R] = std::array::from_fn(|i| &xq.row(r + i)[..k4 * BLOCK_IN]);
        let ws: [&[i8]; B] = std::array::from_fn(|j| &w.block(b0 + j)[..k4 * GROUP]);
        let mut acc = [[_mm512_setzero_si512(); B]; R];
        for k in 0..k4 {
            let mut wv = [_mm512_setzero_si512(); B];
            for j in 0..B {
                // SAFETY: `ws[j]` holds k4 * 64 bytes and k < k4, so the 64 bytes at k * 64
                // are in bounds; the load is unaligned.
                wv[j] = unsafe { _mm512_loadu_si512(ws[j].as_ptr().add(k * GROUP).cast()) };
            }
            for i in 0..R {
                // SAFETY: `xs[i]` holds k4 * 4 bytes and k < k4, so the 4 bytes at k * 4 are
                // in bounds; read unaligned.
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
        for (i, row) in acc.iter().enumerate() {
            for (j, a) in row.iter().enumerate() {
                store(sink, xq, w, r0, r + i, b0 + j, *a);
            }
        }
    }

    /// The portable epilogue (`store_block`) lane by lane: the same operations in the same
    /// order, with masked stores for a partial last block.
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
