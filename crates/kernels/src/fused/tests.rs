//! The fused kernels against straightforward f64 reference implementations and finite
//! differences.

use super::*;

/// Deterministic values in [-scale, scale).
fn rand(n: usize, seed: u64, scale: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

/// erfc in f64: the Taylor series of erf for small z, the continued fraction beyond.
fn erfc_ref(z: f64) -> f64 {
    if z < 0.0 {
        return 2.0 - erfc_ref(-z);
    }
    if z < 2.0 {
        let (mut term, mut s) = (z, z);
        for n in 1..80 {
            term *= -z * z / n as f64;
            s += term / (2 * n + 1) as f64;
        }
        1.0 - 2.0 / std::f64::consts::PI.sqrt() * s
    } else {
        let mut k = z;
        for n in (1..200).rev() {
            k = z + (n as f64 / 2.0) / k;
        }
        (-z * z).exp() / (std::f64::consts::PI.sqrt() * k)
    }
}

fn gelu_ref(x: f64) -> f64 {
    0.5 * x * erfc_ref(-x / std::f64::consts::SQRT_2)
}

fn grid(lo: f32, hi: f32, n: usize) -> Vec<f32> {
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f32 / n as f32)
        .collect()
}

#[test]
fn exp_approx_is_within_a_few_ulp_of_exp() {
    for x in grid(-87.0, 88.0, 200_003) {
        let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
        assert!(
            ((got - want) / want).abs() < 3e-7,
            "exp({x}) = {got}, want {want}"
        );
    }
    assert!(exp_approx(-1000.0) < 1e-37 && exp_approx(-1000.0) >= 0.0);
    assert!(exp_approx(f32::NAN).is_nan());
}

#[test]
fn erf_approx_matches_the_reference() {
    for x in grid(-6.0, 6.0, 100_001) {
        let want = 1.0 - erfc_ref(x as f64);
        let got = erf_approx(x) as f64;
        assert!((got - want).abs() < 3e-7, "erf({x}) = {got}, want {want}");
    }
}

#[test]
fn gelu_matches_the_reference_in_absolute_and_relative_terms() {
    let x = grid(-9.0, 9.0, 90_001);
    let mut y = vec![0f32; x.len()];
    gelu(&x, &[], &mut y).unwrap();
    for (&v, &got) in x.iter().zip(&y) {
        let want = gelu_ref(v as f64);
        let err = (got as f64 - want).abs();
        assert!(
            err < 5e-7 * (1.0 + v.abs() as f64),
            "gelu({v}) = {got}, want {want}"
        );
        if v.abs() < 5.0 && want != 0.0 {
            assert!(err / want.abs() < 1e-5, "gelu({v}) = {got}, want {want}");
        }
    }
}

/// The block copies of GELU and of softmax's exponential (`gelu_block`, `exp_block`, several
/// vectors side by side) are the scalar formulas step by step: the same bits, whatever the
/// row length (blocks and tails), with and without a bias row, at every level.
#[test]
fn block_gelu_and_softmax_give_the_scalar_formulas_bits() {
    for cols in [1, 5, 31, 32, 33, 64, 95, 384, 1536] {
        let rows = 3;
        let x = rand(cols * rows, cols as u64, 9.0);
        let bias = rand(cols, 7, 1.0);
        for level in crate::dispatch::Level::supported_levels() {
            let mut y = vec![0f32; x.len()];
            super::x86::gelu(level, &x, &bias, &mut y);
            for (i, (&got, &v)) in y.iter().zip(&x).enumerate() {
                let want = gelu_scalar(v + bias[i % cols]);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "gelu {cols} cols at {level}, {i}"
                );
            }
            super::x86::gelu(level, &x, &[], &mut y);
            for (&got, &v) in y.iter().zip(&x) {
                assert_eq!(
                    got.to_bits(),
                    gelu_scalar(v).to_bits(),
                    "gelu {cols} at {level}"
                );
            }
            super::x86::softmax(level, &x, &[], cols, 0.7, &mut y);
            for (row, yr) in x.chunks_exact(cols).zip(y.chunks_exact(cols)) {
                let scaled: Vec<f32> = row.iter().map(|v| v * 0.7).collect();
                let m = scaled.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scaled.iter().map(|v| exp_approx(v - m)).collect();
                let total: f32 = e.iter().sum();
                for (&got, &ei) in yr.iter().zip(&e) {
                    // The row sum's order differs (lane-wise partial sums), so compare values.
                    assert!(
                        (got - ei / total).abs() <= 1e-6,
                        "softmax {cols} at {level}"
                    );
                }
            }
        }
    }
}

#[test]
fn gelu_with_a_bias_row_is_gelu_of_the_sum() {
    let (cols, rows) = (7, 5000);
    let x = rand(cols * rows, 21, 4.0);
    let bias = rand(cols, 22, 1.0);
    let dy = rand(cols * rows, 23, 1.0);
    let sum: Vec<f32> = x
        .iter()
        .zip(bias.iter().cycle())
        .map(|(a, b)| a + b)
        .collect();
    let (mut y, mut want) = (vec![0f32; x.len()], vec![0f32; x.len()]);
    gelu(&x, &bias, &mut y).unwrap();
    gelu(&sum, &[], &mut want).unwrap();
    assert!(y.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
    gelu_backward(&x, &bias, &dy, &mut y).unwrap();
    gelu_backward(&sum, &[], &dy, &mut want).unwrap();
    assert!(y.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
}

#[test]
fn gelu_backward_matches_finite_differences() {
    let x = grid(-7.0, 7.0, 7001);
    let dy = rand(x.len(), 1, 2.0);
    let mut dx = vec![0f32; x.len()];
    gelu_backward(&x, &[], &dy, &mut dx).unwrap();
    let h = 1e-5;
    for ((&v, &g), &got) in x.iter().zip(&dy).zip(&dx) {
        let v = v as f64;
        let numeric = (gelu_ref(v + h) - gelu_ref(v - h)) / (2.0 * h) * g as f64;
        assert!(
            (got as f64 - numeric).abs() < 1e-5 * (1.0 + numeric.abs()),
            "gelu'({v}) * {g} = {got}, want {numeric}"
        );
    }
}

fn softmax_ref(x: &[f32], bias: &[f32], cols: usize, scale: f32, groups: usize) -> Vec<f64> {
    let rows = x.len() / cols;
    let mut out = Vec::with_capacity(x.len());
    for r in 0..rows {
        let g = r / (rows / groups);
        let z: Vec<f64> = (0..cols)
            .map(|c| {
                let b = if bias.is_empty() {
                    0.0
                } else {
                    bias[g * cols + c] as f64
                };
                x[r * cols + c] as f64 * scale as f64 + b
            })
            .collect();
        let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

#[test]
fn softmax_with_scale_and_grouped_mask_bias_matches_the_reference() {
    // (B=2, heads*Tq=1200 rows per batch item, Tk=37): several parallel blocks per bias row.
    let (cols, groups, per) = (37, 2, 1200);
    let x = rand(groups * per * cols, 2, 6.0);
    let mut bias = vec![0f32; groups * cols];
    bias[cols - 5..cols].iter_mut().for_each(|b| *b = -1e4); // padding of item 0
    bias[cols + 20..].iter_mut().for_each(|b| *b = -1e4); // padding of item 1
    let mut y = vec![0f32; x.len()];
    softmax(&x, &bias, cols, 0.125, &mut y).unwrap();
    let want = softmax_ref(&x, &bias, cols, 0.125, groups);
    for (i, (&got, &w)) in y.iter().zip(&want).enumerate() {
        assert!((got as f64 - w).abs() < 1e-6, "{i}: {got} vs {w}");
    }
    // No bias.
    softmax(&x, &[], cols, 1.0, &mut y).unwrap();
    let want = softmax_ref(&x, &[], cols, 1.0, 1);
    assert!(
        y.iter()
            .zip(&want)
            .all(|(&g, &w)| (g as f64 - w).abs() < 1e-6)
    );
}

#[test]
fn softmax_backward_matches_finite_differences() {
    let (cols, rows, scale) = (19, 3, 0.7f32);
    let x = rand(rows * cols, 3, 3.0);
    let bias = rand(cols, 4, 1.0);
    let dy = rand(rows * cols, 5, 1.0);
    let mut y = vec![0f32; x.len()];
    softmax(&x, &bias, cols, scale, &mut y).unwrap();
    let mut dx = vec![0f32; x.len()];
    softmax_backward(&y, &dy, cols, scale, &mut dx).unwrap();
    let loss = |x: &[f32]| -> f64 {
        softmax_ref(x, &bias, cols, scale, 1)
            .iter()
            .zip(&dy)
            .map(|(a, &b)| a * b as f64)
            .sum()
    };
    for i in 0..x.len() {
        let (mut up, mut down) = (x.clone(), x.clone());
        up[i] += 1e-3;
        down[i] -= 1e-3;
        let numeric = (loss(&up) - loss(&down)) / 2e-3;
        assert!(
            (dx[i] as f64 - numeric).abs() < 1e-4,
            "{i}: {} vs {numeric}",
            dx[i]
        );
    }
}

fn layer_norm_ref(z: &[f32], w: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let cols = w.len();
    let mut out = Vec::with_capacity(z.len());
    for row in z.chunks(cols) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / cols as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / cols as f64;
        for (c, &v) in row.iter().enumerate() {
            out.push((v as f64 - mean) / (var + eps).sqrt() * w[c] as f64 + b[c] as f64);
        }
    }
    out
}

#[test]
fn layer_norm_with_residual_matches_the_reference() {
    // 384 columns (MiniLM), 200 rows: several parallel blocks; 21 columns: a lane remainder.
    for (cols, rows) in [(384, 200), (21, 5)] {
        let x = rand(rows * cols, 6, 3.0);
        let res = rand(rows * cols, 7, 1.0);
        let w = rand(cols, 8, 2.0);
        let b = rand(cols, 9, 0.5);
        let z: Vec<f32> = x.iter().zip(&res).map(|(a, b)| a + b).collect();
        let want = layer_norm_ref(&z, &w, &b, 1e-12);
        let mut y = vec![0f32; x.len()];
        layer_norm(&x, &[], &res, &w, &b, 1e-12, &mut y).unwrap();
        for (i, (&got, &w)) in y.iter().zip(&want).enumerate() {
            assert!(
                (got as f64 - w).abs() < 2e-5,
                "{cols}x{rows} {i}: {got} vs {w}"
            );
        }
        layer_norm(&z, &[], &[], &w, &b, 1e-12, &mut y).unwrap();
        assert!(
            y.iter()
                .zip(&want)
                .all(|(&g, &w)| (g as f64 - w).abs() < 2e-5)
        );
        // The same z as x + bias + residual, with bias = the first row of res.
        let bias = &res[..cols];
        let x2: Vec<f32> = z
            .iter()
            .zip(bias.iter().cycle())
            .map(|(a, b)| a - b - 0.5)
            .collect();
        let r2 = vec![0.5f32; z.len()];
        layer_norm(&x2, bias, &r2, &w, &b, 1e-12, &mut y).unwrap();
        assert!(
            y.iter()
                .zip(&want)
                .all(|(&g, &w)| (g as f64 - w).abs() < 2e-5)
        );
    }
}

#[test]
fn layer_norm_backward_matches_finite_differences() {
    for (cols, rows) in [(21, 4), (384, 200)] {
        let z = rand(rows * cols, 10, 2.0);
        let w = rand(cols, 11, 1.5);
        let b = rand(cols, 12, 0.5);
        let dy = rand(rows * cols, 13, 1.0);
        let eps = 1e-5;
        let mut dx = vec![0f32; z.len()];
        let dwb = layer_norm_backward(&z, &w, &dy, eps, &mut dx).unwrap();
        let loss = |z: &[f32], w: &[f32], b: &[f32]| -> f64 {
            layer_norm_ref(z, w, b, eps as f64)
                .iter()
                .zip(&dy)
                .map(|(a, &g)| a * g as f64)
                .sum()
        };
        let h = 1e-2f32;
        let fd = |f: &dyn Fn(f32) -> f64| (f(h) - f(-h)) / (2.0 * h as f64);
        // A sample of inputs (all of them for the small case).
        for i in (0..z.len()).step_by(if cols == 21 { 1 } else { 997 }) {
            let numeric = fd(&|d| {
                let mut zz = z.clone();
                zz[i] += d;
                loss(&zz, &w, &b)
            });
            assert!(
                (dx[i] as f64 - numeric).abs() < 2e-3,
                "dx {i}: {} vs {numeric}",
                dx[i]
            );
        }
        for c in (0..cols).step_by(if cols == 21 { 1 } else { 37 }) {
            let dw = fd(&|d| {
                let mut ww = w.clone();
                ww[c] += d;
                loss(&z, &ww, &b)
            });
            let db = fd(&|d| {
                let mut bb = b.clone();
                bb[c] += d;
                loss(&z, &w, &bb)
            });
            let tol = 2e-3 * (1.0 + dw.abs());
            assert!(
                (dwb[c] as f64 - dw).abs() < tol,
                "dw {c}: {} vs {dw}",
                dwb[c]
            );
            assert!(
                (dwb[cols + c] as f64 - db).abs() < 2e-3,
                "db {c}: {} vs {db}",
                dwb[cols + c]
            );
        }
    }
}

#[test]
fn wrong_lengths_are_errors_not_panics() {
    let x = vec![0f32; 10];
    let mut y = vec![0f32; 9];
    assert!(gelu(&x, &[], &mut y).is_err());
    assert!(gelu(&x, &[0.0; 3], &mut [0f32; 10]).is_err());
    let mut y = vec![0f32; 10];
    assert!(softmax(&x, &[], 3, 1.0, &mut y).is_err());
    assert!(softmax(&x, &[0.0; 3], 5, 1.0, &mut y).is_err());
    assert!(softmax(&x, &[], 0, 1.0, &mut y).is_err());
    let err = layer_norm(&x, &[], &[], &[1.0; 5], &[0.0; 4], 1e-5, &mut y).unwrap_err();
    assert!(err.to_string().contains("b has 4 elements"), "{err}");
    assert!(layer_norm_backward(&x, &[1.0; 5], &x[..5], 1e-5, &mut y).is_err());
    assert!(softmax_backward(&x, &x, 5, 1.0, &mut y[..5]).is_err());
}

#[test]
fn adamw_matches_the_textbook_update_over_several_steps() {
    let n = 70_001;
    let mut theta = rand(n, 30, 1.0);
    let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
    let (mut rt, mut rm, mut rv): (Vec<f64>, Vec<f64>, Vec<f64>) = (
        theta.iter().map(|&x| x as f64).collect(),
        vec![0.0; n],
        vec![0.0; n],
    );
    for t in 1..=3u32 {
        let g = rand(n, 30 + t as u64, 0.1);
        let step = AdamWStep {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            t,
            grad_scale: 0.5,
        };
        adamw(&mut theta, &mut m, &mut v, &g, &step).unwrap();
        for i in 0..n {
            let gi = g[i] as f64 * 0.5;
            rm[i] = 0.9 * rm[i] + 0.1 * gi;
            rv[i] = 0.999 * rv[i] + 0.001 * gi * gi;
            let mh = rm[i] / (1.0 - 0.9f64.powi(t as i32));
            let vh = rv[i] / (1.0 - 0.999f64.powi(t as i32));
            rt[i] = rt[i] * (1.0 - 1e-5) - 1e-3 * mh / (vh.sqrt() + 1e-8);
        }
    }
    for i in 0..n {
        assert!(
            (theta[i] as f64 - rt[i]).abs() < 1e-6,
            "{i}: {} vs {}",
            theta[i],
            rt[i]
        );
        assert!((m[i] as f64 - rm[i]).abs() < 1e-7 && (v[i] as f64 - rv[i]).abs() < 1e-8);
    }
    let step = AdamWStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        t: 0,
        grad_scale: 1.0,
    };
    assert!(adamw(&mut theta, &mut m, &mut v, &[0.0; 3], &step).is_err());
}

#[test]
fn sum_squares_matches_the_plain_sum() {
    let x = rand(100_003, 40, 2.0);
    let want: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
    assert!((sum_squares(&x) - want).abs() < 1e-6 * want);
}

#[test]
fn dropout_drops_about_p_scales_the_rest_and_repeats_with_its_seed() {
    let n = 200_000;
    let x = rand(n, 50, 1.0);
    let (mut y, mut again) = (vec![0f32; n], vec![0f32; n]);
    dropout(&x, 7, 0.1, &mut y).unwrap();
    dropout(&x, 7, 0.1, &mut again).unwrap();
    assert_eq!(y, again);
    let zeros = y
        .iter()
        .zip(&x)
        .filter(|(a, b)| **a == 0.0 && **b != 0.0)
        .count();
    let frac = zeros as f64 / n as f64;
    assert!((frac - 0.1).abs() < 0.005, "dropped {frac}");
    for ((&a, &b), i) in y.iter().zip(&x).zip(0u64..) {
        if dropped(7, i, 0.1) {
            assert_eq!(a, 0.0);
        } else {
            assert!((a - b / 0.9).abs() < 1e-6);
        }
    }
    dropout(&x, 8, 0.1, &mut again).unwrap();
    assert_ne!(y, again, "another seed, another mask");
    dropout(&x, 7, 0.0, &mut again).unwrap();
    assert_eq!(again, x);
    assert!(dropout(&x, 7, 1.0, &mut again).is_err());
}
