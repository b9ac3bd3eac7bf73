//! Scores of probability rows shared by the lstm and bert trainers: the predicted label per row,
//! and the mean log loss and accuracy against the true labels.

/// Index of the largest value per row (the first on ties).
pub(crate) fn argmax_rows(probs: &[Vec<f32>]) -> Vec<usize> {
    probs
        .iter()
        .map(|p| {
            let mut best = 0;
            for (i, &x) in p.iter().enumerate() {
                if x > p[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// Mean log loss and accuracy of probability rows against label ids, with the predictions
/// ([`argmax_rows`]) they were scored from.
pub(crate) fn loss_and_accuracy(probs: &[Vec<f32>], truth: &[u32]) -> (f64, f64, Vec<usize>) {
    let pred = argmax_rows(probs);
    let mut loss = 0.0;
    let mut right = 0usize;
    for ((p, &t), &y) in probs.iter().zip(&pred).zip(truth) {
        loss -= (p[y as usize].max(1e-12) as f64).ln();
        right += usize::from(t == y as usize);
    }
    let n = truth.len().max(1) as f64;
    (loss / n, right as f64 / n, pred)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_rows_against_labels() {
        let probs = vec![vec![0.2, 0.8], vec![0.5, 0.5], vec![0.9, 0.1]];
        let (loss, acc, pred) = loss_and_accuracy(&probs, &[1, 1, 1]);
        assert_eq!(pred, vec![1, 0, 0]);
        assert!((acc - 1.0 / 3.0).abs() < 1e-12);
        let expected = -(0.8f64.ln() + 0.5f64.ln() + 0.1f64.ln()) / 3.0;
        assert!((loss - expected).abs() < 1e-6, "{loss} vs {expected}");
    }
}
