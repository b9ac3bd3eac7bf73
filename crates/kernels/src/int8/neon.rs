//! The aarch64 implementations of the int8 matmul: a NEON kernel of widening multiplies for
//! every aarch64 CPU, and a kernel of `sdot` for CPUs with the dot-product extension. Both
//! take the rows as every other path quantizes them (8-bit codes, [`ActivationRange::Full`]),
//! so they give the portable path's results bit for bit.
//!
//! NEON multiplies signed bytes by signed bytes (`smull`, `sdot`; the `u8 x i8` `usdot` needs
//! the later i8mm extension), so both kernels flip each code's top bit as they load it:
//! `u ^ 0x80` read as i8 is `u - 128`, in [-128, 127], and the zero point comes back in the
//! epilogue with the weights' row sums, `sum_k (u_k - z) w_k = sum_k (u_k - 128) w_k +
//! (128 - z) sum_k w_k` (exact in wrapping i32 arithmetic: the result fits, see
//! [`super::MAX_INPUTS`]).
//!
//! - NEON (`rows`): per row and output, 16 inputs at a time, `smull` (8 products into i16),
//!   `smlal2` (the other 8 added to them) and `sadalp` (pairs of i16 added into the i32
//!   accumulator), as gemmlowp and ruy do on CPUs without `sdot`. A pair sum stays within i16
//!   when one side avoids -128: `|(u - 128) w| <= 128 * 127`, twice that is 32_512. Weights from
//!   [`super::quantize_weights`] are in [-127, 127]; weights that hold a -128 (which
//!   [`super::PackedWeights::from_int8`] takes) go through the same loop with `sadalp` after
//!   each `smull`, one more instruction per 8 products. Its weights take their own layout,
//!   built on first use ([`Weights`]): per 4 outputs and 16 inputs, 64 bytes, output-major.
//!   Tiles of up to [`MR`] rows x 4 outputs keep 16 accumulators of 4 x i32 in registers,
//!   added across at the end (`addp`).
//! - dot product (`rows_dotprod`): `sdot` with an indexed element multiplies 4 outputs x 4
//!   inputs of the packed weights (16 bytes, the `vpdpbusd` layout of [`super::PackedWeights`]
//!   as it is) by 4 inputs of one row, summing each output's 4 products into its i32 lane.
//!   Tiles of up to [`MR`] rows x 16 outputs (16 accumulators). `sdot` is written in `asm!`:
//!   its intrinsic (`vdotq_laneq_s32`) is not stable in the workspace's oldest Rust.
//!
//! No aarch64 machine has timed these kernels yet: they are tested under QEMU
//! (`scripts/test-aarch64.sh`), which checks results, not speed.
#![allow(unsafe_code)]
// Off aarch64 only the portable fallbacks below are compiled.
#![cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]

use super::{ActivationRange, PackedWeights, QuantizedRows, Sink};

/// Rows per register tile (of 4 outputs in the NEON kernel, 16 in the `sdot` kernel: 16
/// accumulators, 4 rows of activations and 4 of weights in 32 vector registers).
const MR: usize = 4;
/// Rows per chunk (whose codes stay in L1 or L2 while every output block passes over them).
const MC: usize = 48;
/// Outputs per block of the NEON kernel's weights.
const QUAD: usize = 4;
/// Inputs per step of the NEON kernel (one 128-bit register of bytes).
const STEP: usize = 16;

/// The weights as the NEON kernel reads them: per block of 4 outputs, `k16` steps of 64 bytes
/// (the 4 outputs' 16 inputs, output-major); the tails of the outputs and the inputs are zero.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Weights {
    /// Steps of 16 inputs (`in` rounded up to 16, divided by 16).
    k16: usize,
    data: Vec<i8>,
    /// Whether no weight is -128, so that two products always add up within i16.
    pub(super) paired: bool,
}

impl Weights {
    /// Re-lays the row-major `(out, inp)` int8 weights `q`.
    pub(super) fn build(q: &[i8], out: usize, inp: usize) -> Self {
        let quads = out.div_ceil(QUAD);
        let k16 = inp.div_ceil(STEP);
        let mut data = vec![0i8; quads * k16 * QUAD * STEP];
        for o in 0..out {
            let (b, lane) = (o / QUAD, o % QUAD);
            for (k, &v) in q[o * inp..(o + 1) * inp].iter().enumerate() {
                data[((b * k16 + k / STEP) * QUAD + lane) * STEP + k % STEP] = v;
            }
        }
        Self {
            k16,
            paired: !q.contains(&i8::MIN),
            data,
        }
    }
}

/// Whether this CPU runs the NEON kernel (every aarch64 CPU).
pub(super) fn available() -> bool {
    imp::available()
}

/// Whether this CPU runs the `sdot` kernel.
pub(super) fn available_dotprod() -> bool {
    imp::available_dotprod()
}

/// Quantizes one row of activations (see `quantize_row_with`), vectorized for NEON on
/// aarch64; the same bytes as the portable code.
pub(super) fn quantize_row(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
    imp::quantize_row(row, dst, range)
}

/// Rows of the sink's length, starting at global row `r0`, on the NEON kernel.
pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
    imp::rows(xq, r0, w, sink)
}

/// Rows of the sink's length, starting at global row `r0`, on the `sdot` kernel.
pub(super) fn rows_dotprod(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
    imp::rows_dotprod(xq, r0, w, sink)
}

#[cfg(not(target_arch = "aarch64"))]
mod imp {
    use super::{ActivationRange, PackedWeights, QuantizedRows, Sink};

    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn available_dotprod() -> bool {
        false
    }

    pub(super) fn quantize_row(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        super::super::quantize_row_portable(row, dst, range)
    }

    pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        super::super::portable::rows(xq, r0, w, sink, 1)
    }

    pub(super) fn rows_dotprod(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        super::super::portable::rows(xq, r0, w, sink, 1)
    }
}

#[cfg(target_arch = "aarch64")]
mod imp {
    //! Every function that calls NEON intrinsics is compiled with `target_feature(enable =
    //! "neon")` (NEON is in the aarch64 target's baseline, so these need no run-time check
    //! beyond the one `available` makes), and those with `sdot` with "dotprod" too.
    use std::arch::aarch64::*;
    use std::arch::asm;

    use super::super::{BLOCK_IN, BLOCK_OUT, GROUP, portable, quantize_value, sink_rows};
    use super::{ActivationRange, MC, MR, PackedWeights, QUAD, QuantizedRows, STEP, Sink};

    pub(super) fn available() -> bool {
        std::arch::is_aarch64_feature_detected!("neon")
    }

    pub(super) fn available_dotprod() -> bool {
        available() && std::arch::is_aarch64_feature_detected!("dotprod")
    }

    pub(super) fn quantize_row(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        if !available() {
            return super::super::quantize_row_portable(row, dst, range);
        }
        // SAFETY: the CPU has NEON (checked just above), the feature `quantize_row_neon` is
        // compiled for.
        unsafe { quantize_row_neon(row, dst, range) }
    }

    /// `quantize_row_with` in NEON intrinsics: the same operations (min / max that skip NaN as
    /// `f32::min` does, multiply by the inverse scale, round to nearest even, add the zero
    /// point, clamp to [0, top]) 4 lanes at a time, so the same bytes; the tail goes through
    /// the scalar code.
    #[target_feature(enable = "neon")]
    fn quantize_row_neon(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
        let n = row.len().min(dst.len());
        let (row, dst) = (&row[..n], &mut dst[..n]);
        let body = n - n % 16;
        let mut lo = vdupq_n_f32(0.0);
        let mut hi = vdupq_n_f32(0.0);
        for c in row[..body].chunks_exact(4) {
            // SAFETY: `c` holds 4 f32; NEON loads need no alignment.
            let v = unsafe { vld1q_f32(c.as_ptr()) };
            lo = vminnmq_f32(lo, v);
            hi = vmaxnmq_f32(hi, v);
        }
        let init = (vminnmvq_f32(lo), vmaxnmvq_f32(hi));
        let (lo, hi) = row[body..]
            .iter()
            .fold(init, |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let top = range.top();
        let (sc, zp) = super::super::scale_and_zero(lo, hi, top);
        let inv = 1.0 / sc;
        let k = Quant {
            inv: vdupq_n_f32(inv),
            zp: vdupq_n_f32(zp),
            top: vdupq_n_f32(top),
        };
        for (c, d) in row[..body]
            .chunks_exact(16)
            .zip(dst[..body].chunks_exact_mut(16))
        {
            // SAFETY: `c` holds 16 f32; NEON loads need no alignment.
            let v = unsafe {
                [
                    vld1q_f32(c.as_ptr()),
                    vld1q_f32(c.as_ptr().add(4)),
                    vld1q_f32(c.as_ptr().add(8)),
                    vld1q_f32(c.as_ptr().add(12)),
                ]
            };
            // Values in [0, top] (top <= 255): the narrowing moves keep them.
            let lo = vcombine_u16(vmovn_u32(quant(v[0], &k)), vmovn_u32(quant(v[1], &k)));
            let hi = vcombine_u16(vmovn_u32(quant(v[2], &k)), vmovn_u32(quant(v[3], &k)));
            let bytes = vcombine_u8(vmovn_u16(lo), vmovn_u16(hi));
            // SAFETY: `d` holds 16 bytes; NEON stores need no alignment.
            unsafe { vst1q_u8(d.as_mut_ptr(), bytes) };
        }
        for (d, &v) in dst[body..].iter_mut().zip(&row[body..]) {
            *d = quantize_value(v, inv, zp, top);
        }
        (sc, zp as i32)
    }

    /// The constants of one row's quantization, in every lane.
    struct Quant {
        inv: float32x4_t,
        zp: float32x4_t,
        top: float32x4_t,
    }

    /// 4 values as u32 codes in [0, top]; a NaN lane becomes 0 (`fmaxnm` takes the number), as
    /// `clamp` and `as u8` make it.
    #[target_feature(enable = "neon")]
    #[inline]
    fn quant(v: float32x4_t, k: &Quant) -> uint32x4_t {
        let r = vrndnq_f32(vmulq_f32(v, k.inv));
        let q = vmaxnmq_f32(vaddq_f32(r, k.zp), vdupq_n_f32(0.0));
        vcvtq_u32_f32(vminnmq_f32(q, k.top))
    }

    /// Codes `16 c..16 c + 16` of row `x` as `u - 128` in i8 (the top bit flipped); past the
    /// row's end (its width is a multiple of 4, not of 16) zeros, which meet zero weights.
    #[target_feature(enable = "neon")]
    #[inline]
    fn centred(x: &[u8], c: usize) -> int8x16_t {
        let from = c * STEP;
        let u = match x.get(from..from + STEP) {
            // SAFETY: the slice holds 16 bytes; NEON loads need no alignment.
            Some(b) => unsafe { vld1q_u8(b.as_ptr()) },
            None => {
                let mut b = [0u8; STEP];
                b[..x.len() - from].copy_from_slice(&x[from..]);
                // SAFETY: `b` holds 16 bytes; NEON loads need no alignment.
                unsafe { vld1q_u8(b.as_ptr()) }
            }
        };
        vreinterpretq_s8_u8(veorq_u8(u, vdupq_n_u8(0x80)))
    }

    /// 16 weights from `w[at..]`.
    #[target_feature(enable = "neon")]
    #[inline]
    fn weights16(w: &[i8], at: usize) -> int8x16_t {
        let bytes: &[i8; 16] = w[at..at + 16].try_into().expect("16 weights");
        // SAFETY: `bytes` holds 16 bytes; NEON loads need no alignment.
        unsafe { vld1q_s8(bytes.as_ptr()) }
    }

    pub(super) fn rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        if !available() {
            return portable::rows(xq, r0, w, sink, 1);
        }
        // SAFETY (both): the CPU has NEON (checked just above), the feature `by_rows` is
        // compiled for.
        if w.neon().paired {
            unsafe { by_rows::<true>(xq, r0, w, sink) }
        } else {
            unsafe { by_rows::<false>(xq, r0, w, sink) }
        }
    }

    /// The NEON kernel over row chunks, blocks of 4 outputs and row tiles. `PAIRED`: no weight
    /// is -128, so two products add up in i16 before `sadalp` (see the module's doc).
    #[target_feature(enable = "neon")]
    fn by_rows<const PAIRED: bool>(
        xq: &QuantizedRows,
        r0: usize,
        w: &PackedWeights,
        mut sink: Sink<'_>,
    ) {
        let nw = w.neon();
        let rows = sink_rows(&sink, w.out);
        let end = (r0 + rows).min(xq.rows);
        let quads = w.out.div_ceil(QUAD);
        let size = nw.k16 * QUAD * STEP;
        let mut c0 = r0;
        while c0 < end {
            let c1 = (c0 + MC).min(end);
            for q in 0..quads {
                let wq = &nw.data[q * size..(q + 1) * size];
                let o0 = q * QUAD;
                let mut r = c0;
                while r < c1 {
                    let mr = (c1 - r).min(MR);
                    let s = &mut sink;
                    match mr {
                        4 => emit(s, xq, w, r0, r, o0, &tile::<4, PAIRED>(xq, r, wq, nw.k16)),
                        3 => emit(s, xq, w, r0, r, o0, &tile::<3, PAIRED>(xq, r, wq, nw.k16)),
                        2 => emit(s, xq, w, r0, r, o0, &tile::<2, PAIRED>(xq, r, wq, nw.k16)),
                        _ => emit(s, xq, w, r0, r, o0, &tile::<1, PAIRED>(xq, r, wq, nw.k16)),
                    }
                    r += mr;
                }
            }
            c0 = c1;
        }
    }

    /// The accumulators of rows `r..` and outputs `o0..o0 + 4`, one register per row, to the
    /// sink.
    #[target_feature(enable = "neon")]
    #[inline]
    fn emit(
        sink: &mut Sink<'_>,
        xq: &QuantizedRows,
        w: &PackedWeights,
        r0: usize,
        r: usize,
        o0: usize,
        acc: &[int32x4_t],
    ) {
        for (i, &a) in acc.iter().enumerate() {
            store(sink, xq, w, r0, r + i, o0, a);
        }
    }

    /// Rows `r..r + R` times one block of 4 outputs (`wq`: `k16` steps of 64 bytes): the
    /// accumulators `sum_k (u - 128) w` of each row's 4 outputs.
    #[target_feature(enable = "neon")]
    #[inline]
    fn tile<const R: usize, const PAIRED: bool>(
        xq: &QuantizedRows,
        r: usize,
        wq: &[i8],
        k16: usize,
    ) -> [int32x4_t; R] {
        let mut xs: [&[u8]; R] = [&[]; R];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = xq.row(r + i);
        }
        // Per row and output, 4 lanes of partial sums, added across at the end. Read and
        // written by value only, so they stay in registers.
        let mut acc = [[vdupq_n_s32(0); QUAD]; R];
        for c in 0..k16 {
            let mut wv = [vdupq_n_s8(0); QUAD];
            for (j, v) in wv.iter_mut().enumerate() {
                *v = weights16(wq, (c * QUAD + j) * STEP);
            }
            for i in 0..R {
                let x = centred(xs[i], c);
                for j in 0..QUAD {
                    let p = vmull_s8(vget_low_s8(x), vget_low_s8(wv[j]));
                    acc[i][j] = if PAIRED {
                        vpadalq_s16(acc[i][j], vmlal_high_s8(p, x, wv[j]))
                    } else {
                        let a = vpadalq_s16(acc[i][j], p);
                        vpadalq_s16(a, vmull_high_s8(x, wv[j]))
                    };
                }
            }
        }
        let mut out = [vdupq_n_s32(0); R];
        for (o, a) in out.iter_mut().zip(&acc) {
            *o = vpaddq_s32(vpaddq_s32(a[0], a[1]), vpaddq_s32(a[2], a[3]));
        }
        out
    }

    pub(super) fn rows_dotprod(xq: &QuantizedRows, r0: usize, w: &PackedWeights, sink: Sink<'_>) {
        if !available_dotprod() {
            return portable::rows(xq, r0, w, sink, 1);
        }
        // SAFETY: the CPU has NEON and the dot-product extension (checked just above), the
        // features `rows_sdot` is compiled for.
        unsafe { rows_sdot(xq, r0, w, sink) }
    }

    /// The `sdot` kernel over row chunks, blocks of 16 outputs and row tiles.
    #[target_feature(enable = "neon,dotprod")]
    fn rows_sdot(xq: &QuantizedRows, r0: usize, w: &PackedWeights, mut sink: Sink<'_>) {
        let rows = sink_rows(&sink, w.out);
        let end = (r0 + rows).min(xq.rows);
        let mut c0 = r0;
        while c0 < end {
            let c1 = (c0 + MC).min(end);
            for b in 0..w.blocks() {
                let wb = w.block(b);
                let mut r = c0;
                while r < c1 {
                    let mr = (c1 - r).min(MR);
                    let s = &mut sink;
                    match mr {
                        4 => emit_block(s, xq, w, r0, r, b, &tile_sdot::<4>(xq, r, wb, w.k4)),
                        3 => emit_block(s, xq, w, r0, r, b, &tile_sdot::<3>(xq, r, wb, w.k4)),
                        2 => emit_block(s, xq, w, r0, r, b, &tile_sdot::<2>(xq, r, wb, w.k4)),
                        _ => emit_block(s, xq, w, r0, r, b, &tile_sdot::<1>(xq, r, wb, w.k4)),
                    }
                    r += mr;
                }
            }
            c0 = c1;
        }
    }

    /// The accumulators of rows `r..` and block `b` (4 registers of 4 outputs per row) to the
    /// sink; the outputs past `out` in the last block are left out.
    #[target_feature(enable = "neon")]
    #[inline]
    fn emit_block(
        sink: &mut Sink<'_>,
        xq: &QuantizedRows,
        w: &PackedWeights,
        r0: usize,
        r: usize,
        b: usize,
        acc: &[[int32x4_t; 4]],
    ) {
        for (i, a) in acc.iter().enumerate() {
            for (j, &v) in a.iter().enumerate() {
                let o0 = b * BLOCK_OUT + j * QUAD;
                if o0 < w.out {
                    store(sink, xq, w, r0, r + i, o0, v);
                }
            }
        }
    }

    /// `acc + sum_{j<4} w[4 lane + j] x[4 L + j]` per i32 lane: `sdot` by element, the
    /// 4 bytes `L` of `x` against each lane's 4 bytes of `w`.
    #[target_feature(enable = "neon,dotprod")]
    #[inline]
    fn sdot<const L: i32>(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        let mut acc = acc;
        // SAFETY: `sdot` reads and writes only these registers (no memory, no flags); the CPU
        // has the dot-product extension (this function's target feature, which its callers
        // check).
        unsafe {
            asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.4b[{lane}]",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                lane = const L,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }

    /// The 4 registers of group `g` of a packed block (4 outputs x 4 inputs each). Inlined
    /// always (a `target_feature` function cannot be), which the disassembly showed it was not
    /// as an `#[inline]` one: the registers went through memory on every call.
    #[inline(always)]
    fn group(wb: &[i8], g: usize) -> [int8x16_t; 4] {
        let bytes: &[i8; GROUP] = wb[g * GROUP..(g + 1) * GROUP]
            .try_into()
            .expect("64 weights");
        let p = bytes.as_ptr();
        // SAFETY: `bytes` holds 64 bytes, the 4 loads of 16 read them; NEON is part of the
        // aarch64 target's baseline and its loads need no alignment.
        unsafe {
            [
                vld1q_s8(p),
                vld1q_s8(p.add(16)),
                vld1q_s8(p.add(32)),
                vld1q_s8(p.add(48)),
            ]
        }
    }

    /// Rows `r..r + R` times one packed block of 16 outputs (`wb`: `k4` groups of 64 bytes):
    /// per row, the accumulators `sum_k (u - 128) w` of the block's outputs 4 by 4.
    #[target_feature(enable = "neon,dotprod")]
    #[inline]
    fn tile_sdot<const R: usize>(
        xq: &QuantizedRows,
        r: usize,
        wb: &[i8],
        k4: usize,
    ) -> [[int32x4_t; 4]; R] {
        let mut xs: [&[u8]; R] = [&[]; R];
        for (i, x) in xs.iter_mut().enumerate() {
            *x = xq.row(r + i);
        }
        // Read and written by value only, so they stay in registers.
        let mut acc = [[vdupq_n_s32(0); 4]; R];
        // Steps of 4 groups (16 inputs, one register of codes per row), then the groups left.
        let steps = k4 / 4;
        for s in 0..steps {
            let mut x = [vdupq_n_s8(0); R];
            for (v, row) in x.iter_mut().zip(&xs) {
                *v = centred(row, s);
            }
            macro_rules! lane {
                ($l:literal) => {
                    let wv = group(wb, 4 * s + $l);
                    for i in 0..R {
                        for j in 0..4 {
                            acc[i][j] = sdot::<$l>(acc[i][j], wv[j], x[i]);
                        }
                    }
                };
            }
            lane!(0);
            lane!(1);
            lane!(2);
            lane!(3);
        }
        for g in 4 * steps..k4 {
            let wv = group(wb, g);
            for i in 0..R {
                let x = centred(&xs[i][g * BLOCK_IN..(g + 1) * BLOCK_IN], 0);
                for j in 0..4 {
                    acc[i][j] = sdot::<0>(acc[i][j], wv[j], x);
                }
            }
        }
        acc
    }

    /// The shared epilogue (`dequantize`, after the zero-point correction) for the 4 outputs
    /// `o0..o0 + 4` of row `r`, lane by lane: `t = acc + (128 - z) sum`, then
    /// `t as f32 * (s_x s_w) + bias` with the same operations in the same order (a multiply,
    /// then an add, never fused).
    #[target_feature(enable = "neon")]
    #[inline]
    fn store(
        sink: &mut Sink<'_>,
        xq: &QuantizedRows,
        w: &PackedWeights,
        r0: usize,
        r: usize,
        o0: usize,
        acc: int32x4_t,
    ) {
        let out = w.out;
        let width = QUAD.min(out - o0);
        // The sums and scales are padded to whole blocks of 16, so the 4 from o0 (a multiple
        // of 4 below `out`) are there.
        let sums: &[i32; 4] = w.sums[o0..o0 + QUAD].try_into().expect("4 sums");
        // SAFETY: `sums` holds 4 i32; NEON loads need no alignment.
        let sums = unsafe { vld1q_s32(sums.as_ptr()) };
        let t = vmlaq_s32(acc, sums, vdupq_n_s32(128 - xq.zero[r]));
        let at = (r - r0) * out + o0;
        match sink {
            Sink::Int(dst) => {
                let mut lanes = [0i32; 4];
                // SAFETY: `lanes` holds 4 i32; NEON stores need no alignment.
                unsafe { vst1q_s32(lanes.as_mut_ptr(), t) };
                dst[at..at + width].copy_from_slice(&lanes[..width]);
            }
            Sink::Float { y, bias } => {
                let scales: &[f32; 4] = w.scales[o0..o0 + QUAD].try_into().expect("4 scales");
                // SAFETY: `scales` holds 4 f32; NEON loads need no alignment.
                let sw = unsafe { vld1q_f32(scales.as_ptr()) };
                let s = vmulq_f32(vdupq_n_f32(xq.scale[r]), sw);
                let v = vmulq_f32(vcvtq_f32_s32(t), s);
                let mut b = [0f32; 4];
                if let Some(bias) = bias {
                    b[..width].copy_from_slice(&bias[o0..o0 + width]);
                }
                // SAFETY: `b` holds 4 f32; NEON loads need no alignment.
                let v = vaddq_f32(v, unsafe { vld1q_f32(b.as_ptr()) });
                let mut lanes = [0f32; 4];
                // SAFETY: `lanes` holds 4 f32; NEON stores need no alignment.
                unsafe { vst1q_f32(lanes.as_mut_ptr(), v) };
                y[at..at + width].copy_from_slice(&lanes[..width]);
            }
        }
    }
}
