//! The Wasserstein-1 (earth mover's) distance between two one-dimensional distributions.
//!
//! W1(u, v) = integral over x of |U(x) - V(x)|, with U and V the cumulative distribution
//! functions: for distributions on finitely many points, the sum over consecutive distinct
//! values x_j < x_j+1 of |U(x_j) - V(x_j)| * (x_j+1 - x_j). This is the definition SciPy's
//! `scipy.stats.wasserstein_distance` computes, and the tests check taxon against it to 1e-9
//! relative. Written here rather than taken from a crate: it is the core of the drift test and a
//! dozen lines, and it must work on weighted points (histogram bins) as well as samples.

use crate::sketch::Histogram;

/// W1 between two samples (NaN values are left out). `None` when either side is empty.
pub fn wasserstein_1(u: &[f64], v: &[f64]) -> Option<f64> {
    let u: Vec<(f64, f64)> = u
        .iter()
        .filter(|x| !x.is_nan())
        .map(|&x| (x, 1.0))
        .collect();
    let v: Vec<(f64, f64)> = v
        .iter()
        .filter(|x| !x.is_nan())
        .map(|&x| (x, 1.0))
        .collect();
    wasserstein_1_weighted(u, v)
}

/// W1 between two histograms of the same binning, each bin standing at its centre.
pub fn wasserstein_1_hist(u: &Histogram, v: &Histogram) -> Option<f64> {
    let pts = |h: &Histogram| h.points().map(|(x, c)| (x, c as f64)).collect::<Vec<_>>();
    wasserstein_1_weighted(pts(u), pts(v))
}

/// W1 between two weighted point sets `(value, weight)`; weights need not sum to 1 (each side
/// is normalized by its total). `None` when a side has no positive weight.
pub fn wasserstein_1_weighted(mut u: Vec<(f64, f64)>, mut v: Vec<(f64, f64)>) -> Option<f64> {
    let total = |s: &[(f64, f64)]| s.iter().map(|p| p.1).sum::<f64>();
    let (tu, tv) = (total(&u), total(&v));
    if !(tu > 0.0 && tv > 0.0) {
        return None;
    }
    u.sort_by(|a, b| a.0.total_cmp(&b.0));
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut i, mut j) = (0, 0);
    let (mut cu, mut cv) = (0.0f64, 0.0f64);
    let mut prev: Option<f64> = None;
    // Neumaier-compensated sum: many small terms.
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    while i < u.len() || j < v.len() {
        let x = match (u.get(i), v.get(j)) {
            (Some(a), Some(b)) => a.0.min(b.0),
            (Some(a), None) => a.0,
            (None, Some(b)) => b.0,
            (None, None) => break,
        };
        if let Some(p) = prev {
            let term = (cu / tu - cv / tv).abs() * (x - p);
            let t = sum + term;
            comp += if sum.abs() >= term.abs() {
                (sum - t) + term
            } else {
                (term - t) + sum
            };
            sum = t;
        }
        while i < u.len() && u[i].0 == x {
            cu += u[i].1;
            i += 1;
        }
        while j < v.len() && v[j].0 == x {
            cv += v[j].1;
            j += 1;
        }
        prev = Some(x);
    }
    Some(sum + comp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::Binning;

    #[test]
    fn shifted_sample_moves_by_the_shift() {
        let u: Vec<f64> = (0..100).map(f64::from).collect();
        let v: Vec<f64> = u.iter().map(|x| x + 2.5).collect();
        assert!((wasserstein_1(&u, &v).unwrap() - 2.5).abs() < 1e-9);
        assert_eq!(wasserstein_1(&u, &u), Some(0.0));
        assert_eq!(wasserstein_1(&u, &[]), None);
    }

    #[test]
    fn known_small_cases() {
        // scipy.stats.wasserstein_distance([0, 1, 3], [5, 6, 8]) == 5.0
        assert!((wasserstein_1(&[0.0, 1.0, 3.0], &[5.0, 6.0, 8.0]).unwrap() - 5.0).abs() < 1e-12);
        // scipy.stats.wasserstein_distance([0, 1], [0, 1, 1, 1]) == 0.25
        assert!((wasserstein_1(&[0.0, 1.0], &[0.0, 1.0, 1.0, 1.0]).unwrap() - 0.25).abs() < 1e-12);
    }

    #[test]
    fn histogram_distance_is_the_distance_of_bin_centres() {
        let (mut a, mut b) = (Histogram::new(Binning::Unit), Histogram::new(Binning::Unit));
        for k in 0..50 {
            a.add(0.1005 + f64::from(k) * 0.001);
            b.add(0.3005 + f64::from(k) * 0.001);
        }
        assert!((wasserstein_1_hist(&a, &b).unwrap() - 0.2).abs() < 1e-9);
    }
}
