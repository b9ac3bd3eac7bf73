//! The encoder's `config.json`: serde mirrors of Hugging Face's BERT (`model_type: "bert"`)
//! and DistilBERT (`model_type: "distilbert"`) configs, normalised into one [`EncoderConfig`]
//! that the network is built from. Keys this model does not use are ignored, as in
//! `transformers`; keys it needs but cannot honour (another activation) are errors naming the
//! file and the key.

use std::path::Path;

use serde::Deserialize;
use taxon_core::model::ModelError;

/// The encoder's configuration file in a checkpoint or model folder.
pub const CONFIG_JSON: &str = "config.json";

/// Which architecture the checkpoint's tensors follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// BERT (Devlin et al. 2019): learned position and token-type embeddings, post-LN layers.
    Bert,
    /// DistilBERT (Sanh et al. 2019): BERT without token types, with its own tensor names.
    DistilBert,
}

/// The encoder hyper-parameters, whichever architecture they came from.
#[derive(Clone, Debug, PartialEq)]
pub struct EncoderConfig {
    /// Which tensor names the checkpoint uses.
    pub arch: Arch,
    /// Rows of the word-piece embedding.
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads per layer.
    pub heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate: usize,
    /// Rows of the position embedding: the longest input.
    pub max_positions: usize,
    /// Rows of the token-type embedding (0 for DistilBERT, which has none).
    pub type_vocab_size: usize,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f64,
    /// The id batches are padded with.
    pub pad_token_id: u32,
    /// Dropout on embeddings, attention output and feed-forward output while training.
    pub hidden_dropout: f32,
    /// Dropout on the attention probabilities while training.
    pub attention_dropout: f32,
}

fn gelu() -> String {
    "gelu".into()
}
fn two() -> usize {
    2
}
fn eps() -> f64 {
    1e-12
}
fn dropout() -> f32 {
    0.1
}

/// Hugging Face's `BertConfig` (the keys this model reads).
#[derive(Debug, Deserialize)]
struct HfBert {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    #[serde(default = "gelu")]
    hidden_act: String,
    max_position_embeddings: usize,
    #[serde(default = "two")]
    type_vocab_size: usize,
    #[serde(default = "eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    pad_token_id: u32,
    #[serde(default = "dropout")]
    hidden_dropout_prob: f32,
    #[serde(default = "dropout")]
    attention_probs_dropout_prob: f32,
    #[serde(default)]
    position_embedding_type: Option<String>,
}

/// Hugging Face's `DistilBertConfig` (the keys this model reads).
#[derive(Debug, Deserialize)]
struct HfDistilBert {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    #[serde(default = "gelu")]
    activation: String,
    max_position_embeddings: usize,
    /// Sinusoidal position embeddings are still stored as a tensor in the checkpoint, so both
    /// settings load the same way.
    #[serde(default)]
    #[allow(dead_code)]
    sinusoidal_pos_embds: bool,
    #[serde(default)]
    pad_token_id: u32,
    #[serde(default = "dropout")]
    dropout: f32,
    #[serde(default = "dropout")]
    attention_dropout: f32,
}

#[derive(Debug, Deserialize)]
struct ModelTypeOnly {
    model_type: Option<String>,
}

impl EncoderConfig {
    /// Parses the text of a `config.json`; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ModelError> {
        let json = |source| ModelError::Json {
            path: path.to_path_buf(),
            source,
        };
        let bad = |field: &str, expected: &str, found: String| ModelError::Mismatch {
            path: path.to_path_buf(),
            field: field.into(),
            expected: expected.into(),
            found,
        };
        let kind: ModelTypeOnly = serde_json::from_str(text).map_err(json)?;
        let cfg = match kind.model_type.as_deref() {
            Some("bert") | None => {
                let c: HfBert = serde_json::from_str(text).map_err(json)?;
                if c.hidden_act != "gelu" {
                    return Err(bad("hidden_act", "\"gelu\"", format!("{:?}", c.hidden_act)));
                }
                if let Some(p) = c.position_embedding_type.filter(|p| p != "absolute") {
                    return Err(bad(
                        "position_embedding_type",
                        "\"absolute\"",
                        format!("{p:?}"),
                    ));
                }
                EncoderConfig {
                    arch: Arch::Bert,
                    vocab_size: c.vocab_size,
                    hidden: c.hidden_size,
                    layers: c.num_hidden_layers,
                    heads: c.num_attention_heads,
                    intermediate: c.intermediate_size,
                    max_positions: c.max_position_embeddings,
                    type_vocab_size: c.type_vocab_size,
                    layer_norm_eps: c.layer_norm_eps,
                    pad_token_id: c.pad_token_id,
                    hidden_dropout: c.hidden_dropout_prob,
                    attention_dropout: c.attention_probs_dropout_prob,
                }
            }
            Some("distilbert") => {
                let c: HfDistilBert = serde_json::from_str(text).map_err(json)?;
                if c.activation != "gelu" {
                    return Err(bad("activation", "\"gelu\"", format!("{:?}", c.activation)));
                }
                EncoderConfig {
                    arch: Arch::DistilBert,
                    vocab_size: c.vocab_size,
                    hidden: c.dim,
                    layers: c.n_layers,
                    heads: c.n_heads,
                    intermediate: c.hidden_dim,
                    max_positions: c.max_position_embeddings,
                    type_vocab_size: 0,
                    // DistilBERT's LayerNorms use eps 1e-12 (hard-coded in `transformers`).
                    layer_norm_eps: 1e-12,
                    pad_token_id: c.pad_token_id,
                    hidden_dropout: c.dropout,
                    attention_dropout: c.attention_dropout,
                }
            }
            Some(other) => {
                return Err(bad(
                    "model_type",
                    "\"bert\" or \"distilbert\"",
                    format!("{other:?}"),
                ));
            }
        };
        cfg.check(path)?;
        Ok(cfg)
    }

    /// Reads and parses `dir/config.json`.
    pub fn read(dir: &Path) -> Result<(Self, String), ModelError> {
        let path = dir.join(CONFIG_JSON);
        let text = std::fs::read_to_string(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        Ok((Self::parse(&text, &path)?, text))
    }

    fn check(&self, path: &Path) -> Result<(), ModelError> {
        let (hidden_key, heads_key) = match self.arch {
            Arch::Bert => ("hidden_size", "num_attention_heads"),
            Arch::DistilBert => ("dim", "n_heads"),
        };
        let bad = |field: &str, expected: String, found: String| {
            Err(ModelError::Mismatch {
                path: path.to_path_buf(),
                field: field.into(),
                expected,
                found,
            })
        };
        for (key, v) in [
            (hidden_key, self.hidden),
            (heads_key, self.heads),
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_positions),
        ] {
            if v == 0 {
                return bad(key, "at least 1".into(), "0".into());
            }
        }
        if self.hidden % self.heads != 0 {
            return bad(
                hidden_key,
                format!("a multiple of {heads_key} ({})", self.heads),
                self.hidden.to_string(),
            );
        }
        for (key, p) in [
            ("hidden dropout", self.hidden_dropout),
            ("attention dropout", self.attention_dropout),
        ] {
            if !(0.0..1.0).contains(&p) {
                return bad(key, "in [0, 1)".into(), p.to_string());
            }
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden / self.heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bert_and_distilbert_configs_normalise_to_the_same_fields() {
        let p = Path::new("config.json");
        let b = EncoderConfig::parse(
            r#"{"model_type":"bert","vocab_size":30,"hidden_size":8,"num_hidden_layers":2,
               "num_attention_heads":2,"intermediate_size":16,"max_position_embeddings":64,
               "type_vocab_size":2,"layer_norm_eps":1e-12,"pad_token_id":0,"architectures":["x"]}"#,
            p,
        )
        .unwrap();
        let d = EncoderConfig::parse(
            r#"{"model_type":"distilbert","vocab_size":30,"dim":8,"n_layers":2,"n_heads":2,
               "hidden_dim":16,"max_position_embeddings":64,"sinusoidal_pos_embds":false}"#,
            p,
        )
        .unwrap();
        assert_eq!((b.hidden, b.layers, b.heads, b.intermediate), (8, 2, 2, 16));
        assert_eq!((d.hidden, d.layers, d.heads, d.intermediate), (8, 2, 2, 16));
        assert_eq!(b.arch, Arch::Bert);
        assert_eq!(d.type_vocab_size, 0);
    }

    #[test]
    fn unsupported_values_name_the_key() {
        let p = Path::new("ck/config.json");
        let err = EncoderConfig::parse(
            r#"{"model_type":"bert","vocab_size":30,"hidden_size":9,"num_hidden_layers":2,
               "num_attention_heads":2,"intermediate_size":16,"max_position_embeddings":64}"#,
            p,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("ck/config.json") && err.contains("hidden_size"),
            "{err}"
        );
        let err = EncoderConfig::parse(r#"{"model_type":"gpt2"}"#, p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model_type") && err.contains("gpt2"), "{err}");
        let err = EncoderConfig::parse(r#"{"model_type":"bert","vocab_size":3}"#, p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("hidden_size"), "{err}");
    }
}
