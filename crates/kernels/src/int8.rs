//! The int8 matmul of quantized linear layers: symmetric per-output-channel int8 weights times
//! dynamically quantized activations, with i32 accumulation (AVX-512 VNNI when present).
//!
//! `y[N, out] = dequant(x_q[N, in] * W_q[out, in]^T) + bias`:
//!
//! - weights: `W_q[o, k] = round(W[o, k] / s_w[o])` with `s_w[o] = max_k |W[o, k]| / 127`
//!   (symmetric, one scale per output channel), packed once ([`PackedWeights`]) into blocks of
//!   [`BLOCK_OUT`] outputs x [`BLOCK_IN`] inputs, the operand layout of `vpdpbusd`;
//! - activations: each row is quantized on the fly to `u8` with its own scale and zero point
//!   (`x ~ s_x (u - z)`, the range always holding 0), so `vpdpbusd`'s `u8 x i8` products apply
//!   directly and the zero point is taken out once per output with the weights' row sums:
//!   `sum_k (u_k - z) w_k = sum_k u_k w_k - z sum_k w_k`;
//! - accumulation in i32 (no saturation: `vpdpbusd` adds four `u8 x i8` products into an i32,
//!   unlike `vpmaddubsw`'s i16 pairs), dequantization `acc * s_x * s_w[o] + b[o]`.
//!
//! The SIMD path (`int8/vnni.rs`) and the portable path compute exactly the same i32
//! accumulators and, with the same float operations in the same order, the same outputs; the
//! tests check that bit for bit. Rows are split over the rayon pool the caller runs in.

mod vnni;

use std::fmt;

use rayon::prelude::*;

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
#[derive(Clone, Debug, PartialEq)]
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
    fn block(&self, b: usize) -> &[i8] {
        &self.data[b * self.k4 * GROUP..(b + 1) * self.k4 * GROUP]
    }
}

/// The scale and zero point of a row whose values lie in `[lo, hi]` (`lo <= 0 <= hi`).
#[inline(always)]
fn scale_and_zero(lo: f32, hi: f32) -> (f32, f32) {
    let range = hi - lo;
    if range > 0.0 && range.is_finite() {
        let sc = range / 255.0;
        (sc, (-lo / sc).round_ties_even().clamp(0.0, 255.0))
    } else {
        (1.0, 0.0)
    }
}

/// One activation as u8: `clamp(round_ties_even(v * inv) + zp, 0, 255)`.
#[inline(always)]
fn quantize_value(v: f32, inv: f32, zp: f32) -> u8 {
    ((v * inv).round_ties_even() + zp).clamp(0.0, 255.0) as u8
}

/// Quantizes one row into `dst` (at least as long), returning its scale and zero point
/// (the SIMD module has an AVX-512 copy that gives the same bytes).
#[inline(always)]
fn quantize_row_with(row: &[f32], dst: &mut [u8]) -> (f32, i32) {
    let (lo, hi) = row
        .iter()
        .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let (sc, zp) = scale_and_zero(lo, hi);
    let inv = 1.0 / sc;
    for (d, &v) in dst.iter_mut().zip(row) {
        *d = quantize_value(v, inv, zp);
    }
    (sc, zp as i32)
}

/// [`quantize_row_with`] compiled for any x86-64 (or other) CPU.
fn quantize_row_portable(row: &[f32], dst: &mut [u8]) -> (f32, i32) {
    quantize_row_with(row, dst)
}

/// Rows of activations quantized to u8 with a per-row scale and zero point, each row padded
/// to a multiple of four bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantizedRows {
    rows: usize,
    /// Bytes per row (`in` rounded up to 4).
    stride: usize,
    data: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
}

impl QuantizedRows {
    /// Quantizes the row-major `(n, in)` matrix `x`: per row, `s = (max - min) / 255` over a
    /// range that holds 0, `z = round(-min / s)`, `u = clamp(round(x / s) + z, 0, 255)` (rounding to nearest even).
    /// Non-finite inputs do not panic (they quantize to an end of the range or to `z`).
    pub fn quantize(x: &[f32], n: usize, inp: usize) -> Result<Self, Int8Error> {
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
        let one = |((row, dst), (s, z)): Row<'_>| {
            (*s, *z) = vnni::quantize_row(row, dst);
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX-512 with VNNI (`vpdpbusd`): Intel Cascade Lake and later, AMD Zen 4 and later.
    Avx512Vnni,
}

impl Isa {
    /// The fastest implementation this CPU runs.
    pub fn best() -> Self {
        if Self::Avx512Vnni.available() {
            Self::Avx512Vnni
        } else {
            Self::Portable
        }
    }

    /// Whether this CPU runs `self`.
    pub fn available(self) -> bool {
        match self {
            Self::Portable => true,
            Self::Avx512Vnni => vnni::available(),
        }
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

/// `y[n, out] = x[n, in] W^T (+ bias)` with the fastest kernel this CPU runs; `x` is quantized
/// per row on the fly. `y` is overwritten.
pub fn matmul(
    x: &[f32],
    n: usize,
    w: &PackedWeights,
    bias: Option<&[f32]>,
    y: &mut [f32],
) -> Result<(), Int8Error> {
    matmul_on(Isa::best(), x, n, w, bias, y)
}

/// [`matmul`] on a chosen implementation; one that this CPU lacks falls back to the portable
/// one (check [`Isa::available`] first to know which ran).
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
    let xq = QuantizedRows::quantize(x, n, w.inp)?;
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

/// Splits the rows into tasks on the current rayon pool and runs `isa` on each.
fn run(isa: Isa, xq: &QuantizedRows, w: &PackedWeights, sink: Sink<'_>) {
    let isa = if isa.available() { isa } else { Isa::Portable };
    let parallel = rayon::current_num_threads() > 1 && xq.rows > ROWS_PER_TASK;
    let out = w.out;
    let task = |r0: usize, sink: Sink<'_>| match isa {
        Isa::Avx512Vnni => vnni::rows(xq, r0, w, sink),
        Isa::Portable => portable_rows(xq, r0, w, sink),
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

/// Writes the `BLOCK_OUT` accumulators of row `r` (global index) and block `b` into `sink`
/// (whose row 0 is global row `r0`): the one epilogue both implementations share in effect
/// (the SIMD one performs the same operations lane by lane).
#[inline(always)]
fn store_block(
    sink: &mut Sink<'_>,
    xq: &QuantizedRows,
    w: &PackedWeights,
    r0: usize,
    r: usize,
    b: usize,
    acc: &[i32; BLOCK_OUT],
) {
    let out = w.out;
    let o0 = b * BLOCK_OUT;
    let width = BLOCK_OUT.min(out - o0);
    let z = xq.zero[r];
    let sums = &w.sums[o0..o0 + BLOCK_OUT];
    let row = (r - r0) * out + o0;
    match sink {
        Sink::Int(dst) => {
            for j in 0..width {
                dst[row + j] = acc[j].wrapping_sub(z.wrapping_mul(sums[j]));
            }
        }
        Sink::Float { y, bias } => {
            let sx = xq.scale[r];
            let scales = &w.scales[o0..o0 + BLOCK_OUT];
            for j in 0..width {
                let v = acc[j].wrapping_sub(z.wrapping_mul(sums[j])) as f32 * (sx * scales[j]);
                y[row + j] = v + bias.map_or(0.0, |bias| bias[o0 + j]);
            }
        }
    }
}

/// Rows of the sink's length (starting at global row `r0`), plain Rust.
fn portable_rows(xq: &QuantizedRows, r0: usize, w: &PackedWeights, mut sink: Sink<'_>) {
    let rows = sink_rows(&sink, w.out);
    for r in r0..r0 + rows {
        let x = xq.row(r);
        for b in 0..w.blocks() {
            let mut acc = [0i32; BLOCK_OUT];
            for (xg, wg) in x.chunks_exact(BLOCK_IN).zip(w.block(b).chunks_exact(GROUP)) {
                for (lane, a) in acc.iter_mut().enumerate() {
                    let wl = &wg[lane * BLOCK_IN..(lane + 1) * BLOCK_IN];
                    *a += xg
                        .iter()
                        .zip(wl)
                        .map(|(&u, &v)| i32::from(u) * i32::from(v))
                        .sum::<i32>();
                }
            }
            store_block(&mut sink, xq, w, r0, r, b, &acc);
        }
    }
}

/// Rows a sink holds.
fn sink_rows(sink: &Sink<'_>, out: usize) -> usize {
    match sink {
        Sink::Float { y, .. } => y.len() / out,
        Sink::Int(a) => a.len() / out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The straightforward reference: quantized rows times row-major int8 weights, in i64.
    fn reference_i32(xq: &QuantizedRows, q: &[i8], out: usize, inp: usize) -> Vec<i32> {
        let mut acc = vec![0i32; xq.rows() * out];
        for r in 0..xq.rows() {
            for o in 0..out {
                let s: i64 = (0..inp)
                    .map(|k| {
                        (i64::from(xq.row(r)[k]) - i64::from(xq.zero(r)))
                            * i64::from(q[o * inp + k])
                    })
                    .sum();
                acc[r * out + o] = s as i32;
            }
        }
        acc
    }

    /// The last one is wider than one input chunk of the SIMD kernel (768 inputs).
    const SHAPES: [(usize, usize, usize); 8] = [
        (1, 1, 1),
        (1, 7, 5),
        (3, 17, 33),
        (7, 65, 31),
        (13, 130, 47),
        (50, 384, 100),
        (97, 61, 16),
        (14, 1801, 70),
    ];

    #[test]
    fn integer_results_match_the_reference_on_every_isa() {
        for (i, &(n, inp, out)) in SHAPES.iter().enumerate() {
            let x = values(n * inp, i as u64 + 1);
            let w = values(out * inp, i as u64 + 100);
            let (q, s) = quantize_weights(&w, out, inp).unwrap();
            let packed = PackedWeights::from_int8(&q, &s, out, inp).unwrap();
            let xq = QuantizedRows::quantize(&x, n, inp).unwrap();
            let want = reference_i32(&xq, &q, out, inp);
            for isa in [Isa::Portable, Isa::Avx512Vnni] {
                if !isa.available() {
                    eprintln!("skipping {isa:?}: not on this CPU");
                    continue;
                }
                let got = matmul_i32(isa, &xq, &packed).unwrap();
                assert_eq!(got, want, "{isa:?} n={n} in={inp} out={out}");
            }
        }
    }

    #[test]
    fn simd_float_output_equals_portable_bit_for_bit() {
        if !Isa::Avx512Vnni.available() {
            eprintln!("skipping: no AVX-512 VNNI on this CPU");
            return;
        }
        for (i, &(n, inp, out)) in SHAPES.iter().enumerate() {
            let x = values(n * inp, i as u64 + 7);
            let w = PackedWeights::quantize(&values(out * inp, i as u64 + 9), out, inp).unwrap();
            let bias = values(out, 3);
            for b in [None, Some(bias.as_slice())] {
                let mut y1 = vec![0f32; n * out];
                let mut y2 = vec![1f32; n * out];
                matmul_on(Isa::Portable, &x, n, &w, b, &mut y1).unwrap();
                matmul_on(Isa::Avx512Vnni, &x, n, &w, b, &mut y2).unwrap();
                assert!(
                    y1.iter().zip(&y2).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "n={n} in={inp} out={out}"
                );
            }
        }
    }

    #[test]
    fn float_output_is_close_to_the_f32_product() {
        let (n, inp, out) = (9, 384, 40);
        let x = values(n * inp, 5);
        let wf = values(out * inp, 6);
        let bias = values(out, 8);
        let w = PackedWeights::quantize(&wf, out, inp).unwrap();
        let mut y = vec![0f32; n * out];
        matmul(&x, n, &w, Some(&bias), &mut y).unwrap();
        let mut worst = 0f32;
        let mut norm = 0f32;
        for r in 0..n {
            for o in 0..out {
                let exact: f32 = (0..inp)
                    .map(|k| x[r * inp + k] * wf[o * inp + k])
                    .sum::<f32>()
                    + bias[o];
                worst = worst.max((exact - y[r * out + o]).abs());
                norm = norm.max(exact.abs());
            }
        }
        // Two 8-bit roundings over 384 products: errors of about 1% of the output range.
        assert!(worst < 0.02 * norm.max(1.0), "worst {worst} of {norm}");
    }

    #[test]
    fn parallel_tasks_give_the_same_result_as_one_thread() {
        let (n, inp, out) = (200, 96, 50);
        let x = values(n * inp, 11);
        let w = PackedWeights::quantize(&values(out * inp, 12), out, inp).unwrap();
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let four = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let run = |pool: &rayon::ThreadPool| {
            let mut y = vec![0f32; n * out];
            pool.install(|| matmul(&x, n, &w, None, &mut y)).unwrap();
            y
        };
        assert_eq!(run(&one), run(&four));
    }

    #[test]
    fn stacked_layers_give_the_separate_products_bit_for_bit() {
        // 40 outputs: the parts' blocks do not line up with the stacked layer's blocks of 16.
        let (n, inp) = (11, 70);
        let x = values(n * inp, 21);
        let outs = [40usize, 8, 33];
        let parts: Vec<PackedWeights> = outs
            .iter()
            .enumerate()
            .map(|(i, &o)| PackedWeights::quantize(&values(o * inp, 30 + i as u64), o, inp))
            .collect::<Result<_, _>>()
            .unwrap();
        let biases: Vec<Vec<f32>> = outs
            .iter()
            .enumerate()
            .map(|(i, &o)| values(o, 50 + i as u64))
            .collect();
        let refs: Vec<&PackedWeights> = parts.iter().collect();
        let stacked = PackedWeights::concat(&refs).unwrap();
        let total: usize = outs.iter().sum();
        assert_eq!((stacked.out(), stacked.inp()), (total, inp));
        let bias: Vec<f32> = biases.concat();
        for isa in [Isa::Portable, Isa::Avx512Vnni] {
            let mut y = vec![0f32; n * total];
            matmul_on(isa, &x, n, &stacked, Some(&bias), &mut y).unwrap();
            let mut col = 0;
            for (p, b) in parts.iter().zip(&biases) {
                let mut yp = vec![0f32; n * p.out()];
                matmul_on(isa, &x, n, p, Some(b), &mut yp).unwrap();
                for r in 0..n {
                    let got = &y[r * total + col..r * total + col + p.out()];
                    let want = &yp[r * p.out()..(r + 1) * p.out()];
                    assert!(
                        got.iter()
                            .zip(want)
                            .all(|(a, b)| a.to_bits() == b.to_bits()),
                        "{isa:?} row {r} part at column {col}"
                    );
                }
                col += p.out();
            }
        }
        let narrow = PackedWeights::quantize(&values(8 * (inp - 1), 3), 8, inp - 1).unwrap();
        assert!(PackedWeights::concat(&[&parts[0], &narrow]).is_err());
        assert!(PackedWeights::concat(&[]).is_err());
    }

    #[test]
    fn weight_quantization_is_symmetric_per_channel_and_round_trips() {
        let w = [0.5f32, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.5];
        let (q, s) = quantize_weights(&w, 3, 3).unwrap();
        assert_eq!(q, vec![64, -127, 32, 0, 0, 0, 127, 64, -32]);
        assert_eq!(s, vec![1.0 / 127.0, 1.0, 2.0 / 127.0]);
        let p = PackedWeights::from_int8(&q, &s, 3, 3).unwrap();
        assert_eq!(p.int8(), q);
        assert_eq!(p.scales(), s.as_slice());
        let d = p.dequantize();
        assert!(
            w.iter()
                .zip(&d)
                .all(|(a, b)| (a - b).abs() <= 0.5 * 2.0 / 127.0)
        );
    }

    #[test]
    fn simd_row_quantization_equals_portable() {
        for (i, len) in [1usize, 5, 16, 17, 31, 64, 100, 384, 1537]
            .into_iter()
            .enumerate()
        {
            let mut row = values(len, i as u64 + 40);
            // Ties: with range [-1, 1.55] the scale is 0.01 and these land on k + 0.5.
            if len > 4 {
                row[0] = -1.0;
                row[1] = 1.55;
                row[2] = 0.125;
                row[3] = -0.375;
            }
            let (mut a, mut b) = (vec![0u8; len], vec![0u8; len]);
            let pa = quantize_row_portable(&row, &mut a);
            let pb = vnni::quantize_row(&row, &mut b);
            assert_eq!((pa, &a), (pb, &b), "len {len}");
        }
        let mut d = [0u8; 3];
        assert_eq!(vnni::quantize_row(&[0.0; 3], &mut d), (1.0, 0));
        assert_eq!(d, [0, 0, 0]);
    }

    #[test]
    fn activation_rows_hold_zero_exactly() {
        let x = [-1.0f32, 0.0, 3.0, 0.5, 0.0, 0.25, 0.0, 0.0];
        let q = QuantizedRows::quantize(&x, 2, 4).unwrap();
        // Row 0: range [-1, 3], zero maps to an exact code.
        let (s, z) = (q.scale(0), q.zero(0));
        assert_eq!(q.row(0)[1] as i32 - z, 0);
        assert!((((q.row(0)[2] as i32 - z) as f32) * s - 3.0).abs() <= s);
        // Row 1: only non-negative values, so the zero point is 0.
        assert_eq!(q.zero(1), 0);
    }

    #[test]
    fn bad_shapes_and_values_are_errors_not_panics() {
        assert!(matches!(
            quantize_weights(&[1.0; 5], 2, 3),
            Err(Int8Error::Length { .. })
        ));
        assert!(matches!(
            quantize_weights(&[1.0, f32::NAN], 1, 2),
            Err(Int8Error::NotFinite { index: 1, .. })
        ));
        assert!(matches!(
            PackedWeights::from_int8(&[], &[], 0, 3),
            Err(Int8Error::Dimension { what: "out", .. })
        ));
        let w = PackedWeights::quantize(&[1.0; 6], 2, 3).unwrap();
        let mut y = vec![0f32; 4];
        let err = matmul(&[1.0; 5], 2, &w, None, &mut y).unwrap_err();
        assert_eq!(err.to_string(), "activations: expected 6 elements, found 5");
        assert!(matmul(&[1.0; 6], 2, &w, Some(&[0.0]), &mut y).is_err());
        // Non-finite activations give finite or NaN outputs, never a panic.
        matmul(
            &[f32::NAN, f32::INFINITY, 1.0, 0.0, 1.0, 2.0],
            2,
            &w,
            None,
            &mut y,
        )
        .unwrap();
        assert!(y[2..].iter().all(|v| v.is_finite()));
    }
}
