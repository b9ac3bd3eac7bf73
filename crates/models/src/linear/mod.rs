//! `linear`: a linear model over bags of text features, the default model type.
//!
//! A text becomes a bag of features (lower-cased words, hashed word n-grams, optional hashed
//! character n-grams; see [`features`]), weighted by `tf` (raw or sublinear counts), inverse
//! document frequency and a per-text norm. Two solvers learn the weights:
//! - `svm` (the default): one linear SVM per label on those TF-IDF vectors, solved to
//!   convergence, `c` picked on the validation split and the scores calibrated into
//!   probabilities ([`svm`]): TF-IDF + LinearSVC's model, with a row per feature and label.
//! - `sgd`: the fastText supervised classifier (Joulin, Grave, Bojanowski, Mikolov, 2016, "Bag
//!   of Tricks for Efficient Text Classification", arXiv:1607.01759): `dim`-wide feature
//!   embeddings averaged into a hidden vector, a linear layer and a softmax, trained by SGD on
//!   the log loss with a linearly decaying learning rate, Hogwild-style over threads
//!   ([`train`]).
//!
//! Both predict the same way: hidden = sum of (weight x row of `input`), probabilities =
//! softmax(`output` x hidden); for `svm`, `dim` is the number of labels and `output` the
//! calibration temperature times the identity.
//!
//! On disk: `model.json` (hyper-parameters in `params`) and `model.safetensors` with `keys`
//! (U64, one feature key per row), `input` (F32, rows x dim), `output` (F32, labels x dim) and,
//! with IDF weighting, `idf` (F32, rows). Only features kept in training get a row (seen in at
//! least `min_df` training texts), so the file holds no untouched buckets; unseen features are
//! skipped at prediction.

pub mod features;
mod io;
mod svm;
mod train;

use serde::{Deserialize, Serialize};
use taxon_core::model::{
    Encoded, InputLimits, MODEL_FORMAT_VERSION, ModelDescription, ModelError, ModelFile,
    TextClassifier,
};

pub use features::Featurizer;
pub use svm::{SvmState, SvmTrainer};
pub use train::{LinearOptions, LinearTrainer, SgdOptions, SgdState, train};

use features::{KeyMap, Scratch};

/// The `model_type` of this model.
pub const MODEL_TYPE: &str = "linear";

/// The key of the intercept's row (an `svm` model's): a feature every text has, weight 1 after
/// normalisation. No word or n-gram key can equal it (n-gram keys are below `2^63 + 2^40`).
pub(crate) const BIAS_KEY: u64 = u64::MAX;

/// How feature embeddings are weighted in the average.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Weighting {
    /// Plain mean, as fastText.
    None,
    /// Each occurrence weighted by the feature's smoothed IDF, `ln((1+N)/(1+df)) + 1`.
    Idf,
}

/// How a feature's count in a text becomes its weight (before IDF and normalisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tf {
    /// The count itself (fastText).
    Raw,
    /// `1 + ln(count)`: a word repeated ten times weighs about three times one said once
    /// (scikit-learn's `sublinear_tf`).
    Sublinear,
}

/// How the weights are learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// A linear SVM per label (one-vs-rest, squared hinge loss, L2 regularisation) solved to
    /// convergence by dual coordinate descent; `c` chosen on the validation split; scores
    /// calibrated by a temperature ([`svm`]). `dim` is the number of labels.
    Svm,
    /// fastText: `dim`-wide feature embeddings averaged and a softmax layer, trained by
    /// Hogwild SGD for `epochs` passes ([`train`]).
    Sgd,
}

impl std::str::FromStr for Solver {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "svm" => Ok(Self::Svm),
            "sgd" => Ok(Self::Sgd),
            other => Err(format!("unknown solver {other:?} (known: svm, sgd)")),
        }
    }
}

/// How an `svm` weighs each label's texts in the SVMs' loss (`class_weight`; LIBLINEAR's and
/// scikit-learn's `class_weight`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClassWeight {
    /// Every text weighs the same: a label with few texts can be drowned by the others.
    #[default]
    None,
    /// A text of label `l` weighs `n / (labels x n_l)`, so every label weighs the same in
    /// total (scikit-learn's `class_weight="balanced"`). As in LIBLINEAR's one-vs-rest, the
    /// weight multiplies `c` for the positive texts of label `l`'s SVM (for two labels, both
    /// sides of the one SVM).
    Balanced,
}

/// How a text's feature weights are normalised before averaging embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Weights sum to 1: a weighted mean (fastText).
    L1,
    /// Weights have unit Euclidean norm, as a TF-IDF vector: long texts get a larger hidden
    /// vector than under L1.
    L2,
}

/// The hyper-parameters of a linear model (`model_config` in a training config, `params` in
/// `model.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LinearConfig {
    /// Width of the embeddings and hidden vector.
    pub dim: usize,
    /// Longest word n-gram (1 = words only).
    pub word_ngrams: usize,
    /// Shortest character n-gram (with `maxn`; 0 = none).
    pub minn: usize,
    /// Longest character n-gram (0 = no character n-grams).
    pub maxn: usize,
    /// Hash buckets shared by word and character n-grams.
    pub buckets: u64,
    /// Lower-case text before splitting it into words.
    pub lowercase: bool,
    /// Words beyond this many per text are ignored.
    pub max_tokens: Option<u64>,
    /// Weighting of features in the average.
    pub weighting: Weighting,
    /// Normalisation of the weights of one text.
    pub norm: Norm,
    /// Count to weight.
    pub tf: Tf,
    /// How the weights are learned.
    pub solver: Solver,
    /// Features seen in fewer training texts than this are dropped (1 keeps all).
    pub min_df: usize,
    /// `svm`: the inverse regularisation strength; unset, it is chosen on the validation
    /// split among `svm::C_GRID` (1 without validation data).
    pub c: Option<f32>,
    /// `svm`: how each label's texts are weighted; unset, balanced weights are tried at the
    /// `c` chosen on the validation split and kept when they raise its macro-F1 without
    /// lowering its accuracy (unweighted without validation data).
    pub class_weight: Option<ClassWeight>,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self {
            dim: 100,
            word_ngrams: 2,
            minn: 0,
            maxn: 0,
            buckets: 2_000_000,
            lowercase: true,
            max_tokens: None,
            weighting: Weighting::Idf,
            norm: Norm::L2,
            tf: Tf::Sublinear,
            solver: Solver::Svm,
            min_df: 2,
            c: None,
            class_weight: None,
        }
    }
}

impl LinearConfig {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &str, message: String| {
            Err(ModelError::InvalidConfig {
                field: field.into(),
                message,
            })
        };
        if self.dim == 0 || self.dim > 4096 {
            return bad("dim", format!("must be in 1..=4096, got {}", self.dim));
        }
        if self.word_ngrams == 0 || self.word_ngrams > 8 {
            return bad(
                "word_ngrams",
                format!("must be in 1..=8, got {}", self.word_ngrams),
            );
        }
        if self.buckets == 0 || self.buckets > (1 << 40) {
            return bad(
                "buckets",
                format!("must be in 1..=2^40, got {}", self.buckets),
            );
        }
        if self.maxn > 0 && (self.minn == 0 || self.minn > self.maxn) {
            return bad(
                "minn",
                format!(
                    "must be in 1..=maxn ({}) when maxn > 0, got {}",
                    self.maxn, self.minn
                ),
            );
        }
        if self.max_tokens == Some(0) {
            return bad("max_tokens", "must be at least 1".into());
        }
        if self.min_df == 0 || self.min_df > 1_000_000 {
            return bad(
                "min_df",
                format!("must be in 1..=1000000, got {}", self.min_df),
            );
        }
        if let Some(c) = self.c
            && !(c.is_finite() && c > 0.0 && c <= 1e6)
        {
            return bad("c", format!("must be in (0, 1e6], got {c}"));
        }
        Ok(())
    }

    pub(crate) fn featurizer(&self) -> Featurizer {
        Featurizer {
            word_ngrams: self.word_ngrams,
            minn: self.minn,
            maxn: self.maxn,
            buckets: self.buckets,
            lowercase: self.lowercase,
            max_tokens: self.max_tokens,
        }
    }
}

/// A trained linear model, ready to predict.
#[derive(Clone, Debug)]
pub struct LinearModel {
    pub(crate) config: LinearConfig,
    pub(crate) labels: Vec<String>,
    /// Feature key of each row, in row order.
    pub(crate) keys: Vec<u64>,
    pub(crate) index: KeyMap,
    /// rows x dim.
    pub(crate) input: Vec<f32>,
    /// labels x dim.
    pub(crate) output: Vec<f32>,
    /// Per-row weight (IDF weighting only).
    pub(crate) idf: Option<Vec<f32>>,
    pub(crate) featurizer: Featurizer,
    /// The files of the folder this model was loaded from (empty until saved or loaded).
    pub(crate) files: Vec<ModelFile>,
}

impl LinearModel {
    pub fn config(&self) -> &LinearConfig {
        &self.config
    }

    /// Number of feature rows (distinct features seen in training).
    pub fn rows(&self) -> usize {
        self.keys.len()
    }

    /// Fills `s.counts` with the weighted feature rows of `text` (deduplicated, IDF-weighted,
    /// normalised); returns the number of tokens (words) the model looked at.
    fn weighted_rows(&self, text: &str, s: &mut PredictScratch) -> usize {
        s.rows.clear();
        s.unknown_words = 0;
        let tokens = self.featurizer.features(text, &mut s.text, |key| {
            if let Some(&row) = self.index.get(&key) {
                s.rows.push(row);
            } else if features::is_word_key(key) {
                s.unknown_words += 1;
            }
        });
        train::dedup_counts(&mut s.rows, &mut s.counts);
        train::apply_tf(&mut s.counts, self.config.tf);
        if let Some(idf) = &self.idf {
            s.counts
                .iter_mut()
                .for_each(|(r, c)| *c *= idf[*r as usize]);
        }
        train::normalise_weights(&mut s.counts, self.config.norm);
        s.known = s.counts.len();
        // The intercept (an svm model's) only for a text the model can read: one with no known
        // feature gets uniform scores, as every model type answers such a text.
        if !s.counts.is_empty()
            && let Some(&bias) = self.index.get(&BIAS_KEY)
        {
            s.counts.push((bias, 1.0));
        }
        tokens
    }

    /// Probabilities of the weighted feature rows `counts` of one text into `out`.
    fn probabilities(&self, counts: &[(u32, f32)], hidden: &mut Vec<f32>, out: &mut Vec<f32>) {
        let dim = self.config.dim;
        hidden.clear();
        hidden.resize(dim, 0.0);
        for &(row, w) in counts {
            let row = row as usize;
            let v = &self.input[row * dim..(row + 1) * dim];
            for (h, x) in hidden.iter_mut().zip(v) {
                *h += w * x;
            }
        }
        out.clear();
        out.extend(
            self.output
                .chunks_exact(dim)
                .map(|w| w.iter().zip(hidden.iter()).map(|(a, b)| a * b).sum::<f32>()),
        );
        softmax(out);
    }

    /// Probabilities for one text, with reusable buffers.
    fn predict_one(&self, text: &str, s: &mut PredictScratch, out: &mut Vec<f32>) {
        self.weighted_rows(text, s);
        self.probabilities(&s.counts, &mut s.hidden, out);
    }
}

/// A text as a linear model reads it ([`TextClassifier::encode`]): its weighted feature rows.
struct Features(Vec<(u32, f32)>);

thread_local! {
    /// Buffers of [`TextClassifier::encode`], reused by the texts one thread encodes.
    static ENCODE_SCRATCH: std::cell::RefCell<PredictScratch> =
        std::cell::RefCell::new(PredictScratch::default());
}

/// Buffers reused across the texts of a batch.
#[derive(Default)]
struct PredictScratch {
    text: Scratch,
    rows: Vec<u32>,
    counts: Vec<(u32, f32)>,
    hidden: Vec<f32>,
    /// Words of the last text that the model's index lacks.
    unknown_words: usize,
    /// Distinct features (words, n-grams) of the last text the model has rows for; the
    /// intercept's row (an svm model's) is not a feature of the text.
    known: usize,
}

/// In-place softmax, stable against large logits.
pub(crate) fn softmax(v: &mut [f32]) {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for x in v.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    if sum > 0.0 {
        v.iter_mut().for_each(|x| *x /= sum);
    }
}

impl TextClassifier for LinearModel {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The weighted feature rows of `text`; its tokens are its words, up to `max_tokens`.
    fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
        Ok(ENCODE_SCRATCH.with_borrow_mut(|s| {
            let tokens = self.weighted_rows(text, s);
            let unknown = if tokens == 0 {
                0.0
            } else {
                s.unknown_words as f32 / tokens as f32
            };
            Encoded::with_known(tokens, s.known, Features(s.counts.clone()))
                .with_unknown_share(unknown)
        }))
    }

    fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut hidden = Vec::with_capacity(self.config.dim);
        inputs
            .iter()
            .map(|e| {
                let Features(counts) = e.input::<Features>(MODEL_TYPE)?;
                let mut out = Vec::with_capacity(self.labels.len());
                self.probabilities(counts, &mut hidden, &mut out);
                Ok(out)
            })
            .collect()
    }

    /// Featurizes and scores text by text with one set of buffers (no per-text allocation
    /// but the answer).
    fn predict_batch(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mut s = PredictScratch::default();
        Ok(texts
            .iter()
            .map(|t| {
                let mut out = Vec::with_capacity(self.labels.len());
                self.predict_one(t, &mut s, &mut out);
                out
            })
            .collect())
    }

    fn save(&self, dir: &std::path::Path) -> Result<(), ModelError> {
        io::save(self, dir)
    }

    fn describe(&self) -> ModelDescription {
        ModelDescription {
            format_version: MODEL_FORMAT_VERSION,
            model_type: MODEL_TYPE.into(),
            labels: self.labels.clone(),
            params: serde_json::to_value(&self.config).unwrap_or(serde_json::Value::Null),
            input: InputLimits {
                max_tokens: self.config.max_tokens,
                lowercase: self.config.lowercase,
            },
            files: self.files.clone(),
            created_by: format!("taxon {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
