//! Training an lstm model: AdamW (Loshchilov & Hutter 2019, candle-nn's `AdamW`) with a
//! learning rate that rises linearly over `warmup_steps` then decays linearly to zero at the
//! last step, gradient clipping by global norm, and length-bucketed mini-batches padded to their
//! longest sequence.
//!
//! Reproducible: initialisation comes from a generator seeded with `seed`, each epoch's shuffling
//! and dropout masks from one seeded with (`seed`, epoch), and candle's CPU kernels are deterministic for a given thread count, so the same config, data and
//! `threads` give the same weights and metrics on the same machine.

use std::time::Instant;

use candle_core::{Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};
use taxon_core::model::ModelError;

use super::net::{Batch, Dropout, Net};
use super::{LstmConfig, LstmModel, Vocab};
use crate::linear::{EpochReport, TrainObserver};
use crate::rng::SplitMix64;
use crate::scores::loss_and_accuracy;

/// Options of the AdamW run (the training config's top-level keys).
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
    /// Threads of the rayon pool candle's kernels run on.
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
    fn validate(&self) -> Result<(), ModelError> {
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

fn compute(context: &str) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::TrainingData {
        message: format!("lstm {context}: {e}"),
    }
}

/// Trains an lstm model on `train` (text, label index into `labels`), reporting loss and
/// accuracy on `validation` after each epoch when it is not empty.
pub fn train(
    config: &LstmConfig,
    opts: &AdamWOptions,
    labels: &[String],
    train: &[(&str, usize)],
    validation: &[(&str, usize)],
    observer: &dyn TrainObserver,
) -> Result<(LstmModel, Vec<EpochReport>), ModelError> {
    let mut trainer = LstmTrainer::new(config, opts, labels, train, validation)?;
    let mut reports = Vec::with_capacity(opts.epochs);
    while trainer.epochs_done() < opts.epochs {
        reports.push(trainer.run_epoch(observer)?);
    }
    Ok((trainer.model(), reports))
}

/// Where a run stands at an epoch boundary, for checkpoints. Shuffling and dropout of epoch N
/// are drawn from a generator seeded by (seed, N), so no generator state needs saving. AdamW's
/// moment estimates are not part of it (candle's `AdamW` keeps them private): a resumed run
/// restarts them from zero, with bias correction from step 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LstmState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimizer steps taken: the position in the learning-rate schedule.
    pub step: usize,
}

/// An lstm model in training, one epoch at a time.
pub struct LstmTrainer {
    config: LstmConfig,
    opts: AdamWOptions,
    labels: Vec<String>,
    vocab: Vocab,
    train_ids: Vec<Vec<u32>>,
    train_labels: Vec<u32>,
    val_ids: Vec<Vec<u32>>,
    val_labels: Vec<u32>,
    vars: Vec<Var>,
    net: Net,
    opt: AdamW,
    total: usize,
    warmup: usize,
    step: usize,
    epochs_done: usize,
    val_pred: Vec<usize>,
    pool: std::sync::Arc<rayon::ThreadPool>,
}

fn adamw(vars: &[Var], opts: &AdamWOptions) -> Result<AdamW, ModelError> {
    AdamW::new(
        vars.to_vec(),
        ParamsAdamW {
            lr: opts.learning_rate,
            beta1: opts.beta1,
            beta2: opts.beta2,
            eps: opts.eps,
            weight_decay: opts.weight_decay,
        },
    )
    .map_err(compute("optimizer"))
}

impl LstmTrainer {
    /// Checks the inputs, builds the vocabulary, encodes the data and initialises the weights
    /// from `opts.seed`.
    pub fn new(
        config: &LstmConfig,
        opts: &AdamWOptions,
        labels: &[String],
        train: &[(&str, usize)],
        validation: &[(&str, usize)],
    ) -> Result<Self, ModelError> {
        config.validate()?;
        opts.validate()?;
        if labels.len() < 2 {
            return Err(ModelError::TrainingData {
                message: format!("need at least 2 labels, found {}", labels.len()),
            });
        }
        if train.is_empty() {
            return Err(ModelError::TrainingData {
                message: "no training examples".into(),
            });
        }
        if let Some(&(_, bad)) = train
            .iter()
            .chain(validation)
            .find(|(_, l)| *l >= labels.len())
        {
            return Err(ModelError::TrainingData {
                message: format!("label index {bad} out of range for {} labels", labels.len()),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| ModelError::TrainingData {
                message: format!("cannot start {} threads: {e}", opts.threads),
            })?;
        let vocab = Vocab::build(
            train.iter().map(|(t, _)| *t),
            config.lowercase,
            config.min_count,
            config.max_vocab,
        );
        let mut buf = String::new();
        let mut encode = |rows: &[(&str, usize)]| -> (Vec<Vec<u32>>, Vec<u32>) {
            rows.iter()
                .map(|(t, l)| (vocab.encode(t, config.max_len, &mut buf), *l as u32))
                .unzip()
        };
        let (train_ids, train_labels) = encode(train);
        let (val_ids, val_labels) = encode(validation);
        let mut rng = SplitMix64::new(opts.seed);
        let init =
            Net::init(vocab.len(), config, labels.len(), &mut rng).map_err(compute("init"))?;
        let vars: Vec<Var> = init
            .tensors
            .iter()
            .map(Var::from_tensor)
            .collect::<candle_core::Result<_>>()
            .map_err(compute("init"))?;
        let net = Net {
            tensors: vars.iter().map(|v| v.as_tensor().clone()).collect(),
            ..init
        };
        let opt = adamw(&vars, opts)?;
        let total = train_ids.len().div_ceil(opts.batch_size) * opts.epochs;
        let warmup = opts.warmup_steps.unwrap_or(total / 10).min(total);
        Ok(Self {
            config: config.clone(),
            opts: opts.clone(),
            labels: labels.to_vec(),
            vocab,
            train_ids,
            train_labels,
            val_ids,
            val_labels,
            vars,
            net,
            opt,
            total,
            warmup,
            step: 0,
            epochs_done: 0,
            val_pred: Vec::new(),
            pool: std::sync::Arc::new(pool),
        })
    }

    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Arg-max label index of every validation example after the last epoch, in order.
    pub fn validation_predictions(&self) -> &[usize] {
        &self.val_pred
    }

    /// Runs one more epoch (in the trainer's thread pool) and reports it (also to `observer`).
    pub fn run_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochReport, ModelError> {
        let pool = std::sync::Arc::clone(&self.pool);
        pool.install(|| self.epoch(observer))
    }

    fn epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochReport, ModelError> {
        let epoch = self.epochs_done + 1;
        let mut rng = SplitMix64::new(
            self.opts
                .seed
                .wrapping_add((epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F)),
        );
        let start = Instant::now();
        let (mut loss_sum, mut tokens) = (0.0f64, 0.0f64);
        for batch_idx in bucketed_batches(&self.train_ids, self.opts.batch_size, &mut rng) {
            let seqs: Vec<&[u32]> = batch_idx
                .iter()
                .map(|&i| self.train_ids[i].as_slice())
                .collect();
            let targets: Vec<u32> = batch_idx.iter().map(|&i| self.train_labels[i]).collect();
            let batch = Batch::new(&seqs).map_err(compute("batch"))?;
            let dropout = Dropout {
                p: self.config.dropout,
                rng: &mut rng,
            };
            let logits = self
                .net
                .forward(&batch, Some(dropout))
                .map_err(compute("forward"))?;
            let loss = Net::loss(&logits, &targets).map_err(compute("loss"))?;
            let mut grads = loss.backward().map_err(compute("backward"))?;
            if let Some(max) = self.opts.clip_norm {
                clip_global_norm(&mut grads, &self.vars, max).map_err(compute("clip"))?;
            }
            self.opt.set_learning_rate(learning_rate_at(
                self.step,
                self.total,
                self.warmup,
                self.opts.learning_rate,
            ));
            self.opt.step(&grads).map_err(compute("optimizer step"))?;
            self.step += 1;
            let l = loss.to_scalar::<f32>().map_err(compute("loss"))?;
            loss_sum += l as f64 * targets.len() as f64;
            tokens += batch.tokens().map_err(compute("batch"))? as f64;
            observer.on_docs(targets.len() as u64, l);
        }
        let seconds = start.elapsed().as_secs_f64();
        self.epochs_done = epoch;
        let (validation_loss, validation_accuracy) = self.validate()?;
        let report = EpochReport {
            epoch,
            epochs: self.opts.epochs,
            train_loss: loss_sum / self.train_ids.len() as f64,
            validation_loss,
            validation_accuracy,
            learning_rate: self.opt.learning_rate(),
            seconds,
            tokens_per_sec: tokens / seconds.max(1e-9),
        };
        observer.on_epoch(&report);
        Ok(report)
    }

    /// Scores the validation set with the current weights; `(loss, accuracy)` when it is not
    /// empty.
    fn validate(&mut self) -> Result<(Option<f64>, Option<f64>), ModelError> {
        if self.val_ids.is_empty() {
            self.val_pred.clear();
            return Ok((None, None));
        }
        let probs = self
            .model()
            .predict_ids(&self.val_ids)
            .map_err(compute("validation"))?;
        let (loss, acc, pred) = loss_and_accuracy(&probs, &self.val_labels);
        self.val_pred = pred;
        Ok((Some(loss), Some(acc)))
    }

    /// The state at this epoch boundary.
    pub fn state(&self) -> LstmState {
        LstmState {
            epochs_done: self.epochs_done,
            step: self.step,
        }
    }

    /// The model as it stands (plain tensors: prediction builds no autograd graph).
    pub fn model(&self) -> LstmModel {
        LstmModel {
            config: self.config.clone(),
            labels: self.labels.clone(),
            vocab: self.vocab.clone(),
            net: Net {
                tensors: self
                    .vars
                    .iter()
                    .map(|v| v.as_tensor().detach().copy())
                    .collect::<candle_core::Result<_>>()
                    .unwrap_or_else(|_| self.net.tensors.clone()),
                ..self.net.clone()
            },
            files: Vec::new(),
        }
    }

    /// Continues from a checkpoint: `model`'s weights (which must come from the same config,
    /// labels and training data) and `state`.
    pub fn restore(&mut self, model: &LstmModel, state: &LstmState) -> Result<(), ModelError> {
        let mismatch = |field: &str, expected: String, found: String| ModelError::Mismatch {
            path: Default::default(),
            field: field.into(),
            expected,
            found,
        };
        if model.config != self.config {
            return Err(mismatch(
                "params",
                format!("{:?}", self.config),
                format!("{:?}", model.config),
            ));
        }
        if model.labels != self.labels {
            return Err(mismatch(
                "labels",
                format!("{:?}", self.labels),
                format!("{:?}", model.labels),
            ));
        }
        if model.vocab != self.vocab {
            return Err(mismatch(
                "vocab.txt",
                format!(
                    "the vocabulary of this training data ({} words)",
                    self.vocab.len()
                ),
                format!("{} words", model.vocab.len()),
            ));
        }
        if state.epochs_done > self.opts.epochs {
            return Err(mismatch(
                "epochs_done",
                format!("at most {}", self.opts.epochs),
                state.epochs_done.to_string(),
            ));
        }
        for (var, t) in self.vars.iter().zip(&model.net.tensors) {
            var.set(t).map_err(compute("restore"))?;
        }
        self.opt = adamw(&self.vars, &self.opts)?;
        self.step = state.step;
        self.epochs_done = state.epochs_done;
        self.validate()?;
        Ok(())
    }
}

/// Scales every gradient so their global L2 norm is at most `max`.
fn clip_global_norm(
    grads: &mut candle_core::backprop::GradStore,
    vars: &[Var],
    max: f64,
) -> candle_core::Result<()> {
    let mut sq = 0.0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if norm > max && norm.is_finite() {
        let scale = max / norm;
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), g.affine(scale, 0.0)?);
            }
        }
    }
    Ok(())
}

/// One epoch's mini-batches (indices into `seqs`): shuffle, cut into pools of 32 batches, sort
/// each pool by length and cut it into batches (so a batch holds texts of similar length and
/// little padding), then shuffle the batch order.
fn bucketed_batches(seqs: &[Vec<u32>], batch_size: usize, rng: &mut SplitMix64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    rng.shuffle(&mut order);
    let mut batches: Vec<Vec<usize>> = Vec::new();
    for pool in order.chunks_mut(batch_size * 32) {
        pool.sort_by_key(|&i| seqs[i].len());
        batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    rng.shuffle(&mut batches);
    batches
}

/// The gradient of every trainable tensor after one backward pass on a batch; for tests.
#[doc(hidden)]
pub fn gradients_of_one_step(
    config: &LstmConfig,
    labels: usize,
    texts: &[(&str, usize)],
    seed: u64,
) -> Result<Vec<(&'static str, Option<Tensor>)>, ModelError> {
    let vocab = Vocab::build(
        texts.iter().map(|(t, _)| *t),
        config.lowercase,
        config.min_count,
        config.max_vocab,
    );
    let mut rng = SplitMix64::new(seed);
    let init = Net::init(vocab.len(), config, labels, &mut rng).map_err(compute("init"))?;
    let vars: Vec<Var> = init
        .tensors
        .iter()
        .map(Var::from_tensor)
        .collect::<candle_core::Result<_>>()
        .map_err(compute("init"))?;
    let net = Net {
        tensors: vars.iter().map(|v| v.as_tensor().clone()).collect(),
        ..init
    };
    let mut buf = String::new();
    let ids: Vec<Vec<u32>> = texts
        .iter()
        .map(|(t, _)| vocab.encode(t, config.max_len, &mut buf))
        .collect();
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let targets: Vec<u32> = texts.iter().map(|(_, l)| *l as u32).collect();
    let batch = Batch::new(&seqs).map_err(compute("batch"))?;
    let logits = net.forward(&batch, None).map_err(compute("forward"))?;
    let loss = Net::loss(&logits, &targets).map_err(compute("loss"))?;
    let grads = loss.backward().map_err(compute("backward"))?;
    Ok(super::net::NAMES
        .iter()
        .zip(&vars)
        .map(|(name, v)| (*name, grads.get(v.as_tensor()).cloned()))
        .collect())
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
    fn buckets_cover_every_example_once_with_similar_lengths() {
        let seqs: Vec<Vec<u32>> = (0..100).map(|i| vec![1; (i * 7) % 50]).collect();
        let batches = bucketed_batches(&seqs, 8, &mut SplitMix64::new(1));
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() <= 8));
        // Sorted within the pool: each batch's lengths are non-decreasing.
        for b in &batches {
            assert!(b.windows(2).all(|w| seqs[w[0]].len() <= seqs[w[1]].len()));
        }
    }
}
