//! Writes a small randomly initialised BERT or DistilBERT checkpoint folder (`config.json`, a
//! WordPiece `tokenizer.json`, `model.safetensors`) in the Hugging Face layout: a real
//! checkpoint, only untrained, for tests and experiments that need no download.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use taxon_core::model::ModelError;

use super::Pooling;
use super::config::{Arch, CONFIG_JSON, EncoderConfig};
use super::encoder::names;
use super::io::WEIGHTS;
use super::tokenize::TOKENIZER_JSON;
use crate::rng::SplitMix64;

/// The shape of a random checkpoint.
#[derive(Clone, Debug)]
pub struct RandomCheckpoint {
    /// BERT or DistilBERT names and config keys.
    pub arch: Arch,
    /// Words of the vocabulary (lower-case; `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]`, `[MASK]` come
    /// first, ids 0 to 4).
    pub words: Vec<String>,
    /// Width of the hidden states.
    pub hidden: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Attention heads (dividing `hidden`).
    pub heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate: usize,
    /// Rows of the position embedding.
    pub max_positions: usize,
    /// Store tensors as `bert.` / `distilbert.` prefixed names (as `*ForMaskedLM` saves them).
    pub prefixed: bool,
    /// Seed of the random weights.
    pub seed: u64,
}

const SPECIALS: [&str; 5] = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

impl RandomCheckpoint {
    /// A tiny BERT: hidden 32, 2 layers, 4 heads, feed-forward 64, 64 positions.
    pub fn tiny(words: &[&str]) -> Self {
        Self {
            arch: Arch::Bert,
            words: words.iter().map(|w| w.to_string()).collect(),
            hidden: 32,
            layers: 2,
            heads: 4,
            intermediate: 64,
            max_positions: 64,
            prefixed: false,
            seed: 7,
        }
    }

    fn config_json(&self) -> serde_json::Value {
        let vocab = SPECIALS.len() + self.words.len();
        match self.arch {
            Arch::Bert => serde_json::json!({
                "model_type": "bert",
                "architectures": ["BertModel"],
                "vocab_size": vocab,
                "hidden_size": self.hidden,
                "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads,
                "intermediate_size": self.intermediate,
                "hidden_act": "gelu",
                "max_position_embeddings": self.max_positions,
                "type_vocab_size": 2,
                "layer_norm_eps": 1e-12,
                "pad_token_id": 0,
                "hidden_dropout_prob": 0.1,
                "attention_probs_dropout_prob": 0.1
            }),
            Arch::DistilBert => serde_json::json!({
                "model_type": "distilbert",
                "architectures": ["DistilBertModel"],
                "vocab_size": vocab,
                "dim": self.hidden,
                "n_layers": self.layers,
                "n_heads": self.heads,
                "hidden_dim": self.intermediate,
                "activation": "gelu",
                "max_position_embeddings": self.max_positions,
                "sinusoidal_pos_embds": false,
                "pad_token_id": 0,
                "dropout": 0.1,
                "attention_dropout": 0.1
            }),
        }
    }

    fn tokenizer_json(&self) -> serde_json::Value {
        let vocab: serde_json::Map<String, serde_json::Value> = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(self.words.iter().cloned())
            .enumerate()
            .map(|(i, w)| (w, serde_json::Value::from(i)))
            .collect();
        let added: Vec<serde_json::Value> = SPECIALS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": {"type": "BertNormalizer", "clean_text": true,
                "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordPiece", "unk_token": "[UNK]",
                "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                "vocab": vocab}
        })
    }

    /// Writes the three files into `dir` (created if missing).
    pub fn write(&self, dir: &Path) -> Result<(), ModelError> {
        std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let config = self.config_json();
        let config_path = dir.join(CONFIG_JSON);
        let cfg = EncoderConfig::parse(&config.to_string(), &config_path)?;
        let put = |name: &str, text: String| {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|source| ModelError::Io { path, source })
        };
        put(CONFIG_JSON, config.to_string())?;
        put(TOKENIZER_JSON, self.tokenizer_json().to_string())?;
        let prefix = match (self.prefixed, self.arch) {
            (false, _) => "",
            (true, Arch::Bert) => "bert.",
            (true, Arch::DistilBert) => "distilbert.",
        };
        let mut rng = SplitMix64::new(self.seed);
        // BERT checkpoints carry a pre-trained pooler, DistilBERT ones do not.
        let pooling = match self.arch {
            Arch::Bert => Pooling::Pooler,
            Arch::DistilBert => Pooling::Mean,
        };
        let spec = names(&cfg, pooling, 0);
        let mut map = HashMap::new();
        for (name, shape) in &spec[..spec.len() - 2] {
            let n: usize = shape.iter().product();
            let data: Vec<f32> =
                if name.contains("LayerNorm.weight") || name.ends_with("norm.weight") {
                    vec![1.0; n]
                } else if shape.len() == 1 {
                    vec![0.0; n]
                } else {
                    // Uniform with standard deviation 0.02 * 5 (larger than BERT's init, so a tiny
                    // untrained encoder still separates texts).
                    (0..n)
                        .map(|_| (rng.next_f32() * 2.0 - 1.0) * 0.1 * 3f32.sqrt())
                        .collect()
                };
            let t = Tensor::from_vec(data, shape.as_slice(), &Device::Cpu).map_err(|e| {
                ModelError::Weights {
                    path: dir.join(WEIGHTS),
                    message: e.to_string(),
                }
            })?;
            map.insert(format!("{prefix}{name}"), t);
        }
        candle_core::safetensors::save(&map, dir.join(WEIGHTS)).map_err(|e| ModelError::Weights {
            path: dir.join(WEIGHTS),
            message: e.to_string(),
        })
    }
}
