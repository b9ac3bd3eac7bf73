//! `lstm`: a bidirectional LSTM text classifier (Hochreiter & Schmidhuber 1997, "Long
//! Short-Term Memory", Neural Computation 9(8):1735-1780), trained from scratch with candle.
//!
//! A text becomes lower-cased words (runs of letters and digits), mapped to ids by a vocabulary
//! built from the training data ([`vocab`]) and truncated to `max_len`; embeddings feed a
//! one-layer BiLSTM; its states are pooled over the non-padding steps (mean or max), then
//! dropout, a linear head and a softmax give one probability per label ([`net`]). The
//! recurrence is one candle op with a hand-written backward pass ([`scan`]); training is AdamW
//! with linear warmup and decay and gradient clipping ([`train`]).
//!
//! On disk: `model.json` (the [`LstmConfig`] in `params`), `model.safetensors` (F32 tensors with
//! PyTorch's names, see [`net`]) and `vocab.txt` (one word per line, line N is id N-1).
//!
//! Threads: prediction and training run candle's CPU kernels, which split matrix products over
//! rayon's threads; `train` runs inside a rayon pool of `AdamWOptions::threads` threads, and
//! prediction uses the caller's rayon pool (the global one, sized by `RAYON_NUM_THREADS` or the
//! core count, unless the caller installs another).

mod io;
mod net;
mod scan;
mod train;
pub mod vocab;

use serde::{Deserialize, Serialize};
use taxon_core::model::{
    Encoded, InputLimits, MODEL_FORMAT_VERSION, ModelDescription, ModelError, ModelFile,
    TextClassifier,
};

pub use io::WEIGHTS;
pub use train::{LstmOptions, LstmTrainer, gradients_of_one_step, train};
pub use vocab::Vocab;

use net::{Batch, Net};

/// The `model_type` of this model.
pub const MODEL_TYPE: &str = "lstm";

/// How the BiLSTM's states are pooled into one vector per text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the non-padding steps.
    Mean,
    /// Element-wise maximum over the non-padding steps.
    Max,
}

/// The hyper-parameters of an lstm model (`model_config` in a training config, `params` in
/// `model.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LstmConfig {
    /// Width of the word embeddings.
    pub dim: usize,
    /// Hidden size of each LSTM direction (the pooled vector has `2 * hidden` values).
    pub hidden: usize,
    /// Pooling over time steps.
    pub pooling: Pooling,
    /// Dropout on the embeddings and on the pooled vector while training.
    pub dropout: f32,
    /// Words seen fewer times than this in training become `<unk>`.
    pub min_count: usize,
    /// Largest vocabulary, `<pad>` and `<unk>` included.
    pub max_vocab: usize,
    /// Words beyond this many per text are ignored.
    pub max_len: usize,
    /// Lower-case text before splitting it into words.
    pub lowercase: bool,
}

impl Default for LstmConfig {
    fn default() -> Self {
        Self {
            dim: 128,
            hidden: 128,
            pooling: Pooling::Mean,
            dropout: 0.3,
            min_count: 2,
            max_vocab: 50_000,
            max_len: 256,
            lowercase: true,
        }
    }
}

impl LstmConfig {
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
        if self.hidden == 0 || self.hidden > 4096 {
            return bad(
                "hidden",
                format!("must be in 1..=4096, got {}", self.hidden),
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad(
                "dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            );
        }
        if self.max_vocab < 3 || self.max_vocab > 10_000_000 {
            return bad(
                "max_vocab",
                format!("must be in 3..=10000000, got {}", self.max_vocab),
            );
        }
        if self.max_len == 0 || self.max_len > 100_000 {
            return bad(
                "max_len",
                format!("must be in 1..=100000, got {}", self.max_len),
            );
        }
        Ok(())
    }
}

/// A trained lstm model, ready to predict.
#[derive(Clone, Debug)]
pub struct LstmModel {
    pub(crate) config: LstmConfig,
    pub(crate) labels: Vec<String>,
    pub(crate) vocab: Vocab,
    pub(crate) net: Net,
    /// The files of the folder this model was loaded from (empty until saved or loaded).
    pub(crate) files: Vec<ModelFile>,
}

/// Texts scored per forward pass in `predict_batch`.
const PREDICT_BATCH: usize = 32;

impl LstmModel {
    pub fn config(&self) -> &LstmConfig {
        &self.config
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    /// Probabilities for pre-encoded texts, batched by similar length to cut padding; rows come
    /// back in input order.
    pub(crate) fn predict_ids<S: AsRef<[u32]>>(
        &self,
        seqs: &[S],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].as_ref().len());
        let mut out = vec![Vec::new(); seqs.len()];
        for chunk in order.chunks(PREDICT_BATCH) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].as_ref()).collect();
            let probs = self.net.probabilities(&Batch::new(&batch)?)?;
            for (&i, p) in chunk.iter().zip(probs) {
                out[i] = p;
            }
        }
        Ok(out)
    }
}

/// A text as an lstm model reads it ([`TextClassifier::encode`]): its word ids.
struct WordIds(Vec<u32>);

impl TextClassifier for LstmModel {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The ids of the words of `text`, up to `max_len`; its tokens are those words.
    fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
        let ids = self
            .vocab
            .encode(text, self.config.max_len, &mut String::new());
        Ok(Encoded::new(ids.len(), WordIds(ids)))
    }

    fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
        let seqs = inputs
            .iter()
            .map(|e| {
                e.input::<WordIds>(MODEL_TYPE)
                    .map(|WordIds(ids)| ids.as_slice())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.predict_ids(&seqs).map_err(|e| ModelError::Inference {
            model_type: MODEL_TYPE.into(),
            message: e.to_string(),
        })
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
                max_tokens: Some(self.config.max_len as u64),
                lowercase: self.config.lowercase,
            },
            files: self.files.clone(),
            created_by: format!("taxon {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
