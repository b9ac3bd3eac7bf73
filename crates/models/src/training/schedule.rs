//! AdamW's options (Loshchilov & Hutter 2019, "Decoupled Weight Decay Regularization") and the
//! learning-rate schedule of the models trained with it: a linear warmup from 0 to the peak
//! rate, then a linear decay to 0 at the last step.

use serde::{Deserialize, Serialize};
use taxon_core::model::ModelError;

/// Options of an AdamW run in mini-batches.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamWOptions {
    /// Peak learning rate, reached at the end of warmup.
    pub learning_rate: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Steps of linear warmup from 0; `None`: 10% of all steps.
    pub warmup_steps: Option<usize>,
    pub epochs: usize,
    /// Texts per mini-batch.
    pub batch_size: usize,
    /// Largest global gradient norm (L2 over every variable); `None`: no clipping.
    pub clip_norm: Option<f64>,
    pub seed: u64,
    /// Threads of the rayon pool the model's kernels run on.
    pub threads: usize,
}

impl Default for AdamWOptions {
    fn default() -> Self {
        Self {
            learning_rate: 2e-3,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            warmup_steps: None,
            epochs: 6,
            batch_size: 32,
            clip_norm: Some(1.0),
            seed: 42,
            threads: 1,
        }
    }
}

impl AdamWOptions {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &str, message: String| {
            Err(ModelError::InvalidConfig {
                field: field.into(),
                message,
            })
        };
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return bad(
                "learning_rate",
                format!("must be a positive number, got {}", self.learning_rate),
            );
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(
                "weight_decay",
                format!("must be >= 0, got {}", self.weight_decay),
            );
        }
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if let Some(c) = self.clip_norm
            && !(c > 0.0 && c.is_finite())
        {
            return bad("clip_norm", format!("must be a positive number, got {c}"));
        }
        if self.threads == 0 {
            return bad("threads", "must be at least 1".into());
        }
        Ok(())
    }
}

/// The learning rate at 0-based `step` of `total`: linear warmup over `warmup` steps to `peak`,
/// then linear decay to 0 at `total`.
pub fn learning_rate_at(step: usize, total: usize, warmup: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let left = total.saturating_sub(step) as f64;
    let span = total.saturating_sub(warmup).max(1) as f64;
    peak * (left / span).clamp(0.0, 1.0)
}

/// The schedule of one run: [`learning_rate_at`] over every optimizer step of every epoch,
/// and the position in it (saved in checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    peak: f64,
    total: usize,
    warmup: usize,
    step: usize,
    /// The rate of the last step taken (the peak before the first).
    last: f64,
}

impl Schedule {
    /// The schedule of `opts` over `examples` training examples a epoch.
    pub fn new(examples: usize, opts: &AdamWOptions) -> Self {
        let total = examples.div_ceil(opts.batch_size.max(1)) * opts.epochs;
        Self {
            peak: opts.learning_rate,
            total,
            warmup: opts.warmup_steps.unwrap_or(total / 10).min(total),
            step: 0,
            last: opts.learning_rate,
        }
    }

    /// The rate of the next optimizer step; advances the schedule.
    pub fn next_rate(&mut self) -> f64 {
        self.last = learning_rate_at(self.step, self.total, self.warmup, self.peak);
        self.step += 1;
        self.last
    }

    /// The rate of the last step taken.
    pub fn last_rate(&self) -> f64 {
        self.last
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> usize {
        self.step
    }

    /// Continues at `step` (from a checkpoint).
    pub fn resume_at(&mut self, step: usize) {
        self.step = step;
    }
}

/// Where a mini-batch AdamW run stands at an epoch boundary, for checkpoints. Shuffling and
/// dropout of epoch N are drawn from a generator seeded by (seed, N), so no generator state
/// needs saving. AdamW's moment estimates are not part of it: a resumed run restarts them from
/// zero, with bias correction from step 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimizer steps taken: the position in the learning-rate schedule.
    pub step: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        let lr = |s| learning_rate_at(s, 100, 10, 1.0);
        assert!((lr(0) - 0.1).abs() < 1e-12);
        assert!((lr(9) - 1.0).abs() < 1e-12);
        assert!((lr(10) - 1.0).abs() < 1e-12);
        assert!((lr(55) - 0.5).abs() < 1e-12);
        assert!(lr(99) > 0.0 && lr(99) < 0.02);
        assert_eq!(lr(100), 0.0);
        assert!((learning_rate_at(0, 10, 0, 2.0) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn a_run_schedule_counts_steps_over_every_epoch_and_resumes() {
        let opts = AdamWOptions {
            learning_rate: 1.0,
            batch_size: 4,
            epochs: 2,
            ..Default::default()
        };
        // 10 examples: 3 batches a epoch, 6 steps, 0 warmup steps (10% of 6, rounded down).
        let mut s = Schedule::new(10, &opts);
        assert_eq!(s.last_rate(), 1.0);
        let rates: Vec<f64> = (0..6).map(|_| s.next_rate()).collect();
        assert!((rates[0] - 1.0).abs() < 1e-12 && (rates[3] - 0.5).abs() < 1e-12);
        assert_eq!(s.steps(), 6);
        let mut r = Schedule::new(10, &opts);
        r.resume_at(3);
        assert_eq!(r.next_rate(), rates[3]);
    }
}
