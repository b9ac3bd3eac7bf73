//! Fine-tuning a bert model: AdamW (Loshchilov & Hutter 2019) at a linearly warmed-up then
//! linearly decayed learning rate (10% warmup by default), weight decay on every tensor except
//! biases and LayerNorm parameters, updated in place by one fused pass per tensor ([`adamw`]),
//! gradient clipping by global norm (folded into that pass), seeded shuffling and length-bucketed mini-batches padded to their
//! longest text. `freeze_layers: k` keeps the embeddings and the first k encoder layers as plain
//! tensors, so they get no gradient and no update.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};
use taxon_core::model::ModelError;

use super::net::{Batch, Dropout, Net, PER_LAYER, embedding_count, names};
use super::{BertConfig, BertModel};
use crate::linear::{EpochReport, TrainObserver};
use crate::lstm::{AdamWOptions, learning_rate_at};
use crate::rng::SplitMix64;
use crate::scores::loss_and_accuracy;
use adamw::{FusedAdamW, Hyper};

mod adamw;

fn compute(context: &str) -> impl Fn(candle_core::Error) -> ModelError + '_ {
    move |e| ModelError::TrainingData {
        message: format!("bert {context}: {e}"),
    }
}

fn check_opts(opts: &AdamWOptions) -> Result<(), ModelError> {
    let bad = |field: &str, message: String| {
        Err(ModelError::InvalidConfig {
            field: field.into(),
            message,
        })
    };
    if !(opts.learning_rate > 0.0 && opts.learning_rate.is_finite()) {
        return bad(
            "learning_rate",
            format!("must be a positive number, got {}", opts.learning_rate),
        );
    }
    if !(opts.weight_decay >= 0.0 && opts.weight_decay.is_finite()) {
        return bad(
            "weight_decay",
            format!("must be >= 0, got {}", opts.weight_decay),
        );
    }
    if opts.epochs == 0 || opts.batch_size == 0 || opts.threads == 0 {
        return bad(
            "epochs, batch_size, threads",
            "must each be at least 1".into(),
        );
    }
    if let Some(c) = opts.clip_norm
        && !(c > 0.0 && c.is_finite())
    {
        return bad("clip_norm", format!("must be a positive number, got {c}"));
    }
    Ok(())
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
    let mut reports = Vec::with_capacity(opts.epochs);
    while trainer.epochs_done() < opts.epochs {
        reports.push(trainer.run_epoch(observer)?);
    }
    Ok((trainer.model(), reports))
}

/// Where a run stands at an epoch boundary, for checkpoints. Shuffling and dropout of epoch N
/// come from a generator seeded by (seed, N); AdamW's moments are not saved (not part of the
/// checkpoint), so a resumed run restarts them from zero.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BertState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Optimizer steps taken: the position in the learning-rate schedule.
    pub step: usize,
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
    total: usize,
    warmup: usize,
    step: usize,
    epochs_done: usize,
    val_pred: Vec<usize>,
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
        check_opts(opts)?;
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
        let model = BertModel::from_checkpoint(base, config, labels, opts.seed)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| ModelError::TrainingData {
                message: format!("cannot start {} threads: {e}", opts.threads),
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
        let total = train_ids.len().div_ceil(opts.batch_size) * opts.epochs;
        let warmup = opts.warmup_steps.unwrap_or(total / 10).min(total);
        Ok(Self {
            model: BertModel { net, ..model },
            opts: opts.clone(),
            train_ids,
            train_labels,
            val_ids,
            val_labels,
            vars,
            optimizer,
            total,
            warmup,
            step: 0,
            epochs_done: 0,
            val_pred: Vec::new(),
            pool: Arc::new(pool),
        })
    }

    /// Epochs finished so far (restored ones included).
    pub fn epochs_done(&self) -> usize {
        self.epochs_done
    }

    /// Arg-max label index of every validation example after the last epoch, in order.
    pub fn validation_predictions(&self) -> &[usize] {
        &self.val_pred
    }

    /// Runs one more epoch (in the trainer's thread pool) and reports it (also to `observer`).
    pub fn run_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochReport, ModelError> {
        let pool = Arc::clone(&self.pool);
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
        let pad = self.model.net.cfg.pad_token_id;
        for batch_idx in bucketed_batches(&self.train_ids, self.opts.batch_size, &mut rng) {
            let seqs: Vec<&[u32]> = batch_idx
                .iter()
                .map(|&i| self.train_ids[i].as_slice())
                .collect();
            let targets: Vec<u32> = batch_idx.iter().map(|&i| self.train_labels[i]).collect();
            let batch = Batch::new(&seqs, pad).map_err(compute("batch"))?;
            let logits = self
                .model
                .net
                .forward(&batch, Some(Dropout { rng: &mut rng }))
                .map_err(compute("forward"))?;
            let loss = Net::loss(&logits, &targets).map_err(compute("loss"))?;
            let grads = loss.backward().map_err(compute("backward"))?;
            let mut grad_scale = 1.0;
            if let Some(max) = self.opts.clip_norm {
                let norm = self.optimizer.grad_norm(&grads).map_err(compute("clip"))?;
                if norm > max && norm.is_finite() {
                    grad_scale = max / norm;
                }
            }
            let lr = learning_rate_at(self.step, self.total, self.warmup, self.opts.learning_rate);
            self.optimizer.set_learning_rate(lr);
            self.optimizer
                .step(&grads, grad_scale)
                .map_err(compute("optimizer step"))?;
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
            learning_rate: self.optimizer.learning_rate(),
            seconds,
            tokens_per_sec: tokens / seconds.max(1e-9),
        };
        observer.on_epoch(&report);
        Ok(report)
    }

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
    pub fn state(&self) -> BertState {
        BertState {
            epochs_done: self.epochs_done,
            step: self.step,
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
    pub fn restore(&mut self, model: &BertModel, state: &BertState) -> Result<(), ModelError> {
        let mismatch = |field: &str, expected: String, found: String| ModelError::Mismatch {
            path: Default::default(),
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
        self.step = state.step;
        self.epochs_done = state.epochs_done;
        self.validate()?;
        Ok(())
    }
}

/// One epoch's mini-batches: shuffle, cut into pools of 32 batches, sort each pool by length
/// and cut it into batches (similar lengths, little padding), then shuffle the batch order.
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

    #[test]
    fn buckets_cover_every_example_once() {
        let seqs: Vec<Vec<u32>> = (0..50).map(|i| vec![1; (i * 7) % 20 + 1]).collect();
        let batches = bucketed_batches(&seqs, 4, &mut SplitMix64::new(3));
        let mut all: Vec<usize> = batches.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..50).collect::<Vec<_>>());
        for b in &batches {
            assert!(b.windows(2).all(|w| seqs[w[0]].len() <= seqs[w[1]].len()));
        }
    }
}
