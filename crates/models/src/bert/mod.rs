//! `bert`: fine-tuning a BERT-family encoder from a local Hugging Face checkpoint (BERT, Devlin
//! et al. 2019; DistilBERT, Sanh et al. 2019) as a text classifier, with candle.
//!
//! A text is tokenized with the checkpoint's `tokenizer.json`, truncated on purpose (`head-tail`
//! by default, see [`tokenize`]), wrapped in `[CLS] ... [SEP]` and batched with padding to the
//! longest text of the batch; the encoder's last hidden states are pooled (`[CLS]` state or
//! masked mean), then dropout and a linear head give one logit per label ([`net`]). Training
//! fine-tunes every layer, or freezes the embeddings and the first `freeze_layers` layers
//! ([`train`]).
//!
//! On disk: see [`io`]. The folder is a Hugging Face folder plus `model.json` and the
//! `classifier.*` tensors.
//!
//! Threads: prediction runs candle's CPU kernels on the caller's rayon pool; training runs
//! inside a pool of `AdamWOptions::threads` threads.

mod config;
mod io;
mod net;
mod ops;
pub mod optimize;
mod quant;
mod random;
pub mod tokenize;
mod train;

use serde::{Deserialize, Serialize};
use taxon_core::model::{
    Encoded, InputLimits, MODEL_FORMAT_VERSION, ModelDescription, ModelError, ModelFile,
    TextClassifier,
};

pub use config::{Arch, CONFIG_JSON, EncoderConfig};
pub use io::WEIGHTS;
pub use optimize::{OptimizeOptions, OptimizeReport, Quantization};
pub use random::RandomCheckpoint;
pub use tokenize::{TOKENIZER_JSON, TextEncoder, Truncation};
pub use train::{BertOptions, BertTrainer, gradients_of_one_step, train};

use net::{Batch, Net};

/// The `model_type` of this model.
pub const MODEL_TYPE: &str = "bert";

/// How the encoder's last hidden states become one vector per text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Mean over the non-padding tokens (`[CLS]` and `[SEP]` included).
    #[default]
    Mean,
    /// The state of the `[CLS]` token.
    Cls,
    /// The `[CLS]` state through the checkpoint's pre-trained pooler (`pooler.dense`, then
    /// tanh), as `transformers`' `BertForSequenceClassification` does; the pooler is
    /// fine-tuned with the rest. BERT checkpoints only (DistilBERT has no pooler).
    Pooler,
}

impl std::str::FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mean" => Ok(Self::Mean),
            "cls" => Ok(Self::Cls),
            "pooler" => Ok(Self::Pooler),
            other => Err(format!(
                "unknown pooling {other:?} (known: mean, cls, pooler)"
            )),
        }
    }
}

/// The fine-tuning settings of a bert model (`model_config` in a training config, `params` in
/// `model.json`; the encoder's own shape is in `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BertConfig {
    /// The checkpoint folder the model was fine-tuned from, as given (for the record).
    pub base_model: String,
    /// How hidden states become one vector per text.
    pub pooling: Pooling,
    /// Tokens per text, `[CLS]` and `[SEP]` included.
    pub max_len: usize,
    /// Which tokens of longer texts are kept.
    pub truncation: Truncation,
    /// The embeddings and the first this many encoder layers are not trained.
    pub freeze_layers: usize,
    /// How the encoder's dense layers are stored (`int8` after `taxon model optimize --int8`).
    #[serde(skip_serializing_if = "Quantization::is_none")]
    pub quantization: Quantization,
    /// Fraction of the encoder's dense weights zeroed by global magnitude pruning
    /// (`taxon model optimize --prune`); 0 when not pruned.
    #[serde(skip_serializing_if = "is_zero")]
    pub pruned: f64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

impl Default for BertConfig {
    fn default() -> Self {
        Self {
            base_model: String::new(),
            pooling: Pooling::Mean,
            max_len: 128,
            truncation: Truncation::HeadTail,
            freeze_layers: 0,
            quantization: Quantization::None,
            pruned: 0.0,
        }
    }
}

impl BertConfig {
    /// Checks ranges; the error names the field.
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(3..=100_000).contains(&self.max_len) {
            return Err(ModelError::InvalidConfig {
                field: "max_len".into(),
                message: format!("must be in 3..=100000, got {}", self.max_len),
            });
        }
        if !(0.0..1.0).contains(&self.pruned) {
            return Err(ModelError::InvalidConfig {
                field: "pruned".into(),
                message: format!("must be a fraction in [0, 1), got {}", self.pruned),
            });
        }
        Ok(())
    }

    /// Checks the settings that depend on the encoder.
    pub fn validate_for(&self, enc: &EncoderConfig) -> Result<(), ModelError> {
        self.validate()?;
        if self.max_len > enc.max_positions {
            return Err(ModelError::InvalidConfig {
                field: "max_len".into(),
                message: format!(
                    "{} exceeds the encoder's max_position_embeddings {}",
                    self.max_len, enc.max_positions
                ),
            });
        }
        if self.pooling == Pooling::Pooler && enc.arch != Arch::Bert {
            return Err(ModelError::InvalidConfig {
                field: "pooling".into(),
                message: "pooler needs a BERT checkpoint's `pooler.dense`; DistilBERT has no \
                          pooler: use mean or cls"
                    .into(),
            });
        }
        if self.freeze_layers > enc.layers {
            return Err(ModelError::InvalidConfig {
                field: "freeze_layers".into(),
                message: format!(
                    "{} exceeds the encoder's {} layers",
                    self.freeze_layers, enc.layers
                ),
            });
        }
        Ok(())
    }
}

/// A fine-tuned bert model, ready to predict.
#[derive(Clone, Debug)]
pub struct BertModel {
    pub(crate) config: BertConfig,
    pub(crate) labels: Vec<String>,
    pub(crate) net: Net,
    pub(crate) tokenizer: TextEncoder,
    pub(crate) tokenizer_bytes: Vec<u8>,
    pub(crate) config_text: String,
    /// The files of the folder this model was loaded from (empty until saved or loaded).
    pub(crate) files: Vec<ModelFile>,
}

/// Texts scored per forward pass in `predict_batch`.
const PREDICT_BATCH: usize = 32;

impl BertModel {
    /// The fine-tuning settings (`model.json` params).
    pub fn config(&self) -> &BertConfig {
        &self.config
    }

    /// The encoder's configuration (from `config.json`).
    pub fn encoder_config(&self) -> &EncoderConfig {
        &self.net.cfg
    }

    /// The token ids the model sees for `text` (`[CLS] ... [SEP]`, truncated).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        self.tokenizer.try_encode(text).map_err(inference)
    }

    /// Probabilities for pre-encoded texts, batched by similar length to cut padding; rows come
    /// back in input order.
    pub(crate) fn predict_ids<S: AsRef<[u32]>>(
        &self,
        seqs: &[S],
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        self.rows_by_length(seqs, |batch| self.net.probabilities(batch))
    }

    /// The pooled encoder vectors (before the head; with [`Pooling::Pooler`], the `[CLS]` state
    /// before the pooler) of `texts`, in input order; for comparing the encoder with a reference
    /// implementation.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, ModelError> {
        let seqs = texts
            .iter()
            .map(|t| self.token_ids(t))
            .collect::<Result<Vec<_>, _>>()?;
        self.rows_by_length(&seqs, |batch| {
            self.net.encode(batch, &mut None)?.to_vec2::<f32>()
        })
        .map_err(inference)
    }

    fn rows_by_length<S: AsRef<[u32]>>(
        &self,
        seqs: &[S],
        f: impl Fn(&Batch) -> candle_core::Result<Vec<Vec<f32>>>,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].as_ref().len());
        let mut out = vec![Vec::new(); seqs.len()];
        for chunk in order.chunks(PREDICT_BATCH) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i].as_ref()).collect();
            let rows = f(&Batch::new(&batch, self.net.cfg.pad_token_id)?)?;
            for (&i, p) in chunk.iter().zip(rows) {
                out[i] = p;
            }
        }
        Ok(out)
    }
}

/// A text as a bert model reads it ([`TextClassifier::encode`]): its word-piece ids.
struct TokenIds(Vec<u32>);

/// A failed prediction of a bert model.
fn inference(e: impl std::fmt::Display) -> ModelError {
    ModelError::Inference {
        model_type: MODEL_TYPE.into(),
        message: e.to_string(),
    }
}

impl TextClassifier for BertModel {
    fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The word pieces the encoder sees: `[CLS]`, the truncated text, `[SEP]` (at most
    /// `max_len` tokens).
    fn encode(&self, text: &str) -> Result<Encoded, ModelError> {
        let ids = self.token_ids(text)?;
        Ok(Encoded::new(ids.len(), TokenIds(ids)))
    }

    fn predict_encoded(&self, inputs: &[&Encoded]) -> Result<Vec<Vec<f32>>, ModelError> {
        let seqs = inputs
            .iter()
            .map(|e| {
                e.input::<TokenIds>(MODEL_TYPE)
                    .map(|TokenIds(ids)| ids.as_slice())
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.predict_ids(&seqs).map_err(inference)
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
                lowercase: self.tokenizer.lowercase(),
            },
            files: self.files.clone(),
            created_by: format!("taxon {}", env!("CARGO_PKG_VERSION")),
        }
    }
}
