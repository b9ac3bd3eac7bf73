//! The epoch loop every model type trains in: run epochs until the configured number, score
//! each on the validation data, keep the best epoch by a monitored value and stop early when it
//! has not improved for `patience` epochs, hand checkpoints (periodic, and each new best under
//! early stopping) to the caller, and stop where asked as if killed. What a checkpoint is on
//! disk, and how the final model is written, are the caller's ([`LoopHooks`]).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use taxon_core::model::ModelError;

use super::{TrainObserver, Trainable, Validation, run_epoch};

/// How many epochs to run, and when to checkpoint and stop.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopPlan {
    /// Epochs of the whole run (restored ones included).
    pub epochs: usize,
    /// Hand a checkpoint over every this many epochs (0: only new bests under early stopping).
    pub checkpoint_every: usize,
    /// Stop after this many epochs without improvement of the monitored value, and make the
    /// best epoch's weights the model.
    pub patience: Option<usize>,
    /// Stop (as if killed) after this many epochs in total, leaving only checkpoints.
    pub stop_after: Option<usize>,
}

/// The best epoch so far by the monitored validation value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestEpoch<M> {
    /// 1-based.
    pub epoch: usize,
    /// The monitored value (higher is better).
    pub value: f64,
    /// Validation metrics of that epoch.
    pub metrics: M,
}

/// Where the loop stands at an epoch boundary: what a checkpoint saves besides the weights and
/// a resumed run continues from. `M` is the caller's validation metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoopState<M> {
    /// Epochs finished.
    pub epoch: usize,
    /// Reports of the finished epochs.
    pub epochs: Vec<super::EpochReport>,
    /// Validation metrics after the last finished epoch.
    pub last_validation: Option<M>,
    pub best: Option<BestEpoch<M>>,
    /// Epochs since the best one (the early-stopping patience counter).
    pub epochs_since_best: usize,
}

impl<M> Default for LoopState<M> {
    fn default() -> Self {
        Self {
            epoch: 0,
            epochs: Vec::new(),
            last_validation: None,
            best: None,
            epochs_since_best: 0,
        }
    }
}

/// What the caller of [`run_epochs`] decides: how validation is measured and monitored, and
/// what a checkpoint is.
pub trait LoopHooks {
    /// Validation metrics, kept in the loop state.
    type Metrics: Clone;
    type Error: From<ModelError>;
    /// The metrics of an epoch's validation scores, and the monitored value (higher is better).
    fn measure(&self, validation: &Validation) -> (Self::Metrics, f64);
    /// Saves a checkpoint of `trainer` at `state` (the writing may go on in the background).
    fn checkpoint(
        &mut self,
        state: &LoopState<Self::Metrics>,
        trainer: &dyn Trainable,
    ) -> Result<(), Self::Error>;
    /// Waits for checkpoints still being written.
    fn flush(&mut self) -> Result<(), Self::Error>;
}

/// How the loop ended.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopEnd<M> {
    pub state: LoopState<M>,
    /// The epoch whose weights the model should hold.
    pub model_epoch: usize,
    /// Validation metrics of that epoch.
    pub model_validation: Option<M>,
    /// The model is the best epoch's, which is not the last one: its weights are in that
    /// epoch's checkpoint, not in the trainer.
    pub model_is_checkpoint: bool,
    /// Early stopping ended training before the planned epochs.
    pub stopped_early: bool,
    /// The loop stopped at `stop_after`: there is no final model, only checkpoints.
    pub interrupted: bool,
    /// Seconds in training epochs, this process only.
    pub train_seconds: f64,
    /// Seconds spent on checkpoints (copying weights, waiting for the writer).
    pub checkpoint_seconds: f64,
}

/// Runs `trainer` from `state` (a fresh one, or a checkpoint's after `Trainable::restore`) to
/// the end of `plan`.
pub fn run_epochs<H: LoopHooks>(
    trainer: &mut dyn Trainable,
    plan: &LoopPlan,
    mut state: LoopState<H::Metrics>,
    hooks: &mut H,
    observer: &dyn TrainObserver,
) -> Result<LoopEnd<H::Metrics>, H::Error> {
    let patience = plan.patience;
    let (mut train_seconds, mut checkpoint_seconds) = (0.0, 0.0);
    let mut interrupted = false;
    let out_of_patience = |s: &LoopState<H::Metrics>| {
        patience.is_some_and(|p| s.best.is_some() && s.epochs_since_best >= p)
    };
    observer.on_start(
        trainer.train_examples() as u64,
        plan.epochs.saturating_sub(state.epoch) as u64,
    );
    while state.epoch < plan.epochs && !out_of_patience(&state) {
        let (report, validation) = run_epoch(trainer, state.epoch + 1, plan.epochs, observer)?;
        train_seconds += report.seconds;
        state.epoch += 1;
        state.epochs.push(report);
        let measured = validation.as_ref().map(|v| hooks.measure(v));
        let mut improved = false;
        if let Some((metrics, value)) = &measured {
            improved = state.best.as_ref().is_none_or(|b| *value > b.value);
            if improved {
                state.best = Some(BestEpoch {
                    epoch: state.epoch,
                    value: *value,
                    metrics: metrics.clone(),
                });
                state.epochs_since_best = 0;
            } else {
                state.epochs_since_best += 1;
            }
        }
        state.last_validation = measured.map(|(m, _)| m);
        // The last epoch's weights become the model folder itself: without early stopping, a
        // checkpoint of them would be a second copy (only a stop before the end needs one).
        let last = state.epoch == plan.epochs && patience.is_none();
        let periodic =
            plan.checkpoint_every > 0 && state.epoch % plan.checkpoint_every == 0 && !last;
        if periodic || (patience.is_some() && improved) {
            let start = Instant::now();
            hooks.checkpoint(&state, trainer)?;
            checkpoint_seconds += start.elapsed().as_secs_f64();
        }
        if plan.stop_after == Some(state.epoch) && state.epoch < plan.epochs {
            interrupted = true;
            break;
        }
    }
    let start = Instant::now();
    hooks.flush()?;
    checkpoint_seconds += start.elapsed().as_secs_f64();
    let stopped_early = !interrupted && state.epoch < plan.epochs;
    let model_is_checkpoint =
        patience.is_some() && state.best.as_ref().is_some_and(|b| b.epoch != state.epoch);
    let (model_epoch, model_validation) = match (&state.best, model_is_checkpoint) {
        (Some(b), true) => (b.epoch, Some(b.metrics.clone())),
        _ => (state.epoch, state.last_validation.clone()),
    };
    Ok(LoopEnd {
        state,
        model_epoch,
        model_validation,
        model_is_checkpoint,
        stopped_early,
        interrupted,
        train_seconds,
        checkpoint_seconds,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use taxon_core::model::TextClassifier;

    use super::super::{Checkpoint, EpochStats};
    use super::*;

    /// A trainer whose validation accuracy follows a script, one value per epoch.
    struct Scripted {
        accuracy: Vec<f64>,
        done: usize,
    }

    impl Trainable for Scripted {
        fn train_examples(&self) -> usize {
            10
        }
        fn train_epoch(&mut self, _: &dyn TrainObserver) -> Result<EpochStats, ModelError> {
            self.done += 1;
            Ok(EpochStats {
                train_loss: 1.0 / self.done as f64,
                learning_rate: 0.1,
                tokens: 100,
            })
        }
        fn validate(&mut self) -> Result<Option<Validation>, ModelError> {
            Ok(Some(Validation {
                loss: 0.5,
                accuracy: self.accuracy[self.done - 1],
                predictions: vec![0; 4],
            }))
        }
        fn checkpoint(&self) -> Result<Checkpoint, ModelError> {
            Err(ModelError::NoExamples)
        }
        fn restore(&mut self, _: &Path, _: &serde_json::Value) -> Result<(), ModelError> {
            Ok(())
        }
        fn model(&self) -> Box<dyn TextClassifier> {
            unreachable!("not used by the loop")
        }
    }

    /// Records the epochs it was asked to checkpoint.
    #[derive(Default)]
    struct Recorder {
        checkpoints: Vec<usize>,
    }

    impl LoopHooks for Recorder {
        type Metrics = f64;
        type Error = ModelError;
        fn measure(&self, v: &Validation) -> (f64, f64) {
            (v.accuracy, v.accuracy)
        }
        fn checkpoint(&mut self, s: &LoopState<f64>, _: &dyn Trainable) -> Result<(), ModelError> {
            self.checkpoints.push(s.epoch);
            Ok(())
        }
        fn flush(&mut self) -> Result<(), ModelError> {
            Ok(())
        }
    }

    fn plan(epochs: usize, every: usize, patience: Option<usize>) -> LoopPlan {
        LoopPlan {
            epochs,
            checkpoint_every: every,
            patience,
            stop_after: None,
        }
    }

    fn run(accuracy: &[f64], plan: &LoopPlan) -> (LoopEnd<f64>, Vec<usize>) {
        let mut t = Scripted {
            accuracy: accuracy.to_vec(),
            done: 0,
        };
        let mut hooks = Recorder::default();
        let end = run_epochs(&mut t, plan, LoopState::default(), &mut hooks, &()).unwrap();
        (end, hooks.checkpoints)
    }

    #[test]
    fn early_stopping_keeps_the_best_epoch_and_checkpoints_each_new_best() {
        let (end, saved) = run(&[0.5, 0.7, 0.6, 0.65, 0.9], &plan(5, 0, Some(2)));
        assert!(end.stopped_early && !end.interrupted);
        assert_eq!(end.state.epoch, 4);
        assert_eq!((end.model_epoch, end.model_validation), (2, Some(0.7)));
        assert!(end.model_is_checkpoint);
        assert_eq!(saved, vec![1, 2]);
        assert_eq!(end.state.epochs.len(), 4);
        assert_eq!(end.state.epochs[1].validation_accuracy, Some(0.7));
    }

    #[test]
    fn without_patience_every_epoch_runs_and_the_last_is_the_model() {
        let (end, saved) = run(&[0.5, 0.7, 0.6], &plan(3, 2, None));
        assert!(!end.stopped_early && !end.model_is_checkpoint);
        assert_eq!((end.model_epoch, end.model_validation), (3, Some(0.6)));
        assert_eq!(saved, vec![2]);
        // The last epoch is not checkpointed: its weights are the model.
        let (_, saved) = run(&[0.5, 0.7, 0.6, 0.7], &plan(4, 2, None));
        assert_eq!(saved, vec![2]);
    }

    #[test]
    fn stop_after_interrupts_and_a_resumed_state_continues() {
        let mut p = plan(3, 1, None);
        p.stop_after = Some(2);
        let (end, saved) = run(&[0.5, 0.7, 0.6], &p);
        assert!(end.interrupted && !end.stopped_early);
        assert_eq!(saved, vec![1, 2]);
        let mut t = Scripted {
            accuracy: vec![0.5, 0.7, 0.6],
            done: 2,
        };
        let mut hooks = Recorder::default();
        let resumed = run_epochs(&mut t, &plan(3, 1, None), end.state, &mut hooks, &()).unwrap();
        assert_eq!(resumed.state.epoch, 3);
        assert_eq!(resumed.state.epochs.len(), 3);
        // Epoch 3 is the last: its weights are the model, not a checkpoint.
        assert!(hooks.checkpoints.is_empty(), "{:?}", hooks.checkpoints);
    }
}
