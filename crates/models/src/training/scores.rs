//! Validation scoring shared by every trainer: the predicted label per probability row, and the
//! mean log loss and accuracy against the true labels.

use super::Validation;

/// The log-loss floor of the lstm and bert trainers: a probability below it counts as it.
pub(crate) const MIN_PROB: f32 = 1e-12;

/// Index of the largest value per row (the first on ties).
pub(crate) fn argmax_rows(probs: &[Vec<f32>]) -> Vec<usize> {
    probs.iter().map(|p| argmax(p)).collect()
}

/// Index of the largest value (the first on ties).
pub(crate) fn argmax(p: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in p.iter().enumerate() {
        if x > p[best] {
            best = i;
        }
    }
    best
}

/// Mean log loss (each probability floored at `min_prob`) and accuracy of probability rows
/// against label ids, with the predictions ([`argmax_rows`]) they were scored from.
pub(crate) fn score(probs: &[Vec<f32>], truth: &[u32], min_prob: f32) -> Validation {
    let predictions = argmax_rows(probs);
    let mut loss = 0.0;
    let mut right = 0usize;
    for ((p, &t), &y) in probs.iter().zip(&predictions).zip(truth) {
        loss -= f64::from(p[y as usize].max(min_prob)).ln();
        right += usize::from(t == y as usize);
    }
    let n = truth.len().max(1) as f64;
    Validation {
        loss: loss / n,
        accuracy: right as f64 / n,
        predictions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_rows_against_labels() {
        let probs = vec![vec![0.2, 0.8], vec![0.5, 0.5], vec![0.9, 0.1]];
        let v = score(&probs, &[1, 1, 1], 1e-12);
        assert_eq!(v.predictions, vec![1, 0, 0]);
        assert!((v.accuracy - 1.0 / 3.0).abs() < 1e-12);
        let expected = -(0.8f64.ln() + 0.5f64.ln() + 0.1f64.ln()) / 3.0;
        assert!((v.loss - expected).abs() < 1e-6, "{} vs {expected}", v.loss);
    }

    #[test]
    fn the_floor_bounds_the_loss_of_a_certain_mistake() {
        let v = score(&[vec![1.0, 0.0]], &[1], 1e-10);
        assert!(
            (v.loss - -(1e-10f32 as f64).ln()).abs() < 1e-9,
            "{}",
            v.loss
        );
        assert_eq!(v.accuracy, 0.0);
    }
}
