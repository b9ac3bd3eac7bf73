//! Classification metrics: accuracy, per-class precision/recall/F1, macro-F1 and the confusion
//! matrix (rows: true label, columns: predicted label). A class never predicted has precision
//! 0, one never present has recall 0 (scikit-learn's `zero_division=0`).

use serde::{Deserialize, Serialize};

/// Precision, recall and F1 of one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Examples whose true label is this one.
    pub support: u64,
}

/// Metrics of predictions against true labels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub examples: u64,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub labels: Vec<String>,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion_matrix[true][predicted]`, indexed like `labels`.
    pub confusion_matrix: Vec<Vec<u64>>,
}

impl Metrics {
    /// Metrics of `predicted` against `truth` (label indices into `labels`; out-of-range
    /// indices are ignored).
    pub fn compute(labels: &[String], truth: &[usize], predicted: &[usize]) -> Self {
        let k = labels.len();
        let mut cm = vec![vec![0u64; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            if t < k && p < k {
                cm[t][p] += 1;
            }
        }
        let total: u64 = cm.iter().flatten().sum();
        let correct: u64 = (0..k).map(|i| cm[i][i]).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = (0..k)
            .map(|i| {
                let tp = cm[i][i];
                let support: u64 = cm[i].iter().sum();
                let predicted: u64 = cm.iter().map(|row| row[i]).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    label: labels[i].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let macro_f1 = if k == 0 {
            0.0
        } else {
            per_class.iter().map(|c| c.f1).sum::<f64>() / k as f64
        };
        Self {
            examples: total,
            accuracy: ratio(correct, total),
            macro_f1,
            labels: labels.to_vec(),
            per_class,
            confusion_matrix: cm,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Worked by hand. Truth/predicted pairs over labels a, b, c:
    /// (a,a) (a,a) (a,b) (b,b) (b,b) (b,c) (c,c) (c,a)
    /// confusion = [[2,1,0],[0,2,1],[1,0,1]]
    /// a: P = 2/3, R = 2/3, F1 = 2/3
    /// b: P = 2/3, R = 2/3, F1 = 2/3
    /// c: P = 1/2, R = 1/2, F1 = 1/2
    /// accuracy = 5/8, macro-F1 = (2/3 + 2/3 + 1/2) / 3 = 11/18
    #[test]
    fn hand_computed_example() {
        let labels: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let truth = [0, 0, 0, 1, 1, 1, 2, 2];
        let pred = [0, 0, 1, 1, 1, 2, 2, 0];
        let m = Metrics::compute(&labels, &truth, &pred);
        assert_eq!(
            m.confusion_matrix,
            vec![vec![2, 1, 0], vec![0, 2, 1], vec![1, 0, 1]]
        );
        assert!(close(m.accuracy, 5.0 / 8.0));
        assert!(close(m.per_class[0].precision, 2.0 / 3.0));
        assert!(close(m.per_class[1].recall, 2.0 / 3.0));
        assert!(close(m.per_class[2].f1, 0.5));
        assert_eq!(m.per_class[2].support, 2);
        assert!(close(m.macro_f1, 11.0 / 18.0));
        assert_eq!(m.examples, 8);
    }

    #[test]
    fn never_predicted_class_has_zero_precision_not_nan() {
        let labels: Vec<String> = ["x", "y"].iter().map(|s| s.to_string()).collect();
        let m = Metrics::compute(&labels, &[0, 1], &[0, 0]);
        assert_eq!(m.per_class[1].precision, 0.0);
        assert_eq!(m.per_class[1].f1, 0.0);
        assert!(close(m.per_class[0].precision, 0.5));
        assert!(close(m.accuracy, 0.5));
    }
}
