//! What every model type's training shares: the [`Trainable`] trait a model type's trainer
//! implements (train one epoch, score the validation data, checkpoint and restore), the
//! [`epochs`] loop that drives it (reports, checkpoints, early stopping), the progress
//! [`TrainObserver`], AdamW's options and the warmup/decay [`schedule`], the seeded
//! length-bucketed mini-batches ([`batches`]) and validation scoring. Which trainer a config
//! builds is [`ModelConfig::trainer`], the one `match` on the model type for training.

pub mod batches;
mod config;
pub mod epochs;
pub mod schedule;
pub(crate) mod scores;

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use taxon_core::model::{ModelError, TextClassifier};

pub use config::{ModelConfig, RunSettings};
pub use epochs::{BestEpoch, LoopEnd, LoopHooks, LoopPlan, LoopState, run_epochs};
pub use schedule::{AdamWOptions, Schedule, StepState, learning_rate_at};

/// What one epoch measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// Mean log loss over the epoch's training examples.
    pub train_loss: f64,
    pub validation_loss: Option<f64>,
    pub validation_accuracy: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub learning_rate: f64,
    pub seconds: f64,
    pub tokens_per_sec: f64,
}

/// Receives the progress of a training run; every method defaults to doing nothing.
pub trait TrainObserver: Sync {
    /// `bytes` of the `total` bytes of the data file `path` were read.
    fn on_read(&self, _path: &Path, _bytes: u64, _total: u64) {}
    /// Training starts: `examples` training examples a epoch, `epochs` epochs to run.
    fn on_start(&self, _examples: u64, _epochs: u64) {}
    /// `docs` more training examples were processed, with this mean loss (called from the
    /// training threads).
    fn on_docs(&self, _docs: u64, _mean_loss: f32) {}
    /// An epoch ended.
    fn on_epoch(&self, _report: &EpochReport) {}
}

impl TrainObserver for () {}

/// What a trainer measured over one epoch of training.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochStats {
    /// Mean loss over the epoch's examples.
    pub train_loss: f64,
    /// The learning rate at the end of the epoch.
    pub learning_rate: f64,
    /// Tokens the epoch processed.
    pub tokens: u64,
}

/// The validation data scored with the weights of an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct Validation {
    /// Mean log loss.
    pub loss: f64,
    pub accuracy: f64,
    /// Arg-max label index of every validation example, in input order.
    pub predictions: Vec<usize>,
}

/// A copy of a model in training at an epoch boundary: its weights and its optimizer state.
pub struct Checkpoint {
    /// The model as it stands, to be saved (possibly by another thread while training goes on).
    pub model: Box<dyn TextClassifier>,
    /// The trainer's own state (schedule position, generator, example order).
    pub state: serde_json::Value,
}

/// A model type's trainer, advanced one epoch at a time by [`run_epochs`].
pub trait Trainable {
    /// Training examples a epoch.
    fn train_examples(&self) -> usize;
    /// Trains one more epoch over the training data, reporting examples to `observer`.
    fn train_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochStats, ModelError>;
    /// Scores the validation data with the current weights; `None` without validation data.
    fn validate(&mut self) -> Result<Option<Validation>, ModelError>;
    /// The model and optimizer state as they stand.
    fn checkpoint(&self) -> Result<Checkpoint, ModelError>;
    /// Continues from a checkpoint: the model folder `dir` (written from a [`Checkpoint`]'s
    /// model) and the `state` captured with it. The checkpoint must come from the same config
    /// and data; anything else is an error saying what differs.
    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), ModelError>;
    /// The model as it stands.
    fn model(&self) -> Box<dyn TextClassifier>;
    /// The models that score texts as new ones, for the monitor's reference profile (see
    /// [`HeldOut`]); called once, after training.
    fn held_out(&mut self) -> HeldOut {
        HeldOut::Final
    }
}

/// Which model scores which texts as new ones, for the monitor's reference profile: a model's
/// scores on texts it learned from are more confident than on any text it serves.
pub enum HeldOut {
    /// [`Trainable::model`] never saw the validation texts: they profile it.
    Final,
    /// Cross-fitted models, for a trainer that refits on every labelled text at the end: model
    /// `k` of `K` was fitted like the final one but without the texts `i` (the training texts,
    /// then the validation texts, in order) with `i % K == k`, so every labelled text is scored
    /// once as new text.
    Folds(Vec<Box<dyn TextClassifier>>),
}

/// Runs one epoch of `trainer` (epoch `epoch` of `epochs`): trains, scores the validation
/// data, and reports both (also to `observer`). The validation predictions come back with the
/// report.
pub fn run_epoch(
    trainer: &mut dyn Trainable,
    epoch: usize,
    epochs: usize,
    observer: &dyn TrainObserver,
) -> Result<(EpochReport, Option<Validation>), ModelError> {
    let start = Instant::now();
    let stats = trainer.train_epoch(observer)?;
    let seconds = start.elapsed().as_secs_f64();
    let validation = trainer.validate()?;
    let report = EpochReport {
        epoch,
        epochs,
        train_loss: stats.train_loss,
        validation_loss: validation.as_ref().map(|v| v.loss),
        validation_accuracy: validation.as_ref().map(|v| v.accuracy),
        learning_rate: stats.learning_rate,
        seconds,
        tokens_per_sec: stats.tokens as f64 / seconds.max(1e-9),
    };
    observer.on_epoch(&report);
    Ok((report, validation))
}

/// Runs `epochs` epochs of a fresh `trainer` and returns their reports: training without
/// checkpoints or early stopping, in one call.
pub fn train_epochs(
    trainer: &mut dyn Trainable,
    epochs: usize,
    observer: &dyn TrainObserver,
) -> Result<Vec<EpochReport>, ModelError> {
    (1..=epochs)
        .map(|epoch| run_epoch(trainer, epoch, epochs, observer).map(|(report, _)| report))
        .collect()
}

/// Checks what every trainer needs of its data: at least two labels, some training examples,
/// and label indices within the labels.
pub(crate) fn check_data(
    labels: &[String],
    train: &[(&str, usize)],
    validation: &[(&str, usize)],
) -> Result<(), ModelError> {
    if labels.len() < 2 {
        return Err(ModelError::TooFewLabels {
            needed: 2,
            found: labels.len(),
        });
    }
    if train.is_empty() {
        return Err(ModelError::NoExamples);
    }
    if let Some(&(_, index)) = train
        .iter()
        .chain(validation)
        .find(|(_, l)| *l >= labels.len())
    {
        return Err(ModelError::LabelOutOfRange {
            index,
            labels: labels.len(),
        });
    }
    Ok(())
}

/// Decodes a trainer's checkpoint `state` as `T` (`what` names it in the error).
pub(crate) fn decode_state<T: serde::de::DeserializeOwned>(
    state: &serde_json::Value,
    what: &str,
) -> Result<T, ModelError> {
    serde_json::from_value(state.clone()).map_err(|e| ModelError::CheckpointMismatch {
        field: "trainer".into(),
        expected: what.into(),
        found: format!("a state that does not decode ({e})"),
    })
}

/// Encodes a trainer's checkpoint state.
pub(crate) fn encode_state<T: Serialize>(state: &T) -> Result<serde_json::Value, ModelError> {
    serde_json::to_value(state).map_err(|source| ModelError::Json {
        path: "trainer state".into(),
        source,
    })
}
