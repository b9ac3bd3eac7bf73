//! Fine-tuning a bert model: AdamW (Loshchilov & Hutter 2019) at a linearly warmed-up then
//! linearly decayed learning rate (10% warmup by default), weight decay on every tensor except
//! biases and LayerNorm parameters, updated in place by one fused pass per tensor ([`adamw`]),
//! gradient clipping by global norm (folded into that pass), seeded shuffling and length-bucketed mini-batches padded to their
//! longest text. `freeze_layers: k` keeps the embeddings and the first k encoder layers as plain
//! tensors, so they get no gradient and no update.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use taxon_core::model::{ModelError, TextClassifier};

use super::net::{Batch, Dropout, Net, PER_LAYER, embedding_count, names};
use super::{BertConfig, BertModel};
use crate::training::batches::{StepLoss, minibatch_epoch};
use crate::training::{
    self, AdamWOptions, Checkpoint, EpochReport, EpochStats, RunSettings, Schedule, StepState,
    TrainObserver, Trainable, Validation,
};
use adamw::{FusedAdamW, Hyper};

mod adamw;

/// A bert fine-tuning run as configured: the checkpoint to start from, the model's settings and
/// AdamW's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BertOptions {
    /// The Hugging Face checkpoint folder to fine-tune (config.json, tokenizer.json,
    /// model.safetensors; BERT or DistilBERT).
    pub model_path: PathBuf,
    /// The fine-tuning settings (recorded in `model.json` as `params`).
    pub model_config: BertConfig,
    /// Peak learning rate.
    pub learning_rate: f32,
    /// Passes over the training data.
    pub epochs: usize,
    /// Texts per optimizer step.
    pub batch_size: usize,
    /// Steps of linear warmup; default 10% of all steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup_steps: Option<usize>,
}

impl Default for BertOptions {
    /// Devlin et al. 2019's recommended range.
    fn default() -> Self {
        Self {
            model_path: PathBuf::new(),
            model_config: BertConfig::default(),
            learning_rate: 5e-5,
            epochs: 3,
            batch_size: 16,
            warmup_steps: None,
        }
    }
}

impl BertOptions {
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

/// Fine-tunes the checkpoint in `base` on `train` (text, label index into `labels`), reporting
/// validation loss and accuracy after each epoch when `validation` is not empty.
pub fn train(
    base: &Path,
    config: &BertConfig,
    opts: &AdamWOptions,
    labels: &[String],
    train: &[(&str, usize)],
    validation: &[(&str, usize)],
    observer: &dyn TrainObserver,
) -> Result<(BertModel, Vec<EpochReport>), ModelError> {
    let mut trainer = BertTrainer::new(base, config, opts, labels, train, validation)?;
    let reports = training::train_epochs(&mut trainer, opts.epochs, observer)?;
    Ok((trainer.model(), reports))
}

/// Whether tensor `name` is exempt from weight decay (biases and LayerNorm parameters).
fn no_decay(name: &str) -> bool {
    name.ends_with(".bias") || name.contains("LayerNorm") || name.contains("layer_norm")
}

/// A bert model in fine-tuning, one epoch at a time.
pub struct BertTrainer {
    model: BertModel,
    opts: AdamWOptions,
    train_ids: Vec<Vec<u32>>,
    train_labels: Vec<u32>,
    val_ids: Vec<Vec<u32>>,
    val_labels: Vec<u32>,
    /// `(index into the net's tensors, variable)` of every trained tensor.
    vars: Vec<(usize, Var)>,
    optimizer: FusedAdamW,
    schedule: Schedule,
    epochs_done: usize,
    pool: Arc<rayon::ThreadPool>,
}

/// The net with its trainable tensors turned into variables.
fn with_vars(mut net: Net, freeze_layers: usize) -> Result<(Net, Vec<(usize, Var)>), ModelError> {
    let frozen = if freeze_layers == 0 {
        0
    } else {
        embedding_count(&net.cfg) + PER_LAYER * freeze_layers
    };
    let mut vars = Vec::new();
    for (i, t) in net.tensors.iter_mut().enumerate().skip(frozen) {
        let v = Var::from_tensor(t).map_err(compute("init"))?;
        *t = v.as_tensor().clone();
        vars.push((i, v));
    }
    Ok((net, vars))
}

fn optimizer(net: &Net, vars: &[(usize, Var)], labels: usize, opts: &AdamWOptions) -> FusedAdamW {
    let spec = names(&net.cfg, net.pooling, labels);
    let with_decay = vars
        .iter()
        .map(|(i, v)| {
            let wd = if no_decay(&spec[*i].0) {
                0.0
            } else {
                opts.weight_decay
            };
            (v.clone(), wd)
        })
        .collect();
    let hyper = Hyper {
        beta1: opts.beta1,
        beta2: opts.beta2,
        eps: opts.eps,
    };
    FusedAdamW::new(with_decay, opts.learning_rate, hyper)
}

impl BertTrainer {
    /// Reads the checkpoint `base`, checks the inputs, tokenizes the data and initialises the
    /// head from `opts.seed`.
    pub fn new(
        base: &Path,
        config: &BertConfig,
        opts: &AdamWOptions,
        labels: &[String],
        train: &[(&str, usize)],
        validation: &[(&str, usize)],
    ) -> Result<Self, ModelError> {
        config.validate()?;
        opts.validate()?;
        training::check_data(labels, train, validation)?;
        let model = BertModel::from_checkpoint(base, config, labels, opts.seed)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| ModelError::Threads {
                threads: opts.threads,
                source: Box::new(e),
            })?;
        let (net, vars) = with_vars(model.net.clone(), config.freeze_layers)?;
        let optimizer = optimizer(&net, &vars, labels.len(), opts);
        let encode = |rows: &[(&str, usize)]| -> (Vec<Vec<u32>>, Vec<u32>) {
            pool.install(|| {
                use rayon::prelude::*;
                rows.par_iter()
                    .map(|(t, l)| (model.tokenizer.encode(t), *l as u32))
                    .unzip()
            })
        };
        let (train_ids, train_labels) = encode(train);
        let (val_ids, val_labels) = encode(validation);
        let schedule = Schedule::new(train_ids.len(), opts);
        Ok(Self {
            model: BertModel { net, ..model },
            opts: opts.clone(),
            train_ids,
            train_labels,
            val_ids,
            val_labels,
            vars,
            optimizer,
            schedule,
            epochs_done: 0,
            pool: Arc::new(pool),
        })
    }

    /// One epoch of mini-batches: forward with dropout, backward, an AdamW step at the
    /// schedule's rate with clipping folded in.
    fn epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochStats, ModelError> {
        let epoch = self.epochs_done + 1;
        let Self {
            model,
            opts,
            train_ids,
            train_labels,
            optimizer,
            schedule,
            ..
        } = self;
        let pad = model.net.cfg.pad_token_id;
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
                let batch = Batch::new(&seqs, pad).map_err(compute("batch"))?;
                let logits = model
                    .net
                    .forward(&batch, Some(Dropout { rng }))
                    .map_err(compute("forward"))?;
                let loss = Net::loss(&logits, &targets).map_err(compute("loss"))?;
                let grads = loss.backward().map_err(compute("backward"))?;
                let mut grad_scale = 1.0;
                if let Some(max) = opts.clip_norm {
                    let norm = optimizer.grad_norm(&grads).map_err(compute("clip"))?;
                    if norm > max && norm.is_finite() {
                        grad_scale = max / norm;
                    }
                }
                optimizer.set_learning_rate(schedule.next_rate());
                optimizer
                    .step(&grads, grad_scale)
                    .map_err(compute("optimizer step"))?;
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
    pub fn model(&self) -> BertModel {
        let mut m = self.model.clone();
        for (i, v) in &self.vars {
            if let Ok(t) = v.as_tensor().detach().copy() {
                m.net.tensors[*i] = t;
            }
        }
        m
    }

    /// Continues from a checkpoint: `model`'s weights (same base, config and labels) and
    /// `state`.
    pub fn restore_from(&mut self, model: &BertModel, state: &StepState) -> Result<(), ModelError> {
        let mismatch =
            |field: &str, expected: String, found: String| ModelError::CheckpointMismatch {
                field: field.into(),
                expected,
                found,
            };
        if model.config != self.model.config {
            return Err(mismatch(
                "params",
                format!("{:?}", self.model.config),
                format!("{:?}", model.config),
            ));
        }
        if model.labels != self.model.labels || model.net.cfg != self.model.net.cfg {
            return Err(mismatch(
                "labels and config.json",
                format!("{:?}", self.model.labels),
                format!("{:?}", model.labels),
            ));
        }
        if state.epochs_done > self.opts.epochs {
            return Err(mismatch(
                "epochs_done",
                format!("at most {}", self.opts.epochs),
                state.epochs_done.to_string(),
            ));
        }
        for (i, v) in &self.vars {
            v.set(&model.net.tensors[*i]).map_err(compute("restore"))?;
        }
        self.optimizer = optimizer(
            &self.model.net,
            &self.vars,
            self.model.labels.len(),
            &self.opts,
        );
        self.schedule.resume_at(state.step);
        self.epochs_done = state.epochs_done;
        Ok(())
    }
}

impl Trainable for BertTrainer {
    fn train_examples(&self) -> usize {
        self.train_ids.len()
    }

    /// Runs the epoch in the trainer's thread pool.
    fn train_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochStats, ModelError> {
        let pool = Arc::clone(&self.pool);
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
        let state: StepState = training::decode_state(state, "a bert AdamW state")?;
        let model = BertModel::load(dir)?;
        self.restore_from(&model, &state)
    }

    fn model(&self) -> Box<dyn TextClassifier> {
        Box::new(BertTrainer::model(self))
    }
}

/// The gradient of every tensor (by Hugging Face name) after one backward pass, without
/// dropout, on `texts` with the checkpoint `base`; `None` for tensors that got no gradient.
/// For tests that every trainable tensor is reached and frozen ones are not.
pub fn gradients_of_one_step(
    base: &Path,
    config: &BertConfig,
    labels: usize,
    texts: &[(&str, usize)],
    seed: u64,
) -> Result<Vec<(String, Option<Tensor>)>, ModelError> {
    let label_names: Vec<String> = (0..labels).map(|i| i.to_string()).collect();
    let model = BertModel::from_checkpoint(base, config, &label_names, seed)?;
    let spec = names(&model.net.cfg, model.net.pooling, labels);
    let net = model.net.clone();
    let (net, _vars) = with_vars(net, config.freeze_layers)?;
    let ids = texts
        .iter()
        .map(|(t, _)| model.token_ids(t))
        .collect::<Result<Vec<_>, _>>()?;
    let seqs: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
    let targets: Vec<u32> = texts.iter().map(|(_, l)| *l as u32).collect();
    let batch = Batch::new(&seqs, net.cfg.pad_token_id).map_err(compute("batch"))?;
    let logits = net.forward(&batch, None).map_err(compute("forward"))?;
    let loss = Net::loss(&logits, &targets).map_err(compute("loss"))?;
    let grads = loss.backward().map_err(compute("backward"))?;
    Ok(spec
        .into_iter()
        .zip(&net.tensors)
        .map(|((name, _), t)| (name, grads.get(t).cloned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decay_excludes_biases_and_layer_norms() {
        assert!(no_decay("encoder.layer.0.attention.self.query.bias"));
        assert!(no_decay("embeddings.LayerNorm.weight"));
        assert!(no_decay("transformer.layer.1.sa_layer_norm.weight"));
        assert!(!no_decay("encoder.layer.0.attention.self.query.weight"));
        assert!(!no_decay("classifier.weight"));
    }
}
