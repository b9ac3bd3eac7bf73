//! Live accuracy from feedback: the last N (true label, predicted label) pairs of one model
//! version, in constant memory, with accuracy and per-label recall over that window.

use std::collections::VecDeque;

/// A sliding window of feedback for a model with `labels` labels (indices).
#[derive(Clone, Debug)]
pub struct LiveAccuracy {
    capacity: usize,
    window: VecDeque<(u16, u16)>,
    correct: usize,
    /// Per true label: (seen, predicted right).
    per_label: Vec<(usize, usize)>,
}

impl LiveAccuracy {
    pub fn new(labels: usize, capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            window: VecDeque::with_capacity(capacity.clamp(1, 65_536)),
            correct: 0,
            per_label: vec![(0, 0); labels],
        }
    }

    /// Adds one feedback (label indices); the oldest leaves a full window.
    pub fn add(&mut self, truth: usize, predicted: usize) {
        if truth >= self.per_label.len() {
            return;
        }
        if self.window.len() == self.capacity {
            if let Some((t, p)) = self.window.pop_front() {
                self.account(usize::from(t), usize::from(p), false);
            }
        }
        let (t, p) = (truth as u16, predicted as u16);
        self.window.push_back((t, p));
        self.account(truth, predicted, true);
    }

    fn account(&mut self, t: usize, p: usize, add: bool) {
        let right = usize::from(t == p);
        let e = &mut self.per_label[t];
        if add {
            self.correct += right;
            e.0 += 1;
            e.1 += right;
        } else {
            self.correct -= right;
            e.0 -= 1;
            e.1 -= right;
        }
    }

    /// Feedback in the window.
    pub fn len(&self) -> usize {
        self.window.len()
    }

    pub fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Share of the window predicted right; `None` when empty.
    pub fn accuracy(&self) -> Option<f64> {
        (!self.window.is_empty()).then(|| self.correct as f64 / self.window.len() as f64)
    }

    /// Recall of label `i` over the window; `None` when the window has none of it.
    pub fn recall(&self, i: usize) -> Option<f64> {
        let (n, right) = *self.per_label.get(i)?;
        (n > 0).then(|| right as f64 / n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_slides_and_recall_follows() {
        let mut a = LiveAccuracy::new(2, 4);
        assert_eq!(a.accuracy(), None);
        a.add(0, 0);
        a.add(0, 1);
        a.add(1, 1);
        a.add(1, 1);
        assert_eq!(a.accuracy(), Some(0.75));
        assert_eq!(a.recall(0), Some(0.5));
        assert_eq!(a.recall(1), Some(1.0));
        // Two more wrong ones push out (0,0) and (0,1).
        a.add(1, 0);
        a.add(1, 0);
        assert_eq!(a.len(), 4);
        assert_eq!(a.accuracy(), Some(0.5));
        assert_eq!(a.recall(0), None);
        assert_eq!(a.recall(1), Some(0.5));
        a.add(7, 0); // unknown label index: ignored
        assert_eq!(a.len(), 4);
    }
}
