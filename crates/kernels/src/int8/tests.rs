//! Every int8 implementation this CPU runs against a plain reference (bit for bit: the integer
//! accumulators, then the one float epilogue), on shapes with tails and on weights and
//! activations at the ends of their ranges, with activations of both ranges (8 bits, and the 7
//! of the AVX2 path). On aarch64 the NEON and `sdot` kernels are among them
//! (`scripts/test-aarch64.sh` runs these tests under QEMU on CPU models with and without `sdot`).

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
                    (i64::from(xq.row(r)[k]) - i64::from(xq.zero(r))) * i64::from(q[o * inp + k])
                })
                .sum();
            acc[r * out + o] = i32::try_from(s).expect("the accumulator fits an i32");
        }
    }
    acc
}

/// The reference floats: [`reference_i32`] through the shared epilogue.
fn reference_f32(xq: &QuantizedRows, w: &PackedWeights, bias: Option<&[f32]>) -> Vec<f32> {
    let (out, inp) = (w.out(), w.inp());
    let acc = reference_i32(xq, &w.int8(), out, inp);
    acc.iter()
        .enumerate()
        .map(|(i, &t)| {
            let (r, o) = (i / out, i % out);
            dequantize(t, xq.scale(r), w.scales()[o], bias.map_or(0.0, |b| b[o]))
        })
        .collect()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

/// Tails of every kind: one input, inputs not a multiple of 4, outputs not a multiple of 8 or
/// 16, rows not a multiple of the tiles; the last two are wider than one portable gemm chunk
/// (512 inputs) and than one input chunk of the VNNI kernel (768 inputs).
const SHAPES: [(usize, usize, usize); 9] = [
    (1, 1, 1),
    (1, 7, 5),
    (3, 17, 33),
    (7, 65, 31),
    (13, 130, 47),
    (50, 384, 100),
    (97, 61, 16),
    (5, 600, 24),
    (14, 1801, 70),
];

const RANGES: [ActivationRange; 2] = [ActivationRange::Full, ActivationRange::Reduced];

#[test]
fn integer_results_match_the_reference_on_every_isa() {
    for (i, &(n, inp, out)) in SHAPES.iter().enumerate() {
        let x = values(n * inp, i as u64 + 1);
        let w = values(out * inp, i as u64 + 100);
        let (q, s) = quantize_weights(&w, out, inp).unwrap();
        let packed = PackedWeights::from_int8(&q, &s, out, inp).unwrap();
        for range in RANGES {
            let xq = QuantizedRows::quantize_in(Isa::Portable, range, &x, n, inp).unwrap();
            let want = reference_i32(&xq, &q, out, inp);
            for isa in Isa::available_all() {
                let got = matmul_i32(isa, &xq, &packed).unwrap();
                assert_eq!(got, want, "{isa} {range:?} n={n} in={inp} out={out}");
            }
        }
    }
}

#[test]
fn float_output_equals_the_reference_bit_for_bit_on_every_isa() {
    for (i, &(n, inp, out)) in SHAPES.iter().enumerate() {
        let x = values(n * inp, i as u64 + 7);
        let w = PackedWeights::quantize(&values(out * inp, i as u64 + 9), out, inp).unwrap();
        let bias = values(out, 3);
        for isa in Isa::available_all() {
            // The rows as `isa` quantizes them (7 bits on AVX2), through the reference.
            let xq = QuantizedRows::quantize_on(isa, &x, n, inp).unwrap();
            assert_eq!(xq.range(), isa.activation_range());
            for b in [None, Some(bias.as_slice())] {
                let want = reference_f32(&xq, &w, b);
                let mut y = vec![1f32; n * out];
                matmul_on(isa, &x, n, &w, b, &mut y).unwrap();
                assert!(same_bits(&y, &want), "{isa} n={n} in={inp} out={out}");
            }
        }
    }
}

/// Weights and activations at the ends of their ranges: pairs that would saturate
/// `vpmaddubsw` (the AVX2 kernel's `vpmaddwd` on i16 must not), the largest |u - z| (255) and
/// weights of -128, and portable gemm chunks that sum to just under 2^24.
#[test]
fn extreme_weights_and_activations_stay_exact_on_every_isa() {
    let (n, inp, out) = (6, 1030, 40);
    // Activations in {0, 1}: zero point 0, codes 0 and 255 (the largest |u - z|); the first
    // row is all 1 (every code 255).
    let x: Vec<f32> = (0..n * inp)
        .map(|i| {
            if i < inp || (i * 7919) % 3 != 0 {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let xq = QuantizedRows::quantize_on(Isa::Portable, &x, n, inp).unwrap();
    assert_eq!((xq.zero(0), xq.row(0)[0]), (0, 255));
    // Weights of +-127 and -128 (from_int8 takes any i8), in patterns that make pairs of the
    // same sign (saturating) and of opposite signs.
    let q: Vec<i8> = (0..out * inp)
        .map(|i| match (i / inp) % 4 {
            0 => 127,
            1 => -128,
            2 => {
                if i % 2 == 0 {
                    127
                } else {
                    -128
                }
            }
            _ => [127, 100, -90, 3, 64, 65, -64, -65][i % 8],
        })
        .collect();
    let scales = values(out, 4)
        .iter()
        .map(|v| v.abs() + 0.01)
        .collect::<Vec<_>>();
    let w = PackedWeights::from_int8(&q, &scales, out, inp).unwrap();
    let want = reference_i32(&xq, &q, out, inp);
    // 255 * 127 * 1030 for the first row and output: past 2^24, so the gemm needed chunks.
    assert_eq!(want[0], 255 * 127 * 1030);
    let bias = values(out, 5);
    for isa in Isa::available_all() {
        assert_eq!(matmul_i32(isa, &xq, &w).unwrap(), want, "{isa}");
        let xq = QuantizedRows::quantize_on(isa, &x, n, inp).unwrap();
        let mut y = vec![0f32; n * out];
        matmul_on(isa, &x, n, &w, Some(&bias), &mut y).unwrap();
        assert!(same_bits(&y, &reference_f32(&xq, &w, Some(&bias))), "{isa}");
    }
}

/// 7-bit rows at the ends of their range: codes of 127 next to weights of 127 or -128 (the
/// largest `vpmaddubsw` pair sums, `2 * 127 * -128 = -32_512` and `2 * 127 * 127`, just inside
/// i16), codes of 0 and 127 around a zero point in the middle, on every implementation.
#[test]
fn extreme_seven_bit_rows_stay_exact_on_every_isa() {
    let (n, inp, out) = (11, 1031, 41);
    // Row 0: all 1 (every code 127, zero point 0); the others mix the ends -1 and 1 (codes 0
    // and 127, zero point 64) with zeros (code 64).
    let x: Vec<f32> = (0..n * inp)
        .map(|i| {
            if i < inp {
                1.0
            } else {
                [1.0, -1.0, 1.0, 0.0, 1.0, -1.0, -1.0][(i * 7919) % 7]
            }
        })
        .collect();
    let q: Vec<i8> = (0..out * inp)
        .map(|i| match (i / inp) % 4 {
            0 => 127,
            1 => -128,
            2 => {
                if i % 2 == 0 {
                    127
                } else {
                    -128
                }
            }
            _ => [127, 127, -128, -128, 64, 65, -64, -65][i % 8],
        })
        .collect();
    let scales = values(out, 6)
        .iter()
        .map(|v| v.abs() + 0.01)
        .collect::<Vec<_>>();
    let w = PackedWeights::from_int8(&q, &scales, out, inp).unwrap();
    let bias = values(out, 7);
    for quantizer in Isa::available_all() {
        let xq =
            QuantizedRows::quantize_in(quantizer, ActivationRange::Reduced, &x, n, inp).unwrap();
        assert_eq!((xq.zero(0), xq.row(0)[0]), (0, 127), "{quantizer}");
        assert_eq!(xq.zero(1), 64, "{quantizer}");
        assert!(
            xq.row(1)[..inp]
                .iter()
                .all(|&u| u == 0 || u == 64 || u == 127)
        );
        let want = reference_i32(&xq, &q, out, inp);
        assert_eq!(want[0], 127 * 127 * 1031);
        assert_eq!(want[1], -127 * 128 * 1031);
        for isa in Isa::available_all() {
            assert_eq!(matmul_i32(isa, &xq, &w).unwrap(), want, "{isa}");
        }
    }
    // The AVX2 path quantizes to 7 bits itself, through its kernel and the shared epilogue.
    if Isa::Avx2.available() {
        let xq = QuantizedRows::quantize_on(Isa::Avx2, &x, n, inp).unwrap();
        assert_eq!(xq.range(), ActivationRange::Reduced);
        let mut y = vec![0f32; n * out];
        matmul_on(Isa::Avx2, &x, n, &w, Some(&bias), &mut y).unwrap();
        assert!(same_bits(&y, &reference_f32(&xq, &w, Some(&bias))));
    }
}

/// The NEON kernel's pair sums at their ends: codes 0 and 255 (`u - 128` of -128 and 127)
/// against weights of +-127, where `smull` + `smlal2` add two products of
/// up to `128 * 127` into one i16 (`+-32_512`, just inside); and the same rows against weights
/// that hold -128, which the kernel adds up one product at a time (`2 * 128 * 128` would wrap).
#[test]
fn extreme_pair_sums_of_the_neon_kernel_stay_exact_on_every_isa() {
    let (n, inp, out) = (9, 1043, 23);
    // Values -128 and 127 (a scale of exactly 1, a zero point of 128: codes 0 and 255). Row 0:
    // both in runs; row 1: all -128 but the first; the others mixed with zeros.
    let x: Vec<f32> = (0..n * inp)
        .map(|i| match i / inp {
            0 => [127.0, 127.0, -128.0, -128.0][(i / 8) % 4],
            1 if i % inp == 0 => 127.0,
            1 => -128.0,
            _ => [127.0, -128.0, 0.0, -128.0, 127.0][(i * 7919) % 5],
        })
        .collect();
    let xq = QuantizedRows::quantize_on(Isa::Portable, &x, n, inp).unwrap();
    // Codes at both ends (`u - 128` of -128 and 127).
    assert!(xq.row(0).contains(&0) && xq.row(0).contains(&255));
    assert_eq!((xq.row(1)[0], xq.row(1)[inp - 1]), (255, 0));
    let scales = values(out, 8)
        .iter()
        .map(|v| v.abs() + 0.01)
        .collect::<Vec<_>>();
    let bias = values(out, 9);
    for low in [-127i8, -128] {
        let q: Vec<i8> = (0..out * inp)
            .map(|i| match (i / inp) % 3 {
                0 => low,
                1 => [127, 127, low, low][(i / 8) % 4],
                _ => [127, low, 5, -3, low, low, 127, 0][(i * 31) % 8],
            })
            .collect();
        let w = PackedWeights::from_int8(&q, &scales, out, inp).unwrap();
        assert_eq!(w.neon().paired, low != i8::MIN);
        let want = reference_i32(&xq, &q, out, inp);
        for isa in Isa::available_all() {
            assert_eq!(matmul_i32(isa, &xq, &w).unwrap(), want, "{isa} low {low}");
            let xq = QuantizedRows::quantize_on(isa, &x, n, inp).unwrap();
            let mut y = vec![0f32; n * out];
            matmul_on(isa, &x, n, &w, Some(&bias), &mut y).unwrap();
            assert!(
                same_bits(&y, &reference_f32(&xq, &w, Some(&bias))),
                "{isa} low {low}"
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
fn parallel_tasks_give_the_same_result_as_one_thread_on_every_isa() {
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
    for isa in Isa::available_all() {
        let run = |pool: &rayon::ThreadPool| {
            let mut y = vec![0f32; n * out];
            pool.install(|| matmul_on(isa, &x, n, &w, None, &mut y))
                .unwrap();
            y
        };
        assert!(same_bits(&run(&one), &run(&four)), "{isa}");
    }
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
    for isa in Isa::ALL {
        let mut y = vec![0f32; n * total];
        matmul_on(isa, &x, n, &stacked, Some(&bias), &mut y).unwrap();
        let mut col = 0;
        for (p, b) in parts.iter().zip(&biases) {
            let mut yp = vec![0f32; n * p.out()];
            matmul_on(isa, &x, n, p, Some(b), &mut yp).unwrap();
            for r in 0..n {
                let got = &y[r * total + col..r * total + col + p.out()];
                let want = &yp[r * p.out()..(r + 1) * p.out()];
                assert!(same_bits(got, want), "{isa} row {r} part at column {col}");
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
    // The forms built for the AVX2, NEON and portable paths do not change what the layer is.
    let fresh = p.clone();
    p.avx2();
    p.neon();
    p.portable();
    assert_eq!(p, fresh);
}

#[test]
fn simd_row_quantization_equals_portable_on_every_isa() {
    for (i, len) in [1usize, 5, 8, 16, 17, 31, 33, 64, 100, 384, 1537]
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
        for range in RANGES {
            let mut want = vec![0u8; len];
            let pw = quantize_row_portable(&row, &mut want, range);
            assert!(want.iter().all(|&u| u <= range.max()));
            for isa in Isa::available_all() {
                let xq = QuantizedRows::quantize_in(isa, range, &row, 1, len).unwrap();
                assert_eq!(
                    ((xq.scale(0), xq.zero(0)), &xq.row(0)[..len]),
                    (pw, &want[..]),
                    "{isa} {range:?} len {len}"
                );
            }
        }
    }
    for isa in Isa::available_all() {
        let xq = QuantizedRows::quantize_on(isa, &[0.0; 20], 1, 20).unwrap();
        assert_eq!((xq.scale(0), xq.zero(0)), (1.0, 0), "{isa}");
        assert!(xq.row(0).iter().all(|&u| u == 0), "{isa}");
    }
}

#[test]
fn each_implementation_quantizes_to_its_own_range() {
    assert_eq!(Isa::Avx2.activation_range(), ActivationRange::Reduced);
    assert_eq!(Isa::Avx512Vnni.activation_range(), ActivationRange::Full);
    assert_eq!(Isa::Portable.activation_range(), ActivationRange::Full);
    assert_eq!(Isa::Neon.activation_range(), ActivationRange::Full);
    assert_eq!(Isa::NeonDotprod.activation_range(), ActivationRange::Full);
    let x = values(3 * 50, 60);
    for isa in Isa::ALL {
        let xq = QuantizedRows::quantize_on(isa, &x, 3, 50).unwrap();
        // One this CPU lacks runs the portable implementation, with its range.
        let range = if isa.available() {
            isa.activation_range()
        } else {
            ActivationRange::Full
        };
        assert_eq!(xq.range(), range, "{isa}");
        // Every row spans its whole range (x holds values of both signs).
        for r in 0..3 {
            assert_eq!(xq.row(r).iter().max(), Some(&range.max()), "{isa} row {r}");
        }
    }
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
fn the_implementation_never_exceeds_the_level_or_the_cpu() {
    assert_eq!(Isa::at(Level::Portable), Isa::Portable);
    for level in Level::ALL {
        let isa = Isa::at(level);
        assert!(isa.available(), "{isa} at {level}");
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => assert_eq!(level, Level::Avx512),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => assert!(level >= Level::Avx2),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => assert_eq!(level, Level::NeonDotprod),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => assert!(level >= Level::Neon),
            Isa::Portable => {}
            #[allow(unreachable_patterns)]
            other => panic!("{other} at {level}: an implementation of another architecture"),
        }
    }
    assert_eq!(Isa::best(), Isa::at(Level::best()));
    assert!(Isa::available_all().contains(&Isa::current()));
    assert_eq!(Isa::available_all()[0], Isa::Portable);
}

/// On aarch64, NEON always runs and `sdot` exactly where the CPU has it; with
/// `TAXON_EXPECT_DOTPROD=1` or `0` (set by `scripts/test-aarch64.sh` per QEMU CPU model) the
/// CPU must have it or not, so that the run is known to have tested that kernel.
#[cfg(target_arch = "aarch64")]
#[test]
fn aarch64_runs_neon_and_sdot_where_the_cpu_has_it() {
    let dotprod = std::arch::is_aarch64_feature_detected!("dotprod");
    assert!(Isa::available_all().contains(&Isa::Neon));
    assert_eq!(Isa::NeonDotprod.available(), dotprod);
    assert_eq!(Level::NeonDotprod.supported(), dotprod);
    let best = if dotprod { Isa::NeonDotprod } else { Isa::Neon };
    assert_eq!(Isa::best(), best);
    match std::env::var("TAXON_EXPECT_DOTPROD").as_deref() {
        Ok("1") => assert!(dotprod, "this CPU model should have sdot"),
        Ok("0") => assert!(!dotprod, "this CPU model should lack sdot"),
        _ => {}
    }
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
    // Non-finite activations give finite or NaN outputs, never a panic, on every isa.
    for isa in Isa::available_all() {
        matmul_on(
            isa,
            &[f32::NAN, f32::INFINITY, 1.0, 0.0, 1.0, 2.0],
            2,
            &w,
            None,
            &mut y,
        )
        .unwrap();
        assert!(y[2..].iter().all(|v| v.is_finite()), "{isa}");
    }
}
