//! Training a linear model: fastText's supervised SGD (softmax loss, learning rate decaying
//! linearly to zero over `epochs x tokens`), Hogwild-style over threads (Recht et al. 2011).
//!
//! Shared weights are `AtomicU32` holding `f32` bits, read and written with `Relaxed` ordering:
//! on x86-64 and AArch64 these compile to plain loads and stores, so this is exactly Hogwild's
//! racy update (a concurrent add may be lost, which SGD tolerates) without `unsafe` code, which
//! the workspace denies. The cost is that the compiler does not vectorise loops over atomics;
//! the per-row loops stay scalar, and the output layer and hidden vector are copied to plain
//! `f32` buffers. A per-thread-gradient scheme (private copies summed after each epoch) was the
//! alternative: it would be reproducible with any thread count, but its memory grows with
//! threads x rows x dim and averaging per epoch converges much more slowly than Hogwild on
//! sparse features, so Hogwild it is.
//!
//! Reproducibility: with `threads = 1` training is deterministic for a seed (same data, same
//! config, same machine give bit-identical weights). With more threads the interleaving of
//! updates, and so the weights, differ from run to run (as in fastText); metrics vary slightly.

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use serde::{Deserialize, Serialize};
use taxon_core::model::{ModelError, TextClassifier};

use super::features::{KeyMap, Scratch};
use super::{LinearConfig, LinearModel, Norm, Weighting, softmax};
use crate::rng::SplitMix64;
use crate::training::{
    self, Checkpoint, EpochReport, EpochStats, RunSettings, TrainObserver, Trainable, Validation,
};

/// A linear training run as configured: the model's hyper-parameters and the SGD's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearOptions {
    /// The model's hyper-parameters (recorded in `model.json` as `params`).
    pub model_config: LinearConfig,
    /// Initial learning rate; decays linearly to 0. Tuned on a validation split of BBC News'
    /// training part.
    pub learning_rate: f32,
    /// Passes over the training data.
    pub epochs: usize,
}

impl Default for LinearOptions {
    fn default() -> Self {
        Self {
            model_config: LinearConfig::default(),
            learning_rate: 1.0,
            epochs: 25,
        }
    }
}

impl LinearOptions {
    /// The SGD options of a run with these options.
    pub fn sgd(&self, run: RunSettings) -> SgdOptions {
        SgdOptions {
            learning_rate: self.learning_rate,
            epochs: self.epochs,
            seed: run.seed,
            threads: run.threads,
        }
    }
}

/// Options of the SGD run.
#[derive(Clone, Debug, PartialEq)]
pub struct SgdOptions {
    /// Initial learning rate; decays linearly to 0.
    pub learning_rate: f32,
    pub epochs: usize,
    pub seed: u64,
    /// Worker threads (1 = deterministic).
    pub threads: usize,
}

/// The fastText log-loss floor: a probability below it counts as it.
const MIN_PROB: f32 = 1e-10;

/// Documents as deduplicated feature rows with normalised weights (sum 1 per document).
#[derive(Default)]
struct Docs {
    rows: Vec<u32>,
    weights: Vec<f32>,
    offsets: Vec<usize>,
    labels: Vec<u32>,
    tokens: Vec<u64>,
}

impl Docs {
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn doc(&self, i: usize) -> (&[u32], &[f32]) {
        let (a, b) = (self.offsets[i], self.offsets[i + 1]);
        (&self.rows[a..b], &self.weights[a..b])
    }
}

/// Trains a linear model on `train` (text, label index into `labels`), reporting accuracy on
/// `validation` after each epoch when it is not empty. The one-call form of [`LinearTrainer`].
pub fn train(
    config: &LinearConfig,
    opts: &SgdOptions,
    labels: &[String],
    train: &[(&str, usize)],
    validation: &[(&str, usize)],
    observer: &dyn TrainObserver,
) -> Result<(LinearModel, Vec<EpochReport>), ModelError> {
    let mut trainer = LinearTrainer::new(config, opts, labels, train, validation)?;
    let reports = training::train_epochs(&mut trainer, opts.epochs, observer)?;
    Ok((trainer.into_model(), reports))
}

/// Where an SGD run stands at an epoch boundary, besides the weights: with the weights, all a
/// resumed run needs to continue exactly as an uninterrupted one would (with `threads = 1`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdState {
    /// Epochs finished.
    pub epochs_done: usize,
    /// Tokens processed so far: the position in the linearly decaying learning-rate schedule.
    pub tokens_done: u64,
    /// The shuffling generator's state after the last epoch's shuffle.
    pub rng_state: u64,
    /// The example order of the last epoch (each epoch shuffles the previous order).
    pub order: Vec<u32>,
}

/// A linear model in training, one epoch at a time: featurized data, the shared weights, and
/// the schedule, generator and order state that [`SgdState`] captures.
pub struct LinearTrainer {
    config: LinearConfig,
    opts: SgdOptions,
    labels: Vec<String>,
    featurizer: super::Featurizer,
    index: KeyMap,
    keys: Vec<u64>,
    idf: Option<Vec<f32>>,
    docs: Docs,
    val: Docs,
    input: Vec<AtomicU32>,
    output: Vec<AtomicU32>,
    total_tokens: u64,
    tokens_done: u64,
    rng: SplitMix64,
    order: Vec<u32>,
    epochs_done: usize,
}

impl LinearTrainer {
    /// Featurizes the data and initialises the weights (seeded).
    pub fn new(
        config: &LinearConfig,
        opts: &SgdOptions,
        labels: &[String],
        train: &[(&str, usize)],
        validation: &[(&str, usize)],
    ) -> Result<Self, ModelError> {
        config.validate()?;
        check_options(opts)?;
        training::check_data(labels, train, validation)?;

        // Featurize: assign a row to every feature key seen in training, in order of appearance.
        let featurizer = config.featurizer();
        let mut index = KeyMap::default();
        let mut keys: Vec<u64> = Vec::new();
        let mut scratch = Scratch::default();
        let mut docs = Docs::default();
        docs.offsets.push(0);
        let mut df: Vec<u32> = Vec::new();
        let mut counts: Vec<(u32, f32)> = Vec::new();
        let mut tmp: Vec<u32> = Vec::new();
        for &(text, label) in train {
            tmp.clear();
            let n = featurizer.features(text, &mut scratch, |k| {
                let next = keys.len() as u32;
                let row = *index.entry(k).or_insert_with(|| {
                    keys.push(k);
                    next
                });
                tmp.push(row);
            });
            dedup_counts(&mut tmp, &mut counts);
            df.resize(keys.len(), 0);
            for &(r, _) in &counts {
                df[r as usize] += 1;
            }
            push_doc(&mut docs, &counts, label, n);
        }
        if keys.is_empty() {
            return Err(ModelError::NoFeatures { texts: train.len() });
        }
        let rows = keys.len();
        let idf: Option<Vec<f32>> = match config.weighting {
            Weighting::None => None,
            Weighting::Idf => {
                let n = train.len() as f32;
                Some(
                    df.iter()
                        .map(|&d| ((1.0 + n) / (1.0 + d as f32)).ln() + 1.0)
                        .collect(),
                )
            }
        };
        if let Some(idf) = &idf {
            apply_idf(&mut docs, idf);
        }
        let mut val = Docs::default();
        val.offsets.push(0);
        for &(text, label) in validation {
            tmp.clear();
            let n = featurizer.features(text, &mut scratch, |k| {
                if let Some(&r) = index.get(&k) {
                    tmp.push(r);
                }
            });
            dedup_counts(&mut tmp, &mut counts);
            push_doc(&mut val, &counts, label, n);
        }
        if let Some(idf) = &idf {
            apply_idf(&mut val, idf);
        }
        normalise(&mut docs, config.norm);
        normalise(&mut val, config.norm);

        // Parameters: input uniform in [-1/dim, 1/dim] and output zero, as fastText.
        let dim = config.dim;
        let mut rng = SplitMix64::new(opts.seed);
        let bound = 1.0 / dim as f32;
        let input: Vec<AtomicU32> = (0..rows * dim)
            .map(|_| AtomicU32::new(((rng.next_f32() * 2.0 - 1.0) * bound).to_bits()))
            .collect();
        let output: Vec<AtomicU32> = (0..labels.len() * dim)
            .map(|_| AtomicU32::new(0f32.to_bits()))
            .collect();
        let total_tokens = (docs.tokens.iter().sum::<u64>() * opts.epochs as u64).max(1);
        let order: Vec<u32> = (0..docs.len() as u32).collect();
        Ok(Self {
            config: config.clone(),
            opts: opts.clone(),
            labels: labels.to_vec(),
            featurizer,
            index,
            keys,
            idf,
            docs,
            val,
            input,
            output,
            total_tokens,
            tokens_done: 0,
            rng,
            order,
            epochs_done: 0,
        })
    }

    fn shared(&self) -> Shared<'_> {
        Shared {
            input: &self.input,
            output: &self.output,
            dim: self.config.dim,
            n_labels: self.labels.len(),
            lr0: self.opts.learning_rate,
            tokens_done: AtomicU64::new(self.tokens_done),
            total_tokens: self.total_tokens,
        }
    }

    /// The schedule, generator and order state at this epoch boundary.
    pub fn state(&self) -> SgdState {
        SgdState {
            epochs_done: self.epochs_done,
            tokens_done: self.tokens_done,
            rng_state: self.rng.state(),
            order: self.order.clone(),
        }
    }

    /// A copy of the model as it stands (for checkpoints and the best epoch's weights).
    pub fn model(&self) -> LinearModel {
        let copy = |v: &[AtomicU32]| -> Vec<f32> {
            v.iter().map(|a| f32::from_bits(a.load(Relaxed))).collect()
        };
        LinearModel {
            featurizer: self.featurizer.clone(),
            config: self.config.clone(),
            labels: self.labels.clone(),
            keys: self.keys.clone(),
            index: self.index.clone(),
            input: copy(&self.input),
            output: copy(&self.output),
            idf: self.idf.clone(),
            files: Vec::new(),
        }
    }

    /// Continues from a checkpoint: `model`'s weights and `state`. The model must have been
    /// trained by this same configuration on the same data (same labels, config and feature
    /// rows); anything else is an error saying what differs.
    pub fn restore_from(
        &mut self,
        model: &LinearModel,
        state: &SgdState,
    ) -> Result<(), ModelError> {
        let mismatch = |field: &str, expected: String, found: String| {
            Err(ModelError::CheckpointMismatch {
                field: field.into(),
                expected,
                found,
            })
        };
        if model.labels != self.labels {
            return mismatch(
                "labels",
                format!("{:?} (the data's)", self.labels),
                format!("{:?}", model.labels),
            );
        }
        if model.config != self.config {
            return mismatch(
                "model_config",
                format!("{:?}", self.config),
                format!("{:?}", model.config),
            );
        }
        if model.keys != self.keys {
            return mismatch(
                "feature rows",
                format!(
                    "{} (from the data: the training data changed)",
                    self.keys.len()
                ),
                model.keys.len().to_string(),
            );
        }
        let mut sorted = state.order.clone();
        sorted.sort_unstable();
        if !sorted.iter().enumerate().all(|(i, &d)| d as usize == i)
            || sorted.len() != self.docs.len()
        {
            return mismatch(
                "example order",
                format!("a permutation of the {} training examples", self.docs.len()),
                format!("{} entries that are not", state.order.len()),
            );
        }
        if state.epochs_done > self.opts.epochs {
            return mismatch(
                "epochs_done",
                format!("at most the {} configured", self.opts.epochs),
                state.epochs_done.to_string(),
            );
        }
        for (a, &x) in self.input.iter().zip(&model.input) {
            a.store(x.to_bits(), Relaxed);
        }
        for (a, &x) in self.output.iter().zip(&model.output) {
            a.store(x.to_bits(), Relaxed);
        }
        self.tokens_done = state.tokens_done;
        self.rng = SplitMix64::new(state.rng_state);
        self.order = state.order.clone();
        self.epochs_done = state.epochs_done;
        Ok(())
    }

    /// The trained model.
    pub fn into_model(self) -> LinearModel {
        let to_f32 = |v: Vec<AtomicU32>| -> Vec<f32> {
            v.into_iter()
                .map(|a| f32::from_bits(a.into_inner()))
                .collect()
        };
        LinearModel {
            featurizer: self.featurizer,
            config: self.config,
            labels: self.labels,
            keys: self.keys,
            index: self.index,
            input: to_f32(self.input),
            output: to_f32(self.output),
            idf: self.idf,
            files: Vec::new(),
        }
    }
}

impl Trainable for LinearTrainer {
    fn train_examples(&self) -> usize {
        self.docs.len()
    }

    /// Shuffles the example order and runs SGD over every example, Hogwild over the threads.
    fn train_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochStats, ModelError> {
        self.rng.shuffle(&mut self.order);
        let threads = self.opts.threads.min(self.docs.len()).max(1);
        let shared = self.shared();
        let tokens_before = self.tokens_done;
        let (docs, order) = (&self.docs, &self.order);
        let chunk = order.len().div_ceil(threads).max(1);
        let loss_sum: f64 = if threads == 1 {
            shared.run(docs, order, observer)
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = order
                    .chunks(chunk)
                    .map(|part| {
                        let shared = &shared;
                        s.spawn(move || shared.run(docs, part, observer))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or(f64::NAN))
                    .sum()
            })
        };
        let tokens_done = shared.tokens_done.load(Relaxed);
        let learning_rate = f64::from(shared.lr());
        self.tokens_done = tokens_done;
        self.epochs_done += 1;
        Ok(EpochStats {
            train_loss: loss_sum / self.docs.len().max(1) as f64,
            learning_rate,
            tokens: tokens_done - tokens_before,
        })
    }

    fn validate(&mut self) -> Result<Option<Validation>, ModelError> {
        if self.val.len() == 0 {
            return Ok(None);
        }
        let probs = self.shared().probabilities(&self.val);
        Ok(Some(training::scores::score(
            &probs,
            &self.val.labels,
            MIN_PROB,
        )))
    }

    fn checkpoint(&self) -> Result<Checkpoint, ModelError> {
        Ok(Checkpoint {
            model: Box::new(LinearTrainer::model(self)),
            state: training::encode_state(&self.state())?,
        })
    }

    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), ModelError> {
        let state: SgdState = training::decode_state(state, "a linear SGD state")?;
        let model = LinearModel::load(dir)?;
        self.restore_from(&model, &state)
    }

    fn model(&self) -> Box<dyn TextClassifier> {
        Box::new(LinearTrainer::model(self))
    }
}

fn check_options(o: &SgdOptions) -> Result<(), ModelError> {
    let bad = |field: &str, message: String| {
        Err(ModelError::InvalidConfig {
            field: field.into(),
            message,
        })
    };
    if !(o.learning_rate.is_finite() && o.learning_rate > 0.0 && o.learning_rate <= 100.0) {
        return bad(
            "learning_rate",
            format!("must be in (0, 100], got {}", o.learning_rate),
        );
    }
    if o.epochs == 0 || o.epochs > 100_000 {
        return bad("epochs", format!("must be in 1..=100000, got {}", o.epochs));
    }
    if o.threads == 0 || o.threads > 1024 {
        return bad("threads", format!("must be in 1..=1024, got {}", o.threads));
    }
    Ok(())
}

/// Sorts `rows` and collapses repeats into (row, count).
pub(crate) fn dedup_counts(rows: &mut [u32], out: &mut Vec<(u32, f32)>) {
    out.clear();
    rows.sort_unstable();
    for &r in rows.iter() {
        match out.last_mut() {
            Some((last, c)) if *last == r => *c += 1.0,
            _ => out.push((r, 1.0)),
        }
    }
}

fn push_doc(docs: &mut Docs, counts: &[(u32, f32)], label: usize, tokens: usize) {
    for &(r, c) in counts {
        docs.rows.push(r);
        docs.weights.push(c);
    }
    docs.offsets.push(docs.rows.len());
    docs.labels.push(label as u32);
    docs.tokens.push(tokens as u64);
}

fn apply_idf(docs: &mut Docs, idf: &[f32]) {
    for (w, &r) in docs.weights.iter_mut().zip(&docs.rows) {
        *w *= idf[r as usize];
    }
}

fn normalise(docs: &mut Docs, norm: Norm) {
    for i in 0..docs.len() {
        let (a, b) = (docs.offsets[i], docs.offsets[i + 1]);
        let w = &mut docs.weights[a..b];
        let total = match norm {
            Norm::L1 => w.iter().sum::<f32>(),
            Norm::L2 => w.iter().map(|x| x * x).sum::<f32>().sqrt(),
        };
        if total > 0.0 {
            w.iter_mut().for_each(|x| *x /= total);
        }
    }
}

/// Normalises (row, weight) pairs in place, as training does.
pub(crate) fn normalise_weights(pairs: &mut [(u32, f32)], norm: Norm) {
    let total = match norm {
        Norm::L1 => pairs.iter().map(|p| p.1).sum::<f32>(),
        Norm::L2 => pairs.iter().map(|p| p.1 * p.1).sum::<f32>().sqrt(),
    };
    if total > 0.0 {
        pairs.iter_mut().for_each(|p| p.1 /= total);
    }
}

/// State shared by the Hogwild workers.
struct Shared<'a> {
    input: &'a [AtomicU32],
    output: &'a [AtomicU32],
    dim: usize,
    n_labels: usize,
    lr0: f32,
    tokens_done: AtomicU64,
    total_tokens: u64,
}

#[inline]
fn ld(a: &AtomicU32) -> f32 {
    f32::from_bits(a.load(Relaxed))
}

#[inline]
fn st(a: &AtomicU32, v: f32) {
    a.store(v.to_bits(), Relaxed)
}

/// How many examples a worker processes between progress reports.
const REPORT_EVERY: u64 = 32;

impl Shared<'_> {
    fn lr(&self) -> f32 {
        let progress = self.tokens_done.load(Relaxed) as f64 / self.total_tokens as f64;
        self.lr0 * (1.0 - progress).max(0.0) as f32
    }

    /// Hidden vector of a document into `hidden`.
    fn hidden(&self, rows: &[u32], weights: &[f32], hidden: &mut [f32]) {
        hidden.iter_mut().for_each(|h| *h = 0.0);
        for (&r, &w) in rows.iter().zip(weights) {
            let base = r as usize * self.dim;
            for (h, a) in hidden.iter_mut().zip(&self.input[base..base + self.dim]) {
                *h += w * ld(a);
            }
        }
    }

    /// Output layer copied to plain floats, then logits into probabilities.
    fn probs(&self, hidden: &[f32], out_local: &mut [f32], probs: &mut [f32]) {
        for (o, a) in out_local.iter_mut().zip(self.output) {
            *o = ld(a);
        }
        for (p, w) in probs.iter_mut().zip(out_local.chunks_exact(self.dim)) {
            *p = w.iter().zip(hidden).map(|(a, b)| a * b).sum();
        }
        softmax(probs);
    }

    /// Runs SGD over the documents `order`; returns the summed loss.
    fn run(&self, docs: &Docs, order: &[u32], observer: &dyn TrainObserver) -> f64 {
        let dim = self.dim;
        let mut hidden = vec![0f32; dim];
        let mut grad = vec![0f32; dim];
        let mut out_local = vec![0f32; self.n_labels * dim];
        let mut probs = vec![0f32; self.n_labels];
        let mut loss_sum = 0f64;
        let (mut pending, mut pending_loss) = (0u64, 0f64);
        for &d in order {
            let d = d as usize;
            let lr = self.lr();
            let (rows, weights) = docs.doc(d);
            let y = docs.labels[d] as usize;
            self.hidden(rows, weights, &mut hidden);
            self.probs(&hidden, &mut out_local, &mut probs);
            let loss = -f64::from(probs[y].max(1e-10)).ln();
            grad.iter_mut().for_each(|g| *g = 0.0);
            for (k, &p) in probs.iter().enumerate() {
                let alpha = lr * (if k == y { 1.0 } else { 0.0 } - p);
                let w = &out_local[k * dim..(k + 1) * dim];
                for (g, o) in grad.iter_mut().zip(w) {
                    *g += alpha * o;
                }
                for ((a, o), h) in self.output[k * dim..(k + 1) * dim]
                    .iter()
                    .zip(w)
                    .zip(&hidden)
                {
                    st(a, o + alpha * h);
                }
            }
            for (&r, &w) in rows.iter().zip(weights) {
                let base = r as usize * dim;
                for (a, g) in self.input[base..base + dim].iter().zip(&grad) {
                    st(a, ld(a) + w * g);
                }
            }
            self.tokens_done.fetch_add(docs.tokens[d], Relaxed);
            loss_sum += loss;
            pending += 1;
            pending_loss += loss;
            if pending == REPORT_EVERY {
                observer.on_docs(pending, (pending_loss / pending as f64) as f32);
                (pending, pending_loss) = (0, 0.0);
            }
        }
        if pending > 0 {
            observer.on_docs(pending, (pending_loss / pending as f64) as f32);
        }
        loss_sum
    }

    /// The probabilities of every document of `docs`, in order.
    fn probabilities(&self, docs: &Docs) -> Vec<Vec<f32>> {
        let mut hidden = vec![0f32; self.dim];
        let mut out_local = vec![0f32; self.n_labels * self.dim];
        let mut probs = vec![0f32; self.n_labels];
        (0..docs.len())
            .map(|d| {
                let (rows, weights) = docs.doc(d);
                self.hidden(rows, weights, &mut hidden);
                self.probs(&hidden, &mut out_local, &mut probs);
                probs.clone()
            })
            .collect()
    }
}
