//! The AVX2 implementation of the int8 matmul, for CPUs without VNNI. Two kernels, chosen by
//! the range of the quantized rows:
//!
//! - 7-bit rows ([`ActivationRange::Reduced`], what this path quantizes to): fbgemm's and
//!   oneDNN's `vpmaddubsw` (`u8 x i8`, adjacent pairs added into i16) + `vpmaddwd` with ones
//!   (pairs of those into i32), the `vpdpbusd` of VNNI in two instructions, on the packed
//!   weights as they are. With codes of at most 127 a pair sum is at most `2 * 127 * 128 =
//!   32_512` in magnitude, so `vpmaddubsw` never saturates and the kernel is exact. Two
//!   multiplies per 32 products, as many as `vpmaddwd` on i16 (the port limit on Zen 4 and
//!   Intel's cores alike), but no widening of the weights and half the adds: 10-25% faster on
//!   MiniLM's shapes (one thread, Zen 4 at AVX2), close to the multiply ports' limit. Fewer
//!   multiplies would take adding two `vpmaddubsw` results in i16 before one `vpmaddwd`, which
//!   only 6-bit codes keep from overflowing.
//! - 8-bit rows (quantized for another path, e.g. by a test): exact with `vpmaddwd` on i16
//!   (`u - z` in [-255, 255], the weights widened as they are loaded), one multiply per 16
//!   products and one more add; `vpmaddubsw` could saturate there (`255 * (|w0| + |w1|) >
//!   32_767`). Its weights take their own layout, built on first use ([`Weights::build`]):
//!   per block of 16 outputs and pair of inputs, 32 bytes `[w(o, 2p), w(o, 2p + 1)]` for o =
//!   0..16, so one 16-byte load widens to the 8 outputs x 2 inputs of a register.
//!
//! The 7-bit kernel keeps tiles of up to [`MR7`] rows x 8 outputs in registers, the 8-bit one
//! tiles of up to [`MR`] rows x 16 outputs.
#![allow(unsafe_code)]
// Off x86-64 only the portable fallbacks below are compiled.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

use super::{ActivationRange, BLOCK_IN, BLOCK_OUT, GROUP, PackedWeights, QuantizedRows, Sink};

/// Rows per register tile of the 8-bit kernel: 2 x `MR` accumulators, two weight registers, a
/// broadcast and a product in 16 ymm registers.
pub(super) const MR: usize = 6;
/// Rows per register tile of the 7-bit kernel (of 8 outputs: `MR7` accumulators, a weight
/// register, a broadcast, a product and the ones). Measured on MiniLM's shapes (one thread,
/// Zen 4 at AVX2) against 12 x 8, 10 x 8, 6 x 16, 5 x 16 and 4 x 16: the fastest with 6 x 16
/// (which spills an accumulator), 10-20% ahead of 12 x 8.
const MR7: usize = 8;
/// Rows per chunk (whose activations, codes or i16, stay in L2 while every block passes over
/// them).
const MC: usize = 48;
/// Bytes of one pair step of a block: 16 outputs x 2 inputs.
const STEP: usize = 2 * BLOCK_OUT;

/// The weights as the AVX2 kernel reads them: per block of 16 outputs, `2 k4` pair steps of 32
/// bytes (output-major within the step), the input tail zero as in the packed weights.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Weights {
    pairs: Vec<i8>,
}

impl Weights {
    /// Re-lays the packed groups of `data` (`blocks` blocks of `k4` groups) by input pairs.
    pub(super) fn build(data: &[i8], blocks: usize, k4: usize) -> Self {
        let mut pairs = vec![0i8; data.len()];
        for b in 0..blocks {
            for g in 0..k4 {
                let group = &data[(b * k4 + g) * GROUP..(b * k4 + g + 1) * GROUP];
                for (lane, four) in group.chunks_exact(BLOCK_IN).enumerate() {
                    for (j, &v) in four.iter().enumerate() {
                        let step = b * 2 * k4 + 2 * g + j / 2;
                        pairs[step * STEP + lane * 2 + j % 2] = v;
                    }
                }
            }
        }
        Self { pairs }
    }
}

/// Whether this CPU runs the AVX2 kernel.
pub(super) fn available() -> bool {
    imp::available()
}

/// Quantizes one row of activations (see `quantize_row_with`), vectorized for AVX2 when the CPU
/// has it; the same bytes as the portable code.
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

    use super::super::{portable, quantize_row_portable, quantize_value, sink_rows};
    use super::{
        ActivationRange, BLOCK_IN, BLOCK_OUT, GROUP, MC, MR, MR7, PackedWeights, QuantizedRows,
        STEP, Sink,
    };

    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx2")
    }

    pub(super) fn quantize_row(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        if !available() {
            return quantize_row_portable(row, dst, range);
        }
        // SAFETY: the CPU has AVX2 (checked just above; AVX2 implies the AVX that the float
        // instructions need), the feature `quantize_row_avx2` is compiled for.
        unsafe { quantize_row_avx2(row, dst, range) }
    }

    /// `quantize_row_with` in AVX2 intrinsics: the same operations (exact min / max, multiply
    /// by the inverse scale, round to nearest even, add the zero point, clamp to [0, top]) 8
    /// lanes at a time, so the same bytes; the tail goes through the scalar code.
    #[target_feature(enable = "avx2")]
    fn quantize_row_avx2(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        let n = row.len().min(dst.len());
        let (row, dst) = (&row[..n], &mut dst[..n]);
        let body = n - n % 16;
        let mut lo = _mm256_setzero_ps();
        let mut hi = _mm256_setzero_ps();
        for c in row[..body].chunks_exact(8) {
            // SAFETY: `c` holds 8 f32; the load is unaligned.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            lo = _mm256_min_ps(lo, v);
            hi = _mm256_max_ps(hi, v);
        }
        let (mut los, mut his) = ([0f32; 8], [0f32; 8]);
        // SAFETY: each array holds 8 f32; the stores are unaligned.
        unsafe {
            _mm256_storeu_ps(los.as_mut_ptr(), lo);
            _mm256_storeu_ps(his.as_mut_ptr(), hi);
        }
        let init = (
            los.iter().fold(0f32, |m, &v| m.min(v)),
            his.iter().fold(0f32, |m, &v| m.max(v)),
        );
        let (lo, hi) = row[body..]
            .iter()
            .fold(init, |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let top = range.top();
        let (sc, zp) = super::super::scale_and_zero(lo, hi, top);
        let inv = 1.0 / sc;
        let (vinv, vzp, vtop) = (_mm256_set1_ps(inv), _mm256_set1_ps(zp), _mm256_set1_ps(top));
        /// One vector of 8 values as i32 in [0, top].
        #[target_feature(enable = "avx2")]
        #[inline]
        fn quant(v: __m256, vinv: __m256, vzp: __m256, vtop: __m256) -> __m256i {
            let r = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                _mm256_mul_ps(v, vinv),
            );
            // max first, then min: a NaN lane becomes 0, as `clamp` and `as u8` make it.
            let q = _mm256_min_ps(
                _mm256_max_ps(_mm256_add_ps(r, vzp), _mm256_setzero_ps()),
                vtop,
            );
            _mm256_cvtps_epi32(q)
        }
        for (c, d) in row[..body]
            .chunks_exact(16)
            .zip(dst[..body].chunks_exact_mut(16))
        {
            // SAFETY: `c` holds 16 f32; the loads are unaligned.
            let (a, b) = unsafe {
                (
                    _mm256_loadu_ps(c.as_ptr()),
                    _mm256_loadu_ps(c.as_ptr().add(8)),
                )
            };
            // Values in [0, top] (top <= 255): the packs do not saturate. packus_epi32
            // interleaves the 128-bit lanes (a0-3 b0-3 | a4-7 b4-7); the permute restores a0-7
            // b0-7.
            let words = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(
                quant(a, vinv, vzp, vtop),
                quant(b, vinv, vzp, vtop),
            ));
            let bytes = _mm_packus_epi16(
                _mm256_castsi256_si128(words),
                _mm256_extracti128_si256::<1>(words),
            );
            // SAFETY: `d` holds 16 bytes; the store is unaligned.
            unsafe { _mm_storeu_si128(d.as_mut_ptr().cast(), bytes) };
        }
        for (d, &v) in dst[body..].iter_mut().zip(&row[body..]) {
            *d = quantize_value(v, inv, zp, top);
        }
        (sc, zp as i32)
    }

    pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        if !available() {
            return portable::rows(xq, r0, w, sink, 1);
        }
        match xq.range {
            // SAFETY: the CPU has AVX2 (checked just above), the feature `rows_u7` is compiled
            // for; the rows' codes are at most 127 (`QuantizedRows` clamps them to its range).
            ActivationRange::Reduced => unsafe { rows_u7(xq, r0, w, sink) },
            // SAFETY: the CPU has AVX2 (checked just above), the feature `rows_exact` is
            // compiled for.
            ActivationRange::Full => unsafe { rows_exact(xq, r0, w, sink) },
        }
    }

    /// The 7-bit kernel: `vpmaddubsw` + `vpmaddwd` on the packed weights and the rows' codes
    /// as they are, the zero points taken out in the epilogue. The caller guarantees codes of
    /// at most 127 (else the i16 pair sums could saturate).
    #[target_feature(enable = "avx2")]
    fn rows_u7(xq: &QuantizedRows, r0: usize, w: &PackedWeights, mut sink: Sink<'_>) {
        let rows = sink_rows(&sink, w.out);
        let end = (r0 + rows).min(xq.rows);
        // Row chunks (their codes stay in L2), blocks of 16 outputs (the block's weights, at
        // most 24 KiB for 1536 inputs, stay in L1 across the chunk's tiles), halves of 8
        // outputs, row tiles.
        let mut c0 = r0;
        while c0 < end {
            let c1 = (c0 + MC).min(end);
            for b in 0..w.blocks() {
                let e = Epilogue::new(w, bias_of(&sink), b, true);
                for half in 0..2 {
                    if 8 * half >= e.width {
                        break;
                    }
                    let t = Tile7 {
                        wb: w.block(b),
                        half,
                        r0,
                        out: w.out,
                    };
                    let mut r = c0;
                    while r < c1 {
                        let mr = (c1 - r).min(MR7);
                        match mr {
                            8 => tile_u7::<8>(xq, r, &t, &e, &mut sink),
                            7 => tile_u7::<7>(xq, r, &t, &e, &mut sink),
                            6 => tile_u7::<6>(xq, r, &t, &e, &mut sink),
                            5 => tile_u7::<5>(xq, r, &t, &e, &mut sink),
                            4 => tile_u7::<4>(xq, r, &t, &e, &mut sink),
                            3 => tile_u7::<3>(xq, r, &t, &e, &mut sink),
                            2 => tile_u7::<2>(xq, r, &t, &e, &mut sink),
                            _ => tile_u7::<1>(xq, r, &t, &e, &mut sink),
                        }
                        r += mr;
                    }
                }
            }
            c0 = c1;
        }
    }

    /// What the register tiles of one half block of the 7-bit kernel share: the block's packed
    /// weights (`k4` groups of 64 bytes), which half of 8 outputs (`half`, 0 or 1: the first or
    /// last 32 bytes of each group), the sink's first row `r0` and row length `out`.
    struct Tile7<'a> {
        wb: &'a [i8],
        half: usize,
        r0: usize,
        out: usize,
    }

    /// Rows `r..r + R` times the 8 outputs of one half block over every input (7-bit codes),
    /// then the epilogue into the sink.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn tile_u7<const R: usize>(
        xq: &QuantizedRows,
        r: usize,
        t: &Tile7<'_>,
        e: &Epilogue,
        sink: &mut Sink<'_>,
    ) {
        let k4 = t.wb.len() / GROUP;
        // Slices of exactly what the loops read (the caller keeps r + R <= rows).
        let mut xs: [&[u8]; R] = [&[]; R];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = &xq.row(r + i)[..k4 * BLOCK_IN];
        }
        let ones = _mm256_set1_epi16(1);
        // Read and written by value only, so they stay in registers (see the VNNI kernel).
        let mut acc = [_mm256_setzero_si256(); R];
        for g in 0..k4 {
            // SAFETY: `t.wb` holds k4 * 64 bytes, g < k4 and half <= 1, so the 32 bytes at
            // g * 64 + 32 * half are in bounds; the load is unaligned.
            let wv =
                unsafe { _mm256_loadu_si256(t.wb.as_ptr().add(g * GROUP + 32 * t.half).cast()) };
            for i in 0..R {
                // SAFETY: `xs[i]` holds 4 k4 bytes and g < k4, so the 4 at 4g are in bounds;
                // read unaligned as one i32.
                let four = unsafe {
                    xs[i]
                        .as_ptr()
                        .add(g * BLOCK_IN)
                        .cast::<i32>()
                        .read_unaligned()
                };
                // Codes <= 127 and |w| <= 128: each i16 pair sum fits, no saturation.
                let pairs = _mm256_maddubs_epi16(_mm256_set1_epi32(four), wv);
                acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(pairs, ones));
            }
        }
        let sums = e.sums[t.half];
        for (i, &a) in acc.iter().enumerate() {
            let z = _mm256_set1_epi32(xq.zero[r + i]);
            let corrected = _mm256_sub_epi32(a, _mm256_mullo_epi32(z, sums));
            store_half(xq, e, r + i, t.r0, t.out, t.half, corrected, sink);
        }
    }

    /// The exact 8-bit kernel (`vpmaddwd` on i16 activations minus their zero points).
    #[target_feature(enable = "avx2")]
    fn rows_exact(xq: &QuantizedRows, r0: usize, w: &PackedWeights, mut sink: Sink<'_>) {
        let rows = sink_rows(&sink, w.out);
        let end = (r0 + rows).min(xq.rows);
        let pairs = &w.avx2().pairs;
        let k2 = 2 * w.k4;
        let span = k2 * STEP;
        // One chunk's activations minus their zero points, as i16 (the row padding too: its
        // weights are zero).
        let mut x16 = vec![0i16; MC * k2 * 2];
        // Row chunks (their activations stay in L2), blocks of 16 outputs (the block's weights,
        // at most 24 KiB for 1536 inputs, stay in L1 across the chunk's tiles), row tiles.
        let mut c0 = r0;
        while c0 < end {
            let c1 = (c0 + MC).min(end);
            for (r, d) in (c0..c1).zip(x16.chunks_exact_mut(k2 * 2)) {
                let z = xq.zero[r] as i16;
                for (d, &u) in d.iter_mut().zip(xq.row(r)) {
                    *d = i16::from(u) - z;
                }
            }
            for b in 0..w.blocks() {
                let wb = &pairs[b * span..(b + 1) * span];
                let e = Epilogue::new(w, bias_of(&sink), b, false);
                let mut r = c0;
                while r < c1 {
                    let mr = (c1 - r).min(MR);
                    let xs = &x16[(r - c0) * k2 * 2..];
                    let t = Tile {
                        xs,
                        wb,
                        k2,
                        r,
                        r0,
                        out: w.out,
                    };
                    match mr {
                        6 => tile_exact::<6>(xq, &t, &e, &mut sink),
                        5 => tile_exact::<5>(xq, &t, &e, &mut sink),
                        4 => tile_exact::<4>(xq, &t, &e, &mut sink),
                        3 => tile_exact::<3>(xq, &t, &e, &mut sink),
                        2 => tile_exact::<2>(xq, &t, &e, &mut sink),
                        _ => tile_exact::<1>(xq, &t, &e, &mut sink),
                    }
                    r += mr;
                }
            }
            c0 = c1;
        }
    }

    /// One register tile's operands: the i16 activations from its first row on (rows of
    /// `2 k2` values), its block's weights (`k2` steps), its first row `r` (global), the
    /// sink's first row `r0` and the sink's row length `out`.
    struct Tile<'a> {
        xs: &'a [i16],
        wb: &'a [i8],
        k2: usize,
        r: usize,
        r0: usize,
        out: usize,
    }

    /// The bias of a float sink.
    fn bias_of<'a>(sink: &Sink<'a>) -> Option<&'a [f32]> {
        match sink {
            Sink::Float { bias, .. } => *bias,
            Sink::Int(_) => None,
        }
    }

    /// What the epilogue of one block needs, loaded once per block: its first output, its
    /// valid outputs (up to 16), and per half of 8 its scales, biases (0 past the end and
    /// without a bias, as the portable code adds 0) and weight sums (for the 7-bit kernel's
    /// zero-point correction; zero when not needed).
    struct Epilogue {
        o0: usize,
        width: usize,
        scales: [__m256; 2],
        bias: [__m256; 2],
        sums: [__m256i; 2],
    }

    impl Epilogue {
        #[target_feature(enable = "avx2")]
        fn new(w: &PackedWeights, bias: Option<&[f32]>, b: usize, with_sums: bool) -> Self {
            let o0 = b * BLOCK_OUT;
            let width = (w.out - o0).min(BLOCK_OUT);
            let mut bv = [0f32; BLOCK_OUT];
            if let Some(bias) = bias {
                bv[..width].copy_from_slice(&bias[o0..o0 + width]);
            }
            let mut sv = [0i32; BLOCK_OUT];
            if with_sums {
                sv.copy_from_slice(&w.sums[o0..o0 + BLOCK_OUT]);
            }
            let sw = &w.scales[o0..o0 + BLOCK_OUT];
            // SAFETY: `sw` (the scales are padded to whole blocks) and `bv` hold 16 f32, `sv`
            // 16 i32; the loads are unaligned.
            let (scales, bias, sums) = unsafe {
                (
                    [
                        _mm256_loadu_ps(sw.as_ptr()),
                        _mm256_loadu_ps(sw.as_ptr().add(8)),
                    ],
                    [
                        _mm256_loadu_ps(bv.as_ptr()),
                        _mm256_loadu_ps(bv.as_ptr().add(8)),
                    ],
                    [
                        _mm256_loadu_si256(sv.as_ptr().cast()),
                        _mm256_loadu_si256(sv.as_ptr().add(8).cast()),
                    ],
                )
            };
            Self {
                o0,
                width,
                scales,
                bias,
                sums,
            }
        }
    }

    /// Rows `t.r..t.r + R` times the 16 outputs of one block over every input, then the
    /// epilogue into the sink.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn tile_exact<const R: usize>(
        xq: &QuantizedRows,
        t: &Tile<'_>,
        e: &Epilogue,
        sink: &mut Sink<'_>,
    ) {
        let k2 = t.k2;
        // Slices of exactly what the loops read (the caller keeps R rows of activations).
        let mut xs: [&[i16]; R] = [&[]; R];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = &t.xs[i * k2 * 2..(i + 1) * k2 * 2];
        }
        let wb = &t.wb[..k2 * STEP];
        // Read and written by value only, so they stay in registers (see the VNNI kernel).
        let mut acc = [[_mm256_setzero_si256(); 2]; R];
        for p in 0..k2 {
            // SAFETY: `wb` holds k2 * 32 bytes and p < k2, so the 32 bytes at p * 32 are in
            // bounds; the loads are unaligned.
            let (w0, w1) = unsafe {
                let at = wb.as_ptr().add(p * STEP);
                (
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(at.cast())),
                    _mm256_cvtepi8_epi16(_mm_loadu_si128(at.add(16).cast())),
                )
            };
            for i in 0..R {
                // SAFETY: `xs[i]` holds 2 * k2 i16 and p < k2, so the two at 2p are in bounds;
                // read unaligned as one i32.
                let two = unsafe { xs[i].as_ptr().add(2 * p).cast::<i32>().read_unaligned() };
                let xv = _mm256_set1_epi32(two);
                acc[i][0] = _mm256_add_epi32(acc[i][0], _mm256_madd_epi16(xv, w0));
                acc[i][1] = _mm256_add_epi32(acc[i][1], _mm256_madd_epi16(xv, w1));
            }
        }
        // The accumulators already hold `acc - z * sum` (the activations came in minus their
        // zero points).
        for (i, a) in acc.iter().enumerate() {
            store(xq, e, t.r + i, t.r0, t.out, *a, sink);
        }
    }

    /// The shared epilogue (`dequantize` of the zero-point-corrected accumulators `a` of row
    /// `r`, 8 lanes at a time: the same operations in the same order, no fused multiply-add)
    /// into the sink, whose first row is `r0` and rows `out` long.
    #[target_feature(enable = "avx2")]
    #[inline]
    fn store(
        xq: &QuantizedRows,
        e: &Epilogue,
        r: usize,
        r0: usize,
        out: usize,
        a: [__m256i; 2],
        sink: &mut Sink<'_>,
    ) {
        store_half(xq, e, r, r0, out, 0, a[0], sink);
        store_half(xq, e, r, r0, out, 1, a[1], sink);
    }

    /// [`store`] of half `h` of the block (its outputs `8h..8h + 8`, those that exist).
    #[target_feature(enable = "avx2")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn store_half(
        xq: &QuantizedRows,
        e: &Epilogue,
        r: usize,
        r0: usize,
        out: usize,
        h: usize,
        a: __m256i,
        sink: &mut Sink<'_>,
    ) {
        let width = e.width.saturating_sub(8 * h).min(8);
        if width == 0 {
            return;
        }
        let at = (r - r0) * out + e.o0 + 8 * h;
        match sink {
            Sink::Int(dst) => {
                let dst = &mut dst[at..at + width];
                if width == 8 {
                    // SAFETY: `dst` holds 8 i32; the store is unaligned.
                    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), a) };
                } else {
                    let mut lanes = [0i32; 8];
                    // SAFETY: `lanes` holds 8 i32; the store is unaligned.
                    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), a) };
                    dst.copy_from_slice(&lanes[..width]);
                }
            }
            Sink::Float { y, .. } => {
                let s = _mm256_mul_ps(_mm256_set1_ps(xq.scale[r]), e.scales[h]);
                let v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), s), e.bias[h]);
                let dst = &mut y[at..at + width];
                if width == 8 {
                    // SAFETY: `dst` holds 8 f32; the store is unaligned.
                    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) };
                } else {
                    let mut lanes = [0f32; 8];
                    // SAFETY: `lanes` holds 8 f32; the store is unaligned.
                    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
                    dst.copy_from_slice(&lanes[..width]);
                }
            }
        }
    }
}
