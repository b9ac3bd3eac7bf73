//! Training an lstm model: AdamW (Loshchilov & Hutter 2019, candle-nn's `AdamW`) with a
//! learning rate that rises linearly over `warmup_steps` then decays linearly to zero at the
//! last step, gradient clipping by global norm, and length-bucketed mini-batches padded to their
//! longest sequence.
//!
//! Reproducible: initialisation comes from a generator seeded with `seed`, each epoch's shuffling
//! and dropout masks from one seeded with (`seed`, epoch), and candle's CPU kernels are deterministic for a given thread count, so the same config, data and
//! `threads` give the same weights and metrics on the same machine.

use std::path::Path;

use candle_core::{Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};
use taxon_core::model::{ModelError, TextClassifier};

use super::net::{Batch, Dropout, Net};
use super::{LstmConfig, LstmModel, Vocab};
use crate::rng::SplitMix64;
use crate::training::batches::{StepLoss, minibatch_epoch};
use crate::training::{
    self, AdamWOptions, Checkpoint, EpochReport, EpochStats, RunSettings, Schedule, StepState,
    TrainObserver, Trainable, Validation,
};

/// An lstm training run as configured: the model's hyper-parameters and AdamW's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LstmOptions {
    /// The model's hyper-parameters (recorded in `model.json` as `params`).
    pub model_config: LstmConfig,
    /// Peak learning rate. The defaults were tuned on a validation split of BBC News' training
    /// part.
    pub learning_rate: f32,
    /// Passes over the training data.
    pub epochs: usize,
    /// Texts per optimizer step.
    pub batch_size: usize,
    /// Steps of linear warmup; default 10% of all steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
}

impl Default for LstmOptions {
    fn default() -> Self {
        Self {
            model_config: LstmConfig::default(),
            learning_rate: 2e-3,
            epochs: 6,
            batch_size: 32,
            warmup_steps: None,
        }
    }
}

impl LstmOptions {
    /// The AdamW options of a run with these options.
    pub fn adamw(&self, run: RunSettings) -> AdamWOptions {
        AdamWOptions {
            learning_rate: f64::from(self.learning_rate),
            warmup_steps: self.warmup_steps,
            epochs: self.epochs,
            batch_size: self.batch_size,
            seed: run.seed,
            threads: run.threads,
            ..Default::default()
        }
    }
}

fn compute(step: &str) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::compute(super::MODEL_TYPE, step, e)
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
    let reports = training::train_epochs(&mut trainer, opts.epochs, observer)?;
    Ok((trainer.model(), reports))
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
    schedule: Schedule,
    epochs_done: usize,
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
        training::check_data(labels, train, validation)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| ModelError::Threads {
                threads: opts.threads,
                source: Box::new(e),
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
        let schedule = Schedule::new(train_ids.len(), opts);
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
            schedule,
            epochs_done: 0,
            pool: std::sync::Arc::new(pool),
        })
    }

    /// One epoch of mini-batches: forward with dropout, backward, clipping, an AdamW step at
    /// the schedule's rate.
    fn epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochStats, ModelError> {
        let epoch = self.epochs_done + 1;
        let Self {
            config,
            opts,
            train_ids,
            train_labels,
            vars,
            net,
            opt,
            schedule,
            ..
        } = self;
        let mut stats = minibatch_epoch(
            train_ids,
            opts.batch_size,
            opts.seed,
            epoch,
            observer,
            |batch_idx, rng| {
                let seqs: Vec<&[u32]> =
                    batch_idx.iter().map(|&i| train_ids[i].as_slice()).collect();
                let targets: Vec<u32> = batch_idx.iter().map(|&i| train_labels[i]).collect();
                let batch = Batch::new(&seqs).map_err(compute("batch"))?;
                let dropout = Dropout {
                    p: config.dropout,
                    rng,
                };
                let logits = net
                    .forward(&batch, Some(dropout))
                    .map_err(compute("forward"))?;
                let loss = Net::loss(&logits, &targets).map_err(compute("loss"))?;
                let mut grads = loss.backward().map_err(compute("backward"))?;
                if let Some(max) = opts.clip_norm {
                    clip_global_norm(&mut grads, vars, max).map_err(compute("clip"))?;
                }
                opt.set_learning_rate(schedule.next_rate());
                opt.step(&grads).map_err(compute("optimizer step"))?;
                Ok(StepLoss {
                    loss: loss.to_scalar::<f32>().map_err(compute("loss"))?,
                    tokens: batch.tokens().map_err(compute("batch"))?,
                })
            },
        )?;
        stats.learning_rate = self.schedule.last_rate();
        self.epochs_done = epoch;
        Ok(stats)
    }

    /// The state at this epoch boundary.
    pub fn state(&self) -> StepState {
        StepState {
            epochs_done: self.epochs_done,
            step: self.schedule.steps(),
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
    pub fn restore_from(&mut self, model: &LstmModel, state: &StepState) -> Result<(), ModelError> {
        let mismatch = |field: &str, expected: String, found: String| {
            Err(ModelError::CheckpointMismatch {
                field: field.into(),
                expected,
                found,
            })
        };
        if model.config != self.config {
            return mismatch(
                "params",
                format!("{:?}", self.config),
                format!("{:?}", model.config),
            );
        }
        if model.labels != self.labels {
            return mismatch(
                "labels",
                format!("{:?}", self.labels),
                format!("{:?}", model.labels),
            );
        }
        if model.vocab != self.vocab {
            return mismatch(
                "vocab.txt",
                format!(
                    "the vocabulary of this training data ({} words)",
                    self.vocab.len()
                ),
                format!("{} words", model.vocab.len()),
            );
        }
        if state.epochs_done > self.opts.epochs {
            return mismatch(
                "epochs_done",
                format!("at most {}", self.opts.epochs),
                state.epochs_done.to_string(),
            );
        }
        for (var, t) in self.vars.iter().zip(&model.net.tensors) {
            var.set(t).map_err(compute("restore"))?;
        }
        self.opt = adamw(&self.vars, &self.opts)?;
        self.schedule.resume_at(state.step);
        self.epochs_done = state.epochs_done;
        Ok(())
    }
}

impl Trainable for LstmTrainer {
    fn train_examples(&self) -> usize {
        self.train_ids.len()
    }

    /// Runs the epoch in the trainer's thread pool.
    fn train_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochStats, ModelError> {
        let pool = std::sync::Arc::clone(&self.pool);
        pool.install(|| self.epoch(observer))
    }

    fn validate(&mut self) -> Result<Option<Validation>, ModelError> {
        if self.val_ids.is_empty() {
            return Ok(None);
        }
        let model = self.model();
        let val_ids = &self.val_ids;
        let probs = self
            .pool
            .install(|| model.predict_ids(val_ids))
            .map_err(compute("validation"))?;
        Ok(Some(training::scores::score(
            &probs,
            &self.val_labels,
            training::scores::MIN_PROB,
        )))
    }

    fn checkpoint(&self) -> Result<Checkpoint, ModelError> {
        Ok(Checkpoint {
            model: Box::new(self.model()),
            state: training::encode_state(&self.state())?,
        })
    }

    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), ModelError> {
        let state: StepState = training::decode_state(state, "an lstm AdamW state")?;
        let model = LstmModel::load(dir)?;
        self.restore_from(&model, &state)
    }

    fn model(&self) -> Box<dyn TextClassifier> {
        Box::new(LstmTrainer::model(self))
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
