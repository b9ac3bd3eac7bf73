//! Training a `linear` model as linear SVMs (the default `solver: svm`): one-vs-rest, squared
//! hinge loss, L2 regularisation with an intercept, solved to convergence by dual coordinate
//! descent with shrinking (Hsieh, Chang, Lin, Keerthi, Sundararajan 2008, "A Dual Coordinate
//! Descent Method for Large-scale Linear SVM": the solver LIBLINEAR runs for scikit-learn's
//! `LinearSVC`).
//!
//! A run: (1) featurize with the training texts' rows; fit every label's SVM for each `c` of
//! [`C_GRID`] (or the configured one) and keep the `c` whose validation macro-F1 (then accuracy) is
//! best (among ties, the one nearest 1); then, unless `class_weight` is configured, fit once more
//! at that `c` with balanced class weights ([`ClassWeight::Balanced`]) and keep them when they
//! raise validation macro-F1 without lowering accuracy; fit the temperature that turns the
//! decision values into calibrated probabilities (softmax of `temperature x score`, by least
//! validation log loss); (2) featurize again with the rows of training and validation texts
//! together and refit on all of them with that `c`, weighting and temperature, so the model sees
//! every labelled text, as the peers do. The validation metrics reported are those of step 1's
//! model, which never saw the validation texts. Without validation data `c` is 1, the texts are
//! unweighted (or as configured) and the temperature is fitted on the training texts (and so is
//! overconfident). (3) For the monitor's reference profile, once the model is trained, refit
//! [`FOLDS`] more times, each without one fold of the texts (loose tolerance, warm-started from
//! step 2), so every labelled text is scored once by a model that never saw it, with the vocabulary
//! the other texts give (see `cross_fit`): the profile then describes what the served model does on
//! new text (see [`training::HeldOut`]).
//!
//! The model keeps the `linear` format: `dim` is the number of labels, `input` row `r` holds
//! feature `r`'s weight in each label's SVM, the intercept is the row of [`super::BIAS_KEY`],
//! and `output` is the temperature times the identity. For two labels one SVM is solved and
//! its negation is the other label's.
//!
//! Written here rather than bound from LIBLINEAR (C) or taken from linfa (kernel SMO, dense):
//! the default model is taxon's core, the data are the linear model's sparse feature rows, and
//! the labels' problems run in parallel on the run's threads.

use rayon::prelude::*;
use std::path::Path;

use serde::{Deserialize, Serialize};
use taxon_core::model::{ModelError, TextClassifier};

use super::train::{Docs, Featurized, featurize};
use super::{BIAS_KEY, ClassWeight, LinearConfig, LinearModel, softmax};
use crate::rng::SplitMix64;
use crate::training::{
    self, Checkpoint, EpochStats, HeldOut, TrainObserver, Trainable, Validation,
};

/// The values of `c` tried on the validation split when `c` is not configured (ascending: each
/// fit starts from the previous one's solution, and the search stops at the first worse one; on a
/// tie the value nearer [`DEFAULT_C`] is kept).
pub const C_GRID: [f32; 4] = [0.1, 0.3, 1.0, 3.0];
/// `c` without validation data, and the one a tie on validation leans to (scikit-learn's default).
const DEFAULT_C: f32 = 1.0;
/// Stopping tolerance on the projected gradient's spread. scikit-learn passes `tol=1e-4` and
/// LIBLINEAR's own default is 0.1; 1e-2 gave the same test predictions as 1e-3 on every corpus
/// of bench/linear.sh in a quarter less time.
const TOLERANCE: f64 = 1e-2;
/// The looser tolerance of the fits that only choose `c` and the temperature (LIBLINEAR's
/// default): the model kept is refitted at [`TOLERANCE`].
const SEARCH_TOLERANCE: f64 = 0.1;
/// Passes over the data at most per problem (scikit-learn's `max_iter`).
const MAX_PASSES: usize = 1000;
/// The log-loss floor of validation scoring.
const MIN_PROB: f32 = 1e-10;
/// Folds of step 3 (the reference profile's cross-fitted models; the held-out temperature's
/// folds without validation data).
pub const FOLDS: usize = 5;

/// What a checkpoint of an SVM run records besides the model: the choices the fit made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SvmState {
    /// The `c` of the model.
    pub c: f32,
    pub temperature: f32,
    /// The class weighting of the model (checkpoints before it was chosen: unweighted).
    #[serde(default)]
    pub class_weight: ClassWeight,
}

/// A linear model trained as SVMs ([module docs](self)): one epoch does the whole fit.
pub struct SvmTrainer {
    config: LinearConfig,
    labels: Vec<String>,
    /// The run's threads, for the labels' problems.
    pool: rayon::ThreadPool,
    seed: u64,
    /// The data over the training texts' rows (step 1).
    first: Option<Featurized>,
    /// Training and validation texts over their rows (step 2; none without validation data).
    second: Option<Featurized>,
    train_examples: usize,
    /// The fitted model, once trained or restored.
    model: Option<LinearModel>,
    state: Option<SvmState>,
    /// Validation scores of the model fitted without the validation texts.
    validation_scores: Option<Validation>,
    /// What step 3 starts from (none after a restore): it runs when the profile asks for
    /// it ([`Trainable::held_out`]), after the model is trained and saved.
    refit: Option<Refit>,
}

/// Step 2's data and solution, for step 3.
struct Refit {
    featurized: Featurized,
    alphas: Vec<Vec<f64>>,
    c: f32,
    class_weight: ClassWeight,
    temperature: f32,
}

impl SvmTrainer {
    /// Checks the config and data; the fitting happens in the (only) epoch.
    pub fn new(
        config: &LinearConfig,
        threads: usize,
        seed: u64,
        labels: &[String],
        train: &[(&str, usize)],
        validation: &[(&str, usize)],
    ) -> Result<Self, ModelError> {
        config.validate()?;
        training::check_data(labels, train, validation)?;
        if threads == 0 || threads > 1024 {
            return Err(ModelError::InvalidConfig {
                field: "threads".into(),
                message: format!("must be in 1..=1024, got {threads}"),
            });
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| ModelError::Threads {
                threads,
                source: Box::new(e),
            })?;
        let first = featurize(config, train, validation)?;
        let second = if validation.is_empty() {
            None
        } else {
            let all: Vec<(&str, usize)> = train.iter().chain(validation).copied().collect();
            Some(featurize(config, &all, &[])?)
        };
        Ok(Self {
            config: config.clone(),
            labels: labels.to_vec(),
            pool,
            seed,
            first: Some(first),
            second,
            train_examples: train.len(),
            model: None,
            state: None,
            validation_scores: None,
            refit: None,
        })
    }

    /// Runs both steps of the [module docs](self); returns the training log loss and tokens.
    fn fit(&mut self) -> Result<(f64, u64), ModelError> {
        let k = self.labels.len();
        let (Some(first), second) = (self.first.take(), self.second.take()) else {
            return Err(ModelError::NoExamples);
        };
        let tokens = first.docs.tokens.iter().sum();
        let has_validation = first.val.len() > 0;
        // Step 1: choose c (and the temperature) on the validation split.
        let grid: Vec<f32> = match self.config.c {
            Some(c) => vec![c],
            None if !has_validation => vec![DEFAULT_C],
            None => C_GRID.to_vec(),
        };
        // Unset, the class weighting is first none (LinearSVC's), then balanced is tried at the
        // chosen c (below).
        let class_weight = self.config.class_weight.unwrap_or_default();
        let rows = first.keys.len();
        let validation_score = |svms: &Svms| {
            if has_validation {
                let predicted: Vec<usize> = svms
                    .scores(&first.val)
                    .iter()
                    .map(|s| training::scores::argmax(s))
                    .collect();
                macro_f1_accuracy(&predicted, &first.val.labels, k)
            } else {
                (0.0, 0.0)
            }
        };
        let mut best: Option<(f32, (f64, f64), Svms)> = None;
        // Each c starts from the previous one's dual solution (the grid ascends), which takes
        // far fewer passes than starting from zero; the search stops at the first c that scores
        // worse than the best so far (larger ones cost the most passes and, past the best,
        // overfit more).
        let mut warm: Option<Vec<Vec<f64>>> = None;
        // Without validation data the one fit of step 1 is the model.
        let tolerance = if has_validation {
            SEARCH_TOLERANCE
        } else {
            TOLERANCE
        };
        for &c in &grid {
            let svms = Svms::fit(
                &first.docs,
                Problem {
                    rows,
                    labels: k,
                    c,
                    class_weight,
                    tolerance,
                },
                warm.take(),
                &self.pool,
                self.seed,
            );
            warm = Some(svms.alphas.clone());
            let score = validation_score(&svms);
            match &best {
                Some((_, b, _)) if score < *b => break,
                Some((best_c, b, _)) if !beats(c, score, *best_c, *b) => {}
                _ => best = Some((c, score, svms)),
            }
        }
        let Some((c, score, mut chosen)) = best else {
            return Err(ModelError::NoExamples);
        };
        // Balanced class weights at that c, from its solution (any dual variables >= 0 are a
        // feasible start): kept only when validation says they help.
        let mut class_weight = class_weight;
        if self.config.class_weight.is_none() && has_validation {
            let problem = Problem {
                rows,
                labels: k,
                c,
                class_weight: ClassWeight::Balanced,
                tolerance,
            };
            let balanced = Svms::fit(
                &first.docs,
                problem,
                Some(chosen.alphas.clone()),
                &self.pool,
                self.seed,
            );
            if balanced_wins(validation_score(&balanced), score) {
                (chosen, class_weight) = (balanced, ClassWeight::Balanced);
            }
        }
        let temperature = if has_validation {
            let scores = chosen.scores(&first.val);
            let temperature = fit_temperature(&scores, &first.val.labels);
            let probs: Vec<Vec<f32>> = scores
                .iter()
                .map(|s| probabilities(s, temperature))
                .collect();
            self.validation_scores =
                Some(training::scores::score(&probs, &first.val.labels, MIN_PROB));
            temperature
        } else {
            self.held_out_temperature(&first.docs, rows, (c, class_weight))?
        };
        // Step 2: refit on all labelled texts, warm-started from step 1's dual variables.
        let (featurized, svms) = match second {
            None => (first, chosen),
            Some(second) => {
                let mut warm = chosen.alphas;
                for a in &mut warm {
                    a.resize(second.docs.len(), 0.0);
                }
                let rows = second.keys.len();
                let problem = Problem {
                    rows,
                    labels: k,
                    c,
                    class_weight,
                    tolerance: TOLERANCE,
                };
                let svms = Svms::fit(&second.docs, problem, Some(warm), &self.pool, self.seed);
                (second, svms)
            }
        };
        let train_loss = svms
            .scores(&featurized.docs)
            .iter()
            .zip(&featurized.docs.labels)
            .map(|(s, &y)| -f64::from(probabilities(s, temperature)[y as usize].max(MIN_PROB)).ln())
            .sum::<f64>()
            / featurized.docs.len().max(1) as f64;
        self.model = Some(svms.to_model(&self.config, &self.labels, &featurized, temperature));
        self.state = Some(SvmState {
            c,
            temperature,
            class_weight,
        });
        self.refit = Some(Refit {
            featurized,
            alphas: svms.alphas,
            c,
            class_weight,
            temperature,
        });
        Ok((train_loss, tokens))
    }
}

impl SvmTrainer {
    /// Without validation data: the temperature fitted on every fifth training document's
    /// scores by SVMs fitted on the other four fifths (scores of documents a model was fitted
    /// on are overconfident). 1 when there are too few documents to hold any out.
    fn held_out_temperature(
        &self,
        docs: &Docs,
        rows: usize,
        (c, class_weight): (f32, ClassWeight),
    ) -> Result<f32, ModelError> {
        if docs.len() < 2 * FOLDS {
            return Ok(1.0);
        }
        let fitted = docs.subset(|i| i % FOLDS != 0);
        let held_out = docs.subset(|i| i % FOLDS == 0);
        let k = self.labels.len();
        let problem = Problem {
            rows,
            labels: k,
            c,
            class_weight,
            tolerance: SEARCH_TOLERANCE,
        };
        let svms = Svms::fit(&fitted, problem, None, &self.pool, self.seed);
        Ok(fit_temperature(&svms.scores(&held_out), &held_out.labels))
    }

    /// Step 3: model `f` of [`FOLDS`] refitted (at the search's loose tolerance, from step 2's
    /// dual variables) without the documents `i` with `i % FOLDS == f`. Its vocabulary is the
    /// leave-one-out one: the feature rows in at least `min_df + 1` documents, so a word of a
    /// held-out document is known exactly when the other documents alone would have kept it
    /// (a fold's own vocabulary, from a fifth fewer texts, would make new words look more
    /// frequent than the served model, fitted on all of them, will find them). The IDF stays
    /// that of all documents. Empty with fewer than `2 x FOLDS` documents.
    fn cross_fit(&self, refit: &Refit) -> Vec<LinearModel> {
        let Refit {
            featurized,
            alphas,
            c,
            class_weight,
            temperature,
        } = refit;
        let (c, class_weight, temperature) = (*c, *class_weight, *temperature);
        let docs = &featurized.docs;
        if docs.len() < 2 * FOLDS {
            return Vec::new();
        }
        let rows = featurized.keys.len();
        let problem = Problem {
            rows,
            labels: self.labels.len(),
            c,
            class_weight,
            tolerance: SEARCH_TOLERANCE,
        };
        // A document's rows are deduplicated: counting them counts documents.
        let mut df = vec![0u32; rows];
        for &r in &docs.rows {
            df[r as usize] += 1;
        }
        let min_df = self.config.min_df.max(1) as u32;
        let keep: Vec<bool> = df.iter().map(|&d| d > min_df).collect();
        (0..FOLDS)
            .map(|f| {
                let fitted = docs.subset(|i| i % FOLDS != f);
                let warm: Vec<Vec<f64>> = alphas
                    .iter()
                    .map(|a| {
                        a.iter()
                            .enumerate()
                            .filter(|(i, _)| i % FOLDS != f)
                            .map(|(_, &v)| v)
                            .collect()
                    })
                    .collect();
                let svms = Svms::fit(&fitted, problem, Some(warm), &self.pool, self.seed);
                svms.to_model(&self.config, &self.labels, featurized, temperature)
                    .retain_rows(&keep)
            })
            .collect()
    }
}

impl Trainable for SvmTrainer {
    fn train_examples(&self) -> usize {
        self.train_examples
    }

    fn train_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochStats, ModelError> {
        let (train_loss, tokens) = self.fit()?;
        observer.on_docs(self.train_examples as u64, train_loss as f32);
        Ok(EpochStats {
            train_loss,
            learning_rate: 0.0,
            tokens,
        })
    }

    fn validate(&mut self) -> Result<Option<Validation>, ModelError> {
        Ok(self.validation_scores.clone())
    }

    fn checkpoint(&self) -> Result<Checkpoint, ModelError> {
        Ok(Checkpoint {
            model: Trainable::model(self),
            state: training::encode_state(&self.state)?,
        })
    }

    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), ModelError> {
        let state: Option<SvmState> = training::decode_state(state, "a linear SVM state")?;
        let model = LinearModel::load(dir)?;
        if model.labels != self.labels {
            return Err(ModelError::CheckpointMismatch {
                field: "labels".into(),
                expected: format!("{:?} (the data's)", self.labels),
                found: format!("{:?}", model.labels),
            });
        }
        self.model = Some(model);
        self.state = state;
        Ok(())
    }

    /// Step 3's cross-fitted models: the kept one was refitted on every labelled text.
    fn held_out(&mut self) -> HeldOut {
        let Some(refit) = self.refit.take() else {
            return HeldOut::Final;
        };
        let folds = self.cross_fit(&refit);
        if folds.is_empty() {
            return HeldOut::Final;
        }
        HeldOut::Folds(
            folds
                .into_iter()
                .map(|m| Box::new(m) as Box<dyn TextClassifier>)
                .collect(),
        )
    }

    fn model(&self) -> Box<dyn TextClassifier> {
        match &self.model {
            Some(m) => Box::new(m.clone()),
            None => Box::new(untrained(&self.config, &self.labels)),
        }
    }
}

/// A model with no features (before the fit): every text gets uniform scores.
fn untrained(config: &LinearConfig, labels: &[String]) -> LinearModel {
    let k = labels.len();
    let mut index = super::features::KeyMap::default();
    index.insert(BIAS_KEY, 0);
    LinearModel {
        featurizer: config.featurizer(),
        config: LinearConfig {
            dim: k,
            ..config.clone()
        },
        labels: labels.to_vec(),
        keys: vec![BIAS_KEY],
        index,
        input: vec![0.0; k],
        output: identity(k, 1.0),
        idf: (config.weighting == super::Weighting::Idf).then(|| vec![1.0]),
        files: Vec::new(),
    }
}

fn identity(k: usize, scale: f32) -> Vec<f32> {
    let mut m = vec![0.0; k * k];
    for i in 0..k {
        m[i * k + i] = scale;
    }
    m
}

/// Calibrated probabilities of one text's decision values.
fn probabilities(scores: &[f32], temperature: f32) -> Vec<f32> {
    let mut p: Vec<f32> = scores.iter().map(|s| s * temperature).collect();
    softmax(&mut p);
    p
}

/// The temperature minimising the cross-entropy of `softmax(t x scores)` against `labels`
/// smoothed as Platt (1999) smooths his targets: the true label `1 - e` and the others `e`
/// shared, `e = 1 / (n + 2)` for `n` texts. Hard targets would make data the SVMs separate
/// ask for an infinite temperature, that is, certainty. A golden section search over `ln t` in
/// [ln 0.01, ln 100] (the loss is convex in `t`).
fn fit_temperature(scores: &[Vec<f32>], labels: &[u32]) -> f32 {
    let eps = 1.0 / (scores.len() as f64 + 2.0);
    let loss = |ln_t: f64| -> f64 {
        let t = ln_t.exp();
        scores
            .iter()
            .zip(labels)
            .map(|(s, &y)| {
                let k = s.len();
                let max = s
                    .iter()
                    .fold(f64::NEG_INFINITY, |m, &v| m.max(t * f64::from(v)));
                let log_sum = s
                    .iter()
                    .map(|&v| (t * f64::from(v) - max).exp())
                    .sum::<f64>()
                    .ln();
                s.iter()
                    .enumerate()
                    .map(|(j, &v)| {
                        let target = if j == y as usize {
                            1.0 - eps
                        } else {
                            eps / (k - 1).max(1) as f64
                        };
                        -target * (t * f64::from(v) - max - log_sum)
                    })
                    .sum::<f64>()
            })
            .sum()
    };
    let (mut a, mut b) = (0.01f64.ln(), 100f64.ln());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - g * (b - a), a + g * (b - a));
    let (mut fc, mut fd) = (loss(c), loss(d));
    for _ in 0..60 {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - g * (b - a);
            fc = loss(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + g * (b - a);
            fd = loss(d);
        }
    }
    (((a + b) / 2.0).exp()) as f32
}

/// Whether the fit at `c` scoring `score` (validation macro-F1, accuracy) replaces the best so far:
/// a better score does, and so does a tie when `c` is nearer [`DEFAULT_C`] (a validation split
/// that cannot tell two values apart keeps the default rather than the smallest; on the spam
/// corpus of bench/linear.sh c 0.3, 1 and 3 tie on 484 validation texts and 0.3 was the worst of
/// the three on the test texts).
fn beats(c: f32, score: (f64, f64), best_c: f32, best: (f64, f64)) -> bool {
    let distance = |c: f32| (c / DEFAULT_C).ln().abs();
    score > best || (score == best && distance(c) < distance(best_c))
}

/// Whether balanced class weights (validation macro-F1 and accuracy `balanced`) replace the
/// unweighted fit at the same `c` (`unweighted`): only with a better macro-F1 and no lower
/// accuracy. Weighting the rare labels up trades errors on the frequent ones for recall on the
/// rare ones; that is a gain only where it does not cost accuracy, the first measure of the
/// model (on the man pages of bench/linear.sh, balanced weights raise macro-F1 and lower
/// accuracy; on the small imbalanced drug reviews they raise both).
fn balanced_wins(balanced: (f64, f64), unweighted: (f64, f64)) -> bool {
    balanced.0 > unweighted.0 && balanced.1 >= unweighted.1
}

/// Macro-F1 and accuracy of predictions against labels (`k` labels; a label neither predicted
/// nor present counts as F1 1, so it does not pull the mean down).
fn macro_f1_accuracy(predicted: &[usize], truth: &[u32], k: usize) -> (f64, f64) {
    let (mut tp, mut fp, mut fneg) = (vec![0usize; k], vec![0usize; k], vec![0usize; k]);
    for (&p, &t) in predicted.iter().zip(truth) {
        let t = t as usize;
        if p == t {
            tp[t] += 1;
        } else {
            fp[p] += 1;
            fneg[t] += 1;
        }
    }
    let f1: f64 = (0..k)
        .map(|i| {
            let denom = 2 * tp[i] + fp[i] + fneg[i];
            if denom == 0 {
                1.0
            } else {
                2.0 * tp[i] as f64 / denom as f64
            }
        })
        .sum::<f64>()
        / k as f64;
    let right: usize = tp.iter().sum();
    (f1, right as f64 / truth.len().max(1) as f64)
}

/// What the SVMs of one fit solve: `rows` features, `labels` labels, the `c`, the class
/// weighting and the stopping tolerance.
#[derive(Clone, Copy)]
struct Problem {
    rows: usize,
    labels: usize,
    c: f32,
    class_weight: ClassWeight,
    tolerance: f64,
}

/// The `c` of the positive and of the negative texts of each problem of a fit (one problem for
/// two labels, whose positive label is 1; one per label otherwise), as LIBLINEAR weighs them:
/// unweighted, `c` for every text; balanced, label `l`'s weight `n / (labels x n_l)` over the
/// `n` texts multiplies `c` for the positive texts of label `l`'s problem (and, for two labels,
/// label 0's for the negative ones), so a label with few texts is not drowned by the others.
/// A label without texts keeps weight 1.
fn class_costs(labels: &[u32], k: usize, c: f32, class_weight: ClassWeight) -> Vec<(f32, f32)> {
    let weight: Vec<f32> = match class_weight {
        ClassWeight::None => vec![1.0; k],
        ClassWeight::Balanced => {
            let mut counts = vec![0usize; k];
            for &l in labels {
                counts[l as usize] += 1;
            }
            counts
                .iter()
                .map(|&n_l| {
                    if n_l == 0 {
                        1.0
                    } else {
                        (labels.len() as f64 / (k * n_l) as f64) as f32
                    }
                })
                .collect()
        }
    };
    if k == 2 {
        vec![(c * weight[1], c * weight[0])]
    } else {
        weight.iter().map(|&w| (c * w, c)).collect()
    }
}

/// One problem's dual variables and weights.
type Solved = (Vec<f64>, Vec<f32>);

/// The fitted SVMs of one `c`: a weight vector (features, then the intercept) and the dual
/// variables per problem (one problem for two labels, one per label otherwise).
struct Svms {
    labels: usize,
    weights: Vec<Vec<f32>>,
    alphas: Vec<Vec<f64>>,
}

impl Svms {
    /// Fits the problems of `docs` in parallel on `pool`; `warm` holds dual variables to start
    /// from (one vector per problem, one value per document).
    fn fit(
        docs: &Docs,
        problem: Problem,
        warm: Option<Vec<Vec<f64>>>,
        pool: &rayon::ThreadPool,
        seed: u64,
    ) -> Self {
        let Problem {
            rows,
            labels,
            c,
            class_weight,
            tolerance,
        } = problem;
        let problems = if labels == 2 { 1 } else { labels };
        let costs = class_costs(&docs.labels, labels, c, class_weight);
        let mut warm = warm.unwrap_or_default();
        warm.resize(problems, Vec::new());
        let positive = |p: usize| if labels == 2 { 1 } else { p as u32 };
        // One task per problem on the run's pool: rayon hands the next problem to whichever
        // thread is free, as the labels' problems differ in cost.
        let solved: Vec<Solved> = pool.install(|| {
            warm.into_par_iter()
                .enumerate()
                .map(|(p, mut alpha)| {
                    if alpha.len() != docs.len() {
                        alpha = vec![0.0; docs.len()];
                    }
                    let class = positive(p);
                    let w = solve(
                        docs,
                        rows,
                        |i| docs.labels[i] == class,
                        (costs[p], tolerance),
                        &mut alpha,
                        seed ^ p as u64,
                    );
                    (alpha, w)
                })
                .collect()
        });
        let (alphas, weights) = solved.into_iter().unzip();
        Self {
            labels,
            weights,
            alphas,
        }
    }

    /// Decision values of every document, one per label.
    fn scores(&self, docs: &Docs) -> Vec<Vec<f32>> {
        (0..docs.len())
            .map(|i| {
                let (rows, weights) = docs.doc(i);
                let values: Vec<f32> = self
                    .weights
                    .iter()
                    .map(|w| dot(w, rows, weights) as f32)
                    .collect();
                if self.labels == 2 {
                    vec![-values[0], values[0]]
                } else {
                    values
                }
            })
            .collect()
    }

    /// The `linear` model of these SVMs over `featurized`'s rows (see the module docs).
    fn to_model(
        &self,
        config: &LinearConfig,
        labels: &[String],
        featurized: &Featurized,
        temperature: f32,
    ) -> LinearModel {
        let featurizer = featurized.featurizer.clone();
        let mut index = featurized.index.clone();
        let mut keys = featurized.keys.clone();
        let mut idf = featurized.idf.clone();
        let k = labels.len();
        let rows = keys.len();
        // Row r of `input` is feature r's weight per label; row `rows` the intercepts.
        let mut input = vec![0f32; (rows + 1) * k];
        for (p, w) in self.weights.iter().enumerate() {
            let columns: &[(usize, f32)] = if self.labels == 2 {
                &[(0, -1.0), (1, 1.0)]
            } else {
                &[(p, 1.0)]
            };
            for &(label, sign) in columns {
                for (r, &v) in w.iter().enumerate() {
                    input[r * k + label] = sign * v;
                }
            }
        }
        index.insert(BIAS_KEY, rows as u32);
        keys.push(BIAS_KEY);
        if let Some(idf) = &mut idf {
            idf.push(1.0);
        }
        LinearModel {
            featurizer,
            config: LinearConfig {
                dim: k,
                ..config.clone()
            },
            labels: labels.to_vec(),
            keys,
            index,
            input,
            output: identity(k, temperature),
            idf,
            files: Vec::new(),
        }
    }
}

impl LinearModel {
    /// This model with only the feature rows `r` where `keep[r]` (and the intercept's row,
    /// which follows them): a text's other features become unknown to it.
    fn retain_rows(mut self, keep: &[bool]) -> LinearModel {
        let dim = self.config.dim;
        let mut keys = Vec::new();
        let mut input = Vec::new();
        let mut idf = self.idf.as_ref().map(|_| Vec::new());
        for (r, &key) in self.keys.iter().enumerate() {
            if !keep.get(r).copied().unwrap_or(key == BIAS_KEY) {
                continue;
            }
            keys.push(key);
            input.extend_from_slice(&self.input[r * dim..(r + 1) * dim]);
            if let (Some(out), Some(all)) = (&mut idf, &self.idf) {
                out.push(all[r]);
            }
        }
        self.index = keys
            .iter()
            .enumerate()
            .map(|(r, &k)| (k, r as u32))
            .collect();
        self.keys = keys;
        self.input = input;
        self.idf = idf;
        self
    }
}

/// `w . x + bias` for one document (the intercept is `w`'s last value).
fn dot(w: &[f32], rows: &[u32], weights: &[f32]) -> f64 {
    let bias = w[w.len() - 1];
    f64::from(
        rows.iter()
            .zip(weights)
            .map(|(&r, &x)| w[r as usize] * x)
            .sum::<f32>()
            + bias,
    )
}

/// Solves one problem by dual coordinate descent with shrinking (LIBLINEAR's L2-loss SVC
/// dual) to the given `c` of the positive and of the negative documents and stopping
/// tolerance, where `is_positive(i)` says document `i`'s sign; `alpha` holds the dual variables
/// to start from and ends with the solution. Returns the primal weights: `rows` features, then the
/// intercept (a feature of value 1 in every document, regularised as LIBLINEAR does).
fn solve(
    docs: &Docs,
    rows: usize,
    is_positive: impl Fn(usize) -> bool,
    ((c_positive, c_negative), tolerance): ((f32, f32), f64),
    alpha: &mut [f64],
    seed: u64,
) -> Vec<f32> {
    let n = docs.len();
    let y: Vec<f64> = (0..n)
        .map(|i| if is_positive(i) { 1.0 } else { -1.0 })
        .collect();
    // The squared hinge's dual adds alpha_i^2 / (4 c_i): the diagonal term 0.5 / c_i.
    let (diag_positive, diag_negative) = (0.5 / f64::from(c_positive), 0.5 / f64::from(c_negative));
    let diag: Vec<f64> = y
        .iter()
        .map(|&y| {
            if y > 0.0 {
                diag_positive
            } else {
                diag_negative
            }
        })
        .collect();
    // f32 weights: half the memory traffic of f64 over the sparse rows, with the same
    // predictions on our corpora; the dual variables and gradients stay f64.
    let mut w = vec![0f32; rows + 1];
    let bias = rows;
    let mut qd = vec![0f64; n];
    for i in 0..n {
        let (r, x) = docs.doc(i);
        qd[i] = diag[i] + 1.0 + x.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
        if alpha[i] != 0.0 {
            let d = (alpha[i] * y[i]) as f32;
            for (&r, &v) in r.iter().zip(x) {
                w[r as usize] += d * v;
            }
            w[bias] += d;
        }
    }
    let mut index: Vec<u32> = (0..n as u32).collect();
    let mut active = n;
    let mut pg_max_old = f64::INFINITY;
    let mut rng = SplitMix64::new(seed);
    for _ in 0..MAX_PASSES {
        let (mut pg_max, mut pg_min) = (f64::NEG_INFINITY, f64::INFINITY);
        rng.shuffle(&mut index[..active]);
        let mut s = 0;
        while s < active {
            let i = index[s] as usize;
            let (r, x) = docs.doc(i);
            let mut wx = w[bias];
            for (&r, &v) in r.iter().zip(x) {
                wx += w[r as usize] * v;
            }
            let g = y[i] * f64::from(wx) - 1.0 + alpha[i] * diag[i];
            let mut pg = g;
            if alpha[i] == 0.0 {
                if g > pg_max_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                }
                if g > 0.0 {
                    pg = 0.0;
                }
            }
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (old - g / qd[i]).max(0.0);
                let d = ((alpha[i] - old) * y[i]) as f32;
                for (&r, &v) in r.iter().zip(x) {
                    w[r as usize] += d * v;
                }
                w[bias] += d;
            }
            s += 1;
        }
        if pg_max - pg_min <= tolerance {
            if active == n {
                break;
            }
            active = n;
            pg_max_old = f64::INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f64::INFINITY } else { pg_max };
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Documents of `n` random sparse rows over `rows` features, labelled by the sign of a
    /// hidden linear rule, with some label noise.
    fn random_docs(n: usize, rows: u32, seed: u64) -> Docs {
        let mut rng = SplitMix64::new(seed);
        let rule: Vec<f32> = (0..rows).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
        let mut docs = Docs::default();
        docs.offsets.push(0);
        for _ in 0..n {
            let mut picked: Vec<u32> = (0..5).map(|_| rng.below(rows as usize) as u32).collect();
            picked.sort_unstable();
            picked.dedup();
            let mut score = 0.0;
            for &r in &picked {
                let x = rng.next_f32();
                docs.rows.push(r);
                docs.weights.push(x);
                score += rule[r as usize] * x;
            }
            docs.offsets.push(docs.rows.len());
            let flip = rng.below(10) == 0;
            docs.labels.push(u32::from((score > 0.0) != flip));
            docs.tokens.push(picked.len() as u64);
        }
        docs
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn the_solution_meets_the_optimality_conditions() {
        let docs = random_docs(300, 40, 1);
        let c = 0.5f32;
        let mut alpha = vec![0.0; docs.len()];
        let w = solve(
            &docs,
            40,
            |i| docs.labels[i] == 1,
            ((c, c), TOLERANCE),
            &mut alpha,
            3,
        );
        let diag = 0.5 / f64::from(c);
        // w is the primal of alpha: w = sum alpha_i y_i x_i (the intercept with x = 1).
        let mut primal = [0f64; 41];
        for i in 0..docs.len() {
            let y = if docs.labels[i] == 1 { 1.0 } else { -1.0 };
            let (r, x) = docs.doc(i);
            for (&r, &v) in r.iter().zip(x) {
                primal[r as usize] += alpha[i] * y * f64::from(v);
            }
            primal[40] += alpha[i] * y;
        }
        for (a, b) in w.iter().zip(&primal) {
            assert!((f64::from(*a) - b).abs() < 1e-3, "{a} vs {b}");
        }
        // KKT of the dual: the gradient is ~0 where alpha > 0 and >= ~0 where alpha = 0.
        let mut support = 0;
        for i in 0..docs.len() {
            let y = if docs.labels[i] == 1 { 1.0 } else { -1.0 };
            let (r, x) = docs.doc(i);
            let g = y * dot(&w, r, x) - 1.0 + alpha[i] * diag;
            if alpha[i] > 0.0 {
                support += 1;
                assert!(
                    g.abs() < 2.0 * TOLERANCE,
                    "doc {i}: alpha {} g {g}",
                    alpha[i]
                );
            } else {
                assert!(g > -2.0 * TOLERANCE, "doc {i}: g {g}");
            }
        }
        assert!(support > 10, "{support} support vectors");
    }

    #[test]
    fn a_warm_start_reaches_the_same_solution() {
        let docs = random_docs(200, 30, 2);
        let mut cold = vec![0.0; docs.len()];
        let w_cold = solve(
            &docs,
            30,
            |i| docs.labels[i] == 1,
            ((1.0, 1.0), TOLERANCE),
            &mut cold,
            5,
        );
        let mut warm = vec![0.0; docs.len()];
        solve(
            &docs,
            30,
            |i| docs.labels[i] == 1,
            ((0.3, 0.3), SEARCH_TOLERANCE),
            &mut warm,
            5,
        );
        let w_warm = solve(
            &docs,
            30,
            |i| docs.labels[i] == 1,
            ((1.0, 1.0), TOLERANCE),
            &mut warm,
            5,
        );
        for (a, b) in w_cold.iter().zip(&w_warm) {
            assert!((a - b).abs() < 0.05, "{a} vs {b}");
        }
    }

    #[test]
    fn the_fitted_temperature_minimises_the_log_loss() {
        let scores: Vec<Vec<f32>> = (0..200)
            .map(|i| {
                let s = (i % 7) as f32 / 3.0 - 1.0;
                vec![-s, s]
            })
            .collect();
        // Labels that agree with the score's sign four times in five: neither certain nor
        // random, so the best temperature is finite and positive.
        let labels: Vec<u32> = (0..200)
            .map(|i| u32::from(((i % 7) >= 3) != (i % 5 == 0)))
            .collect();
        let loss = |t: f32| -> f64 {
            scores
                .iter()
                .zip(&labels)
                .map(|(s, &y)| -f64::from(probabilities(s, t)[y as usize]).ln())
                .sum()
        };
        let t = fit_temperature(&scores, &labels);
        assert!(t > 0.01 && t < 100.0, "{t}");
        assert!(loss(t) <= loss(t * 1.2) && loss(t) <= loss(t / 1.2), "{t}");
    }

    #[test]
    fn a_tie_on_validation_keeps_the_c_nearest_the_default() {
        let tie = (0.99, 0.99);
        assert!(beats(1.0, tie, 0.3, tie));
        assert!(!beats(3.0, tie, 1.0, tie));
        assert!(beats(0.3, tie, 0.1, tie));
        assert!(beats(3.0, (0.995, 0.99), 1.0, tie));
        assert!(!beats(1.0, (0.98, 0.99), 0.3, tie));
    }

    #[test]
    fn balanced_weights_must_gain_macro_f1_without_losing_accuracy() {
        let unweighted = (0.40, 0.70);
        assert!(balanced_wins((0.45, 0.70), unweighted));
        assert!(balanced_wins((0.45, 0.72), unweighted));
        // More macro-F1 for less accuracy, or a tie: unweighted stays.
        assert!(!balanced_wins((0.60, 0.69), unweighted));
        assert!(!balanced_wins((0.40, 0.75), unweighted));
        assert!(!balanced_wins(unweighted, unweighted));
    }

    #[test]
    fn balanced_costs_weigh_every_label_alike() {
        // 6 texts of label 0, 3 of label 1, 1 of label 2: weights 10/18, 10/9, 10/3.
        let labels = [0, 0, 0, 0, 0, 0, 1, 1, 1, 2];
        let costs = class_costs(&labels, 3, 2.0, ClassWeight::Balanced);
        let expected = [2.0 * 10.0 / 18.0, 2.0 * 10.0 / 9.0, 2.0 * 10.0 / 3.0];
        for ((positive, negative), want) in costs.iter().zip(expected) {
            assert!((positive - want).abs() < 1e-6, "{positive} vs {want}");
            assert_eq!(*negative, 2.0);
        }
        // Each label's total weight is the same: n_l x weight_l = n / labels.
        // Two labels: one problem, label 1 positive, both sides weighted.
        let two = class_costs(&[0, 0, 0, 1], 2, 1.0, ClassWeight::Balanced);
        assert_eq!(two.len(), 1);
        assert!((two[0].0 - 2.0).abs() < 1e-6 && (two[0].1 - 4.0 / 6.0).abs() < 1e-6);
        // Unweighted: c everywhere; a label without texts keeps weight 1.
        assert_eq!(
            class_costs(&labels, 3, 0.5, ClassWeight::None),
            vec![(0.5, 0.5); 3]
        );
        let absent = class_costs(&[0, 0, 1, 1], 3, 1.0, ClassWeight::Balanced);
        assert_eq!(absent[2], (1.0, 1.0));
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn a_weighted_solution_meets_the_optimality_conditions() {
        // Positive and negative texts with their own c: each dual variable's diagonal term
        // is 0.5 / its own c.
        let docs = random_docs(300, 40, 4);
        let (cp, cn) = (2.0f32, 0.25f32);
        let mut alpha = vec![0.0; docs.len()];
        let w = solve(
            &docs,
            40,
            |i| docs.labels[i] == 1,
            ((cp, cn), TOLERANCE),
            &mut alpha,
            3,
        );
        for i in 0..docs.len() {
            let positive = docs.labels[i] == 1;
            let (y, diag) = if positive {
                (1.0, 0.5 / f64::from(cp))
            } else {
                (-1.0, 0.5 / f64::from(cn))
            };
            let (r, x) = docs.doc(i);
            let g = y * dot(&w, r, x) - 1.0 + alpha[i] * diag;
            if alpha[i] > 0.0 {
                assert!(
                    g.abs() < 2.0 * TOLERANCE,
                    "doc {i}: alpha {} g {g}",
                    alpha[i]
                );
            } else {
                assert!(g > -2.0 * TOLERANCE, "doc {i}: g {g}");
            }
        }
    }

    #[test]
    fn balanced_weights_let_a_rare_label_be_predicted() {
        // 200 texts: label 1 is 5% of them, marked by feature 0 (which label 0's texts also
        // carry, one in four) plus noise. Unweighted at a small c its SVM never fires over
        // label 0's; balanced, it recalls more of its texts.
        let mut rng = SplitMix64::new(7);
        let mut docs = Docs::default();
        docs.offsets.push(0);
        for i in 0..200 {
            let rare = i % 20 == 0;
            let mut picked = vec![1 + rng.below(30) as u32, 1 + rng.below(30) as u32];
            if rare || rng.below(4) == 0 {
                picked.push(0);
            }
            picked.sort_unstable();
            picked.dedup();
            let norm = (picked.len() as f32).sqrt();
            for &r in &picked {
                docs.rows.push(r);
                docs.weights.push(1.0 / norm);
            }
            docs.offsets.push(docs.rows.len());
            docs.labels.push(u32::from(rare));
            docs.tokens.push(picked.len() as u64);
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let recall = |class_weight| {
            let problem = Problem {
                rows: 31,
                labels: 2,
                c: 0.1,
                class_weight,
                tolerance: TOLERANCE,
            };
            let svms = Svms::fit(&docs, problem, None, &pool, 1);
            svms.scores(&docs)
                .iter()
                .zip(&docs.labels)
                .filter(|(s, y)| **y == 1 && s[1] > s[0])
                .count()
        };
        let (plain, balanced) = (recall(ClassWeight::None), recall(ClassWeight::Balanced));
        assert!(balanced > plain, "recall {plain} -> {balanced} of 10");
        assert!(balanced >= 8, "{balanced} of 10");
    }

    #[test]
    fn macro_f1_counts_every_label() {
        let (f1, acc) = macro_f1_accuracy(&[0, 0, 1, 2], &[0, 1, 1, 2], 3);
        assert!((acc - 0.75).abs() < 1e-12);
        // label 0: P 1/2 R 1 -> 2/3; label 1: P 1 R 1/2 -> 2/3; label 2: 1.
        assert!(
            (f1 - (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0).abs() < 1e-12,
            "{f1}"
        );
    }
}
