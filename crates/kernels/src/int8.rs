//! The int8 matmul of quantized linear layers: symmetric per-output-channel int8 weights times
//! dynamically quantized activations, with i32 accumulation, on AVX-512 VNNI, AVX2, aarch64's
//! NEON (with or without the dot-product extension) or any CPU.
//!
//! `y[N, out] = dequant(x_q[N, in] * W_q[out, in]^T) + bias`:
//!
//! - weights: `W_q[o, k] = round(W[o, k] / s_w[o])` with `s_w[o] = max_k |W[o, k]| / 127`
//!   (symmetric, one scale per output channel), packed once ([`PackedWeights`]) into blocks of
//!   [`BLOCK_OUT`] outputs x [`BLOCK_IN`] inputs, the operand layout of `vpdpbusd`;
//! - activations: each row is quantized on the fly to `u8` with its own scale and zero point
//!   (`x ~ s_x (u - z)`, the range always holding 0), so `vpdpbusd`'s `u8 x i8` products apply
//!   directly and the zero point is taken out once per output with the weights' row sums:
//!   `sum_k (u_k - z) w_k = sum_k u_k w_k - z sum_k w_k`. The codes span [0, 255]
//!   ([`ActivationRange::Full`]) except on the AVX2 path, which quantizes to [0, 127]
//!   ([`ActivationRange::Reduced`], PyTorch's `reduce_range`) so that its `vpmaddubsw` pairs
//!   cannot saturate;
//! - accumulation in i32, dequantization `acc * (s_x * s_w[o]) + b[o]`.
//!
//! Every implementation computes exactly the same i32 accumulators from the same quantized rows
//! and, with the same float operations in the same order, the same outputs bit for bit (the
//! tests check every one this CPU runs against a plain reference):
//!
//! - `int8/vnni.rs`: AVX-512 VNNI, one `vpdpbusd` per four products of 16 outputs;
//! - `int8/avx2.rs`: AVX2, `vpmaddubsw` + `vpmaddwd` as fbgemm does on CPUs without VNNI, on
//!   7-bit rows (an exact `vpmaddwd`-on-i16 kernel takes 8-bit rows quantized for another path);
//! - `int8/neon.rs`: aarch64, `sdot` on the packed weights as they are where the CPU has the
//!   dot-product extension, else NEON's widening multiplies (`smull`, `smlal2`, `sadalp`), both
//!   on 8-bit rows (the codes' top bit flipped to make them signed, the zero point corrected
//!   with the weights' sums);
//! - `int8/portable.rs`: any CPU, the integer products through the f32 gemm, exact because
//!   every partial sum stays below 2^24.
//!
//! So the VNNI, NEON and portable paths give the same answers bit for bit; the AVX2 path, whose
//! activations carry one bit less, gives answers within that rounding of theirs.
//!
//! [`Isa::current`] follows the process's [`crate::dispatch::level`] (`TAXON_KERNELS`). The
//! SIMD paths split rows over the rayon pool the caller runs in; the portable one lets the
//! gemm split its work over it.

mod avx2;
mod neon;
mod portable;
mod vnni;

use std::fmt;
use std::sync::OnceLock;

use rayon::prelude::*;

use crate::dispatch::{self, Level};

/// Outputs per packed weight block (one 512-bit register of i32 accumulators).
pub const BLOCK_OUT: usize = 16;
/// Consecutive inputs per packed group (the four `u8 x i8` products `vpdpbusd` sums).
pub const BLOCK_IN: usize = 4;
/// Bytes of one packed `BLOCK_OUT x BLOCK_IN` group.
const GROUP: usize = BLOCK_OUT * BLOCK_IN;
/// Rows of the output that one rayon task computes.
const ROWS_PER_TASK: usize = 48;

/// A shape or length that does not fit the operation, naming the argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Int8Error {
    /// A slice has the wrong number of elements.
    Length {
        /// Which argument.
        what: &'static str,
        /// Elements the shapes call for.
        expected: usize,
        /// Elements given.
        found: usize,
    },
    /// A dimension is zero or too large for the i32 accumulator.
    Dimension {
        /// Which dimension.
        what: &'static str,
        /// Its value.
        value: usize,
    },
    /// A weight or scale is NaN or infinite.
    NotFinite {
        /// Which argument.
        what: &'static str,
        /// Index of the first bad element.
        index: usize,
    },
}

impl fmt::Display for Int8Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length {
                what,
                expected,
                found,
            } => write!(f, "{what}: expected {expected} elements, found {found}"),
            Self::Dimension { what, value } => write!(
                f,
                "{what} = {value} is out of range (1..={MAX_INPUTS} for inputs, at least 1 otherwise)"
            ),
            Self::NotFinite { what, index } => {
                write!(f, "{what}: element {index} is not a finite number")
            }
        }
    }
}

impl std::error::Error for Int8Error {}

/// Widest input: `255 * 127 * in` must fit an i32 accumulator with the zero-point correction.
pub const MAX_INPUTS: usize = 1 << 15;

fn check_len(what: &'static str, expected: usize, found: usize) -> Result<(), Int8Error> {
    if expected == found {
        Ok(())
    } else {
        Err(Int8Error::Length {
            what,
            expected,
            found,
        })
    }
}

fn check_dims(out: usize, inp: usize) -> Result<(), Int8Error> {
    if out == 0 {
        return Err(Int8Error::Dimension {
            what: "out",
            value: out,
        });
    }
    if inp == 0 || inp > MAX_INPUTS {
        return Err(Int8Error::Dimension {
            what: "in",
            value: inp,
        });
    }
    Ok(())
}

/// Symmetric per-output-channel quantization of a row-major `(out, in)` weight: the int8
/// values (row-major) and one scale per output (`max |w| / 127`, 1 for an all-zero row).
pub fn quantize_weights(
    w: &[f32],
    out: usize,
    inp: usize,
) -> Result<(Vec<i8>, Vec<f32>), Int8Error> {
    check_dims(out, inp)?;
    check_len("weights", out * inp, w.len())?;
    if let Some(index) = w.iter().position(|v| !v.is_finite()) {
        return Err(Int8Error::NotFinite {
            what: "weights",
            index,
        });
    }
    let mut q = vec![0i8; out * inp];
    let mut scales = vec![0f32; out];
    for o in 0..out {
        let row = &w[o * inp..(o + 1) * inp];
        let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = if amax > 0.0 { amax / 127.0 } else { 1.0 };
        scales[o] = s;
        for (d, v) in q[o * inp..(o + 1) * inp].iter_mut().zip(row) {
            *d = (v / s).round().clamp(-127.0, 127.0) as i8;
        }
    }
    Ok((q, scales))
}

/// int8 weights of one linear layer, packed for the kernel: block `b` holds outputs
/// `16b..16b+16`, as `in/4` groups of 16 outputs x 4 consecutive inputs (64 bytes, output-major
/// within the group); the tail of the last block and of the inputs is zero.
#[derive(Clone, Debug)]
pub struct PackedWeights {
    out: usize,
    inp: usize,
    /// Groups of four inputs per block (`in` rounded up to 4, divided by 4).
    k4: usize,
    /// `blocks * k4 * 64` bytes.
    data: Vec<i8>,
    /// Sum of each output's int8 weights (zero-point correction), padded to whole blocks.
    sums: Vec<i32>,
    /// Each output's scale, padded to whole blocks with 0.
    scales: Vec<f32>,
    /// The weights as the AVX2 kernel reads them, built on its first use.
    avx2: OnceLock<avx2::Weights>,
    /// The weights as the NEON kernel (aarch64 without `sdot`) reads them, built on its first
    /// use.
    neon: OnceLock<neon::Weights>,
    /// The weights as row-major f32 for the portable path, built on its first use.
    portable: OnceLock<Vec<f32>>,
}

impl PartialEq for PackedWeights {
    /// The same layer (the forms derived for the AVX2, NEON and portable paths are left out).
    fn eq(&self, other: &Self) -> bool {
        (self.out, self.inp, self.k4) == (other.out, other.inp, other.k4)
            && self.data == other.data
            && self.sums == other.sums
            && self.scales == other.scales
    }
}

impl PackedWeights {
    /// Quantizes (see [`quantize_weights`]) and packs a row-major `(out, in)` f32 weight.
    pub fn quantize(w: &[f32], out: usize, inp: usize) -> Result<Self, Int8Error> {
        let (q, s) = quantize_weights(w, out, inp)?;
        Self::from_int8(&q, &s, out, inp)
    }

    /// Packs row-major `(out, in)` int8 weights with their per-output scales.
    pub fn from_int8(q: &[i8], scales: &[f32], out: usize, inp: usize) -> Result<Self, Int8Error> {
        check_dims(out, inp)?;
        check_len("int8 weights", out * inp, q.len())?;
        check_len("scales", out, scales.len())?;
        if let Some(index) = scales.iter().position(|v| !v.is_finite()) {
            return Err(Int8Error::NotFinite {
                what: "scales",
                index,
            });
        }
        let blocks = out.div_ceil(BLOCK_OUT);
        let k4 = inp.div_ceil(BLOCK_IN);
        let mut data = vec![0i8; blocks * k4 * GROUP];
        let mut sums = vec![0i32; blocks * BLOCK_OUT];
        let mut padded = vec![0f32; blocks * BLOCK_OUT];
        for o in 0..out {
            let (b, lane) = (o / BLOCK_OUT, o % BLOCK_OUT);
            let row = &q[o * inp..(o + 1) * inp];
            for (k, &v) in row.iter().enumerate() {
                data[(b * k4 + k / BLOCK_IN) * GROUP + lane * BLOCK_IN + k % BLOCK_IN] = v;
            }
            sums[o] = row.iter().map(|&v| i32::from(v)).sum();
            padded[o] = scales[o];
        }
        Ok(Self {
            out,
            inp,
            k4,
            data,
            sums,
            scales: padded,
            avx2: OnceLock::new(),
            neon: OnceLock::new(),
            portable: OnceLock::new(),
        })
    }

    /// The layers `parts` (all with the same inputs) stacked into one whose outputs are those
    /// of `parts[0]`, then those of `parts[1]`, ...: one product gives every part's outputs side
    /// by side in each row, with the activations quantized once, and the same values as the
    /// separate products bit for bit (the same per-row quantization and per-output sums).
    pub fn concat(parts: &[&PackedWeights]) -> Result<Self, Int8Error> {
        let Some(first) = parts.first() else {
            return Err(Int8Error::Dimension {
                what: "out",
                value: 0,
            });
        };
        let inp = first.inp;
        let mut q = Vec::new();
        let mut scales = Vec::new();
        for p in parts {
            check_len("inputs of a stacked layer", inp, p.inp)?;
            q.extend(p.int8());
            scales.extend_from_slice(p.scales());
        }
        Self::from_int8(&q, &scales, scales.len(), inp)
    }

    /// Outputs (rows of the weight).
    pub fn out(&self) -> usize {
        self.out
    }

    /// Inputs (columns of the weight).
    pub fn inp(&self) -> usize {
        self.inp
    }

    /// The per-output scales.
    pub fn scales(&self) -> &[f32] {
        &self.scales[..self.out]
    }

    /// The row-major `(out, in)` int8 weights (unpacked, e.g. for saving).
    pub fn int8(&self) -> Vec<i8> {
        let mut q = vec![0i8; self.out * self.inp];
        for o in 0..self.out {
            let (b, lane) = (o / BLOCK_OUT, o % BLOCK_OUT);
            for k in 0..self.inp {
                q[o * self.inp + k] = self.data
                    [(b * self.k4 + k / BLOCK_IN) * GROUP + lane * BLOCK_IN + k % BLOCK_IN];
            }
        }
        q
    }

    /// The dequantized row-major `(out, in)` f32 weights (`q * scale`).
    pub fn dequantize(&self) -> Vec<f32> {
        let q = self.int8();
        q.iter()
            .enumerate()
            .map(|(i, &v)| f32::from(v) * self.scales[i / self.inp])
            .collect()
    }

    fn blocks(&self) -> usize {
        self.sums.len() / BLOCK_OUT
    }

    /// The packed groups of block `b`.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    fn block(&self, b: usize) -> &[i8] {
        &self.data[b * self.k4 * GROUP..(b + 1) * self.k4 * GROUP]
    }

    /// The portable path's form of these weights (built once, on first use).
    fn portable(&self) -> &[f32] {
        self.portable
            .get_or_init(|| portable::weights_f32(&self.data, self.out, self.inp, self.k4))
    }

    /// The AVX2 kernel's form of these weights (built once, on first use).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    fn avx2(&self) -> &avx2::Weights {
        self.avx2
            .get_or_init(|| avx2::Weights::build(&self.data, self.blocks(), self.k4))
    }

    /// The NEON kernel's form of these weights (built once, on first use).
    #[cfg_attr(not(target_arch = "aarch64"), allow(dead_code))]
    fn neon(&self) -> &neon::Weights {
        self.neon
            .get_or_init(|| neon::Weights::build(&self.int8(), self.out, self.inp))
    }
}

/// The codes activations are quantized to: `[0, max]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActivationRange {
    /// `[0, 255]`: 8 bits, the VNNI, NEON and portable paths.
    Full,
    /// `[0, 127]`: 7 bits, the AVX2 path, whose `vpmaddubsw` sums two `u8 x i8` products into
    /// a saturating i16: `2 * 127 * 128 = 32_512` fits, `2 * 255 * 128` does not.
    Reduced,
}

impl ActivationRange {
    /// The largest code.
    pub fn max(self) -> u8 {
        match self {
            Self::Full => 255,
            Self::Reduced => 127,
        }
    }

    /// The largest code as f32.
    #[inline(always)]
    fn top(self) -> f32 {
        f32::from(self.max())
    }
}

/// The scale and zero point of a row whose values lie in `[lo, hi]` (`lo <= 0 <= hi`), for
/// codes in `[0, top]`.
#[inline(always)]
fn scale_and_zero(lo: f32, hi: f32, top: f32) -> (f32, f32) {
    let range = hi - lo;
    if range > 0.0 && range.is_finite() {
        let sc = range / top;
        (sc, (-lo / sc).round_ties_even().clamp(0.0, top))
    } else {
        (1.0, 0.0)
    }
}

/// One activation as u8: `clamp(round_ties_even(v * inv) + zp, 0, top)`.
#[inline(always)]
fn quantize_value(v: f32, inv: f32, zp: f32, top: f32) -> u8 {
    (round_ties_even(v * inv) + zp).clamp(0.0, top) as u8
}

/// `x.round_ties_even()` without a libm call where the target has no rounding instruction
/// (x86-64 before SSE4.1, the portable build): below 2^22 in magnitude, adding and taking away
/// 1.5 * 2^23 rounds to the nearest integer, ties to even (the sum's ulp is 1); larger values,
/// infinities and NaN are kept as they are (already integers, or not numbers). Same values as
/// `round_ties_even` (a zero's sign may differ, which the caller's `+ zp` and `as u8` erase),
/// and it vectorizes.
#[inline(always)]
fn round_ties_even(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0;
    if x.abs() < 4_194_304.0 {
        (x + MAGIC) - MAGIC
    } else {
        x
    }
}

/// Quantizes one row into `dst` (at least as long) to codes in `[0, range.max()]`, returning
/// its scale and zero point (the SIMD modules have AVX-512 and AVX2 copies that give the same
/// bytes).
#[inline(always)]
fn quantize_row_with(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
    let (lo, hi) = row
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let top = range.top();
    let (sc, zp) = scale_and_zero(lo, hi, top);
    let inv = 1.0 / sc;
    for (d, &v) in dst.iter_mut().zip(row) {
        *d = quantize_value(v, inv, zp, top);
    }
    (sc, zp as i32)
}

/// [`quantize_row_with`] compiled for any x86-64 (or other) CPU.
fn quantize_row_portable(row: &[f32], dst: &mut [u8], range: ActivationRange) -> (f32, i32) {
    quantize_row_with(row, dst, range)
}

/// Rows of activations quantized to u8 with a per-row scale and zero point, each row padded
/// to a multiple of four bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedRows {
    rows: usize,
    /// The codes' range (which kernel of the AVX2 path they take).
    range: ActivationRange,
    /// Bytes per row (`in` rounded up to 4).
    stride: usize,
    data: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
}

impl QuantizedRows {
    /// Quantizes the row-major `(n, in)` matrix `x` for this process's implementation
    /// ([`Isa::current`]): per row, `s = (max - min) / top` over a range that holds 0,
    /// `z = round(-min / s)`, `u = clamp(round(x / s) + z, 0, top)` (rounding to nearest
    /// even), with `top` the implementation's [`Isa::activation_range`] (255, or 127 on AVX2).
    /// Non-finite inputs do not panic (they quantize to an end of the range or to `z`).
    pub fn quantize(x: &[f32], n: usize, inp: usize) -> Result<Self, Int8Error> {
        Self::quantize_on(Isa::current(), x, n, inp)
    }

    /// [`QuantizedRows::quantize`] for `isa` (one this CPU lacks runs the portable
    /// implementation, with its range).
    pub fn quantize_on(isa: Isa, x: &[f32], n: usize, inp: usize) -> Result<Self, Int8Error> {
        let isa = isa.usable();
        Self::quantize_in(isa, isa.activation_range(), x, n, inp)
    }

    /// [`QuantizedRows::quantize`] to codes of `range`, with the vector instructions of `isa`
    /// (the same bytes on every implementation; one this CPU lacks runs the portable code).
    /// Every implementation multiplies rows of either range exactly.
    pub fn quantize_in(
        isa: Isa,
        range: ActivationRange,
        x: &[f32],
        n: usize,
        inp: usize,
    ) -> Result<Self, Int8Error> {
        if inp == 0 || inp > MAX_INPUTS {
            return Err(Int8Error::Dimension {
                what: "in",
                value: inp,
            });
        }
        check_len("activations", n * inp, x.len())?;
        let stride = inp.div_ceil(BLOCK_IN) * BLOCK_IN;
        let mut data = vec![0u8; n * stride];
        let mut scale = vec![1f32; n];
        let mut zero = vec![0i32; n];
        type Row<'a> = ((&'a [f32], &'a mut [u8]), (&'a mut f32, &'a mut i32));
        let isa = isa.usable();
        let one = |((row, dst), (s, z)): Row<'_>| {
            (*s, *z) = match isa {
                Isa::Avx512Vnni => vnni::quantize_row(row, dst, range),
                Isa::Avx2 => avx2::quantize_row(row, dst, range),
                Isa::Neon | Isa::NeonDotprod => neon::quantize_row(row, dst, range),
                Isa::Portable => quantize_row_portable(row, dst, range),
            };
        };
        if n * inp >= 1 << 16 && rayon::current_num_threads() > 1 {
            x.par_chunks(inp)
                .zip(data.par_chunks_mut(stride))
                .zip(scale.par_iter_mut().zip(zero.par_iter_mut()))
                .for_each(one);
        } else {
            x.chunks(inp)
                .zip(data.chunks_mut(stride))
                .zip(scale.iter_mut().zip(zero.iter_mut()))
                .for_each(one);
        }
        Ok(Self {
            rows: n,
            range,
            stride,
            data,
            scale,
            zero,
        })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The range of the codes.
    pub fn range(&self) -> ActivationRange {
        self.range
    }

    /// The u8 values of row `r` (padded to a multiple of 4 with zeros).
    pub fn row(&self, r: usize) -> &[u8] {
        &self.data[r * self.stride..(r + 1) * self.stride]
    }

    /// Scale of row `r`.
    pub fn scale(&self, r: usize) -> f32 {
        self.scale[r]
    }

    /// Zero point of row `r`.
    pub fn zero(&self, r: usize) -> i32 {
        self.zero[r]
    }
}

/// Which implementation runs the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Any CPU: the exact integer products through the f32 gemm (of [`Level::Portable`]).
    Portable,
    /// AVX2 (`vpmaddubsw` + `vpmaddwd` on 7-bit activations): Intel Haswell and later, AMD
    /// Zen 1 and later.
    Avx2,
    /// AVX-512 with VNNI (`vpdpbusd`): Intel Cascade Lake and later, AMD Zen 4 and later.
    Avx512Vnni,
    /// aarch64's NEON (`smull`, `smlal2`, `sadalp` on 8-bit rows): every aarch64 CPU.
    Neon,
    /// aarch64's NEON with the dot-product extension (`sdot` on 8-bit rows).
    NeonDotprod,
}

impl Isa {
    /// Every implementation, those of x86-64 slowest first, then those of aarch64.
    pub const ALL: [Isa; 5] = [
        Isa::Portable,
        Isa::Avx2,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::NeonDotprod,
    ];

    /// The fastest implementation at or below `level` that this CPU runs.
    pub fn at(level: Level) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if level >= Level::Avx512 && Level::Avx512.supported() && Self::Avx512Vnni.available() {
                return Self::Avx512Vnni;
            }
            if level >= Level::Avx2 && Level::Avx2.supported() && Self::Avx2.available() {
                return Self::Avx2;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if level >= Level::NeonDotprod
                && Level::NeonDotprod.supported()
                && Self::NeonDotprod.available()
            {
                return Self::NeonDotprod;
            }
            if level >= Level::Neon && Level::Neon.supported() && Self::Neon.available() {
                return Self::Neon;
            }
        }
        let _ = level;
        Self::Portable
    }

    /// The implementation this process runs (at [`dispatch::level`], i.e. `TAXON_KERNELS`
    /// or the best the CPU has).
    pub fn current() -> Self {
        Self::at(dispatch::level())
    }

    /// The fastest implementation this CPU runs, whatever `TAXON_KERNELS` says.
    pub fn best() -> Self {
        Self::at(Level::best())
    }

    /// Whether this CPU runs `self`.
    pub fn available(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx2 => avx2::available(),
            Self::Avx512Vnni => vnni::available(),
            Self::Neon => neon::available(),
            Self::NeonDotprod => neon::available_dotprod(),
        }
    }

    /// Every implementation this CPU runs, slowest first (what tests and benches loop over).
    pub fn available_all() -> Vec<Self> {
        Self::ALL.into_iter().filter(|i| i.available()).collect()
    }

    /// The codes this implementation quantizes activations to: 7 bits on AVX2 (its
    /// `vpmaddubsw` would saturate on 8), 8 bits elsewhere.
    pub fn activation_range(self) -> ActivationRange {
        match self {
            Self::Avx2 => ActivationRange::Reduced,
            Self::Portable | Self::Avx512Vnni | Self::Neon | Self::NeonDotprod => {
                ActivationRange::Full
            }
        }
    }

    /// `self` when this CPU runs it, else the portable implementation.
    fn usable(self) -> Self {
        if self.available() {
            self
        } else {
            Self::Portable
        }
    }

    /// The name [`crate::dispatch::paths`] reports: `avx512-vnni`, `avx2`, `neon-dotprod`,
    /// `neon` or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::Avx512Vnni => "avx512-vnni",
            Self::Neon => "neon",
            Self::NeonDotprod => "neon-dotprod",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a tile of accumulators turns into.
pub(crate) enum Sink<'a> {
    /// `y = (acc - z sum) as f32 * (s_x * s_w) + bias`, rows of `out` floats.
    Float {
        y: &'a mut [f32],
        bias: Option<&'a [f32]>,
    },
    /// The zero-point-corrected accumulators `acc - z sum`, rows of `out` i32.
    Int(&'a mut [i32]),
}

/// `y[n, out] = x[n, in] W^T (+ bias)` with the implementation of this process
/// ([`Isa::current`]); `x` is quantized per row on the fly. `y` is overwritten.
pub fn matmul(
    x: &[f32],
    n: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<(), Int8Error> {
    matmul_on(Isa::current(), x, n, w, bias, y)
}

/// [`matmul`] on a chosen implementation, with its activation range; one that this CPU lacks
/// falls back to the portable one (check [`Isa::available`] first to know which ran).
pub fn matmul_on(
    isa: Isa,
    x: &[f32],
    n: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<(), Int8Error> {
    check_len("activations", n * w.inp, x.len())?;
    check_len("output", n * w.out, y.len())?;
    if let Some(b) = bias {
        check_len("bias", w.out, b.len())?;
    }
    let xq = QuantizedRows::quantize_on(isa, x, n, w.inp)?;
    run(isa, &xq, w, Sink::Float { y, bias });
    Ok(())
}

/// The exact integer results `sum_k (u[r, k] - z[r]) W_q[o, k]` of pre-quantized rows, row-major
/// `(rows, out)`; for checking implementations against each other.
pub fn matmul_i32(isa: Isa, xq: &QuantizedRows, w: &PackedWeights) -> Result<Vec<i32>, Int8Error> {
    check_len(
        "quantized row width",
        w.k4 * BLOCK_IN,
        if xq.rows == 0 {
            w.k4 * BLOCK_IN
        } else {
            xq.stride
        },
    )?;
    let mut acc = vec![0i32; xq.rows * w.out];
    run(isa, xq, w, Sink::Int(&mut acc));
    Ok(acc)
}

/// Runs `isa` (or the portable implementation where this CPU lacks it): the SIMD kernels on
/// tasks of [`ROWS_PER_TASK`] rows over the current rayon pool, the portable one as one gemm
/// per input chunk that splits itself over the pool.
fn run(isa: Isa, xq: &QuantizedRows, w: &PackedWeights, sink: Sink<'_>) {
    let isa = isa.usable();
    let threads = rayon::current_num_threads();
    if isa == Isa::Portable {
        return portable::rows(xq, 0, w, sink, threads);
    }
    let parallel = threads > 1 && xq.rows > ROWS_PER_TASK;
    let out = w.out;
    let task = |r0: usize, sink: Sink<'_>| match isa {
        Isa::Avx512Vnni => vnni::rows(xq, r0, w, sink),
        Isa::Avx2 => avx2::rows(xq, r0, w, sink),
        Isa::Neon => neon::rows(xq, r0, w, sink),
        Isa::NeonDotprod => neon::rows_dotprod(xq, r0, w, sink),
        Isa::Portable => portable::rows(xq, r0, w, sink, 1),
    };
    match sink {
        Sink::Float { y, bias } => {
            let chunk = ROWS_PER_TASK * out;
            if parallel {
                y.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(i, y)| task(i * ROWS_PER_TASK, Sink::Float { y, bias }));
            } else {
                task(0, Sink::Float { y, bias });
            }
        }
        Sink::Int(acc) => {
            let chunk = ROWS_PER_TASK * out;
            if parallel {
                acc.par_chunks_mut(chunk)
                    .enumerate()
                    .for_each(|(i, a)| task(i * ROWS_PER_TASK, Sink::Int(a)));
            } else {
                task(0, Sink::Int(acc));
            }
        }
    }
}

/// The one epilogue every implementation performs (the SIMD ones lane by lane, with the same
/// operations in the same order): the zero-point-corrected accumulator `t` of an output with
/// scale `sw`, in a row with scale `sx`, plus the output's bias (0 without one).
#[inline(always)]
fn dequantize(t: i32, sx: f32, sw: f32, bias: f32) -> f32 {
    t as f32 * (sx * sw) + bias
}

/// Rows a sink holds.
fn sink_rows(sink: &Sink<'_>, out: usize) -> usize {
    match sink {
        Sink::Float { y, .. } => y.len() / out,
        Sink::Int(a) => a.len() / out,
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod rounding_tests {
    #[test]
    fn magic_rounding_equals_round_ties_even() {
        let mut xs = vec![
            0.5f32, 1.5, 2.5, -0.5, -1.5, -2.5, 254.5, 255.5, -255.5, 0.49999997,
        ];
        xs.extend([4_194_303.5, 4_194_304.0, 8_388_609.0, 1e30, -1e30]);
        xs.extend((0..20_000).map(|i| (i as f32 - 10_000.0) * 0.0371));
        for x in xs {
            assert_eq!(super::round_ties_even(x), x.round_ties_even(), "{x}");
        }
        for x in [f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(super::round_ties_even(x), x);
        }
        assert!(super::round_ties_even(f32::NAN).is_nan());
    }
}
