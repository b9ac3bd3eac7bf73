//! Pearson's chi-square test of homogeneity for two sets of category counts (reference vs
//! current predicted labels), with its p-value.
//!
//! The p-value is the chi-square survival function, the regularized upper incomplete gamma
//! function Q(df/2, x/2), computed here (series below a + 1, Lentz's continued fraction
//! above, as in Numerical Recipes 6.2) rather than pulling a statistics crate with a linear
//! algebra library for one function; the tests check it against SciPy's `chi2.sf`.

use std::collections::{BTreeMap, BTreeSet};

/// The test's result.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChiSquare {
    pub statistic: f64,
    pub df: u32,
    pub p_value: f64,
}

/// Chi-square test of homogeneity of the 2 x K table (reference counts, current counts) over
/// the categories present on either side. `None` when a side is empty; p = 1 when only one
/// category occurs.
pub fn homogeneity(
    reference: &BTreeMap<String, u64>,
    current: &BTreeMap<String, u64>,
) -> Option<ChiSquare> {
    let cats: BTreeSet<&String> = reference
        .iter()
        .chain(current.iter())
        .filter(|(_, c)| **c > 0)
        .map(|(k, _)| k)
        .collect();
    let nr: f64 = reference.values().sum::<u64>() as f64;
    let nc: f64 = current.values().sum::<u64>() as f64;
    if nr == 0.0 || nc == 0.0 {
        return None;
    }
    let n = nr + nc;
    let mut stat = 0.0;
    for k in &cats {
        let r = reference.get(*k).copied().unwrap_or(0) as f64;
        let c = current.get(*k).copied().unwrap_or(0) as f64;
        let col = r + c;
        for (obs, row) in [(r, nr), (c, nc)] {
            let exp = row * col / n;
            stat += (obs - exp).powi(2) / exp;
        }
    }
    let df = cats.len().saturating_sub(1) as u32;
    let p_value = if df == 0 {
        1.0
    } else {
        chi2_sf(stat, f64::from(df))
    };
    Some(ChiSquare {
        statistic: stat,
        df,
        p_value,
    })
}

/// P(X > x) for X chi-square with `df` degrees of freedom.
pub fn chi2_sf(x: f64, df: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

/// ln Gamma(x) for x > 0 (Lanczos, g = 7, n = 9; about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Gamma(x) Gamma(1 - x) = pi / sin(pi x).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma Q(a, x) = Gamma(a, x) / Gamma(a).
fn gamma_q(a: f64, x: f64) -> f64 {
    const EPS: f64 = 1e-15;
    const MAX_ITER: usize = 10_000;
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        // P(a, x) by its series; Q = 1 - P.
        let (mut ap, mut sum, mut del) = (a, 1.0 / a, 1.0 / a);
        for _ in 0..MAX_ITER {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * EPS {
                break;
            }
        }
        (1.0 - sum * front).clamp(0.0, 1.0)
    } else {
        // Q(a, x) by its continued fraction (modified Lentz).
        const TINY: f64 = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..MAX_ITER {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < EPS {
                break;
            }
        }
        (front * h).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn survival_function_matches_known_values() {
        // scipy.stats.chi2.sf(x, df)
        for (x, df, p) in [
            (3.841_458_820_694_124, 1.0, 0.05),
            (9.487_729_036_781_154, 4.0, 0.05),
            (1.0, 2.0, (-0.5f64).exp()),
            (30.0, 4.0, 4.894_437_128_029_217e-6),
            (0.5, 7.0, 0.999_446_481_390_424_9),
        ] {
            let got = chi2_sf(x, df);
            assert!(
                (got - p).abs() <= 1e-9 * p.max(1e-300) + 1e-14,
                "sf({x}, {df}) = {got}, want {p}"
            );
        }
    }

    #[test]
    fn identical_shares_do_not_differ_and_a_tripled_class_does() {
        let r = counts(&[("a", 100), ("b", 100), ("c", 100)]);
        let same = homogeneity(&r, &counts(&[("a", 50), ("b", 50), ("c", 50)])).unwrap();
        assert_eq!(same.df, 2);
        assert!(same.statistic.abs() < 1e-12 && (same.p_value - 1.0).abs() < 1e-12);
        let shifted = homogeneity(&r, &counts(&[("a", 150), ("b", 50), ("c", 50)])).unwrap();
        assert!(shifted.p_value < 1e-6, "{shifted:?}");
        assert_eq!(homogeneity(&r, &BTreeMap::new()), None);
    }
}
