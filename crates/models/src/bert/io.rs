//! Reading and writing bert folders.
//!
//! A base checkpoint is a Hugging Face folder: `config.json`, `tokenizer.json`,
//! `model.safetensors` (tensors named with or without the `bert.` / `distilbert.` prefix; other
//! tensors such as the pooler or a pre-training head are ignored; LayerNorm `gamma` / `beta`
//! names of checkpoints converted from TensorFlow are accepted too). A trained taxon model folder
//! adds `model.json` (the [`BertConfig`] in `params`) and stores the encoder under unprefixed
//! Hugging Face names plus `classifier.weight` / `classifier.bias`; loading checks every file's
//! md5 against `model.json`. Every tensor's shape is checked against `config.json` before use:
//! a disagreement is an error naming the file, the tensor and the config key.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use taxon_core::Md5Hex;
use taxon_core::model::{MODEL_JSON, ModelDescription, ModelError, ModelFile};

use super::config::{Arch, CONFIG_JSON, EncoderConfig};
use super::net::{Net, names};
use super::tokenize::{TOKENIZER_JSON, TextEncoder};
use super::{BertConfig, BertModel, TextClassifier};

/// The weights file of a checkpoint or model folder.
pub const WEIGHTS: &str = "model.safetensors";

/// A base checkpoint read from disk: the encoder's tensors (no head yet) and its files.
pub(crate) struct Checkpoint {
    pub(crate) cfg: EncoderConfig,
    pub(crate) config_text: String,
    pub(crate) tokenizer: TextEncoder,
    pub(crate) tokenizer_bytes: Vec<u8>,
    /// The encoder tensors, in [`names`] order without the two head tensors.
    pub(crate) encoder: Vec<Tensor>,
}

fn weights_err(path: &Path, message: String) -> ModelError {
    ModelError::Weights {
        path: path.to_path_buf(),
        message,
    }
}

/// The config key that sets dimension `dim` of tensor `name`, for error messages.
fn config_key(cfg: &EncoderConfig, name: &str, dim: usize) -> &'static str {
    let bert = cfg.arch == Arch::Bert;
    let hidden = if bert { "hidden_size" } else { "dim" };
    let ff = if bert {
        "intermediate_size"
    } else {
        "hidden_dim"
    };
    if name.contains("word_embeddings") && dim == 0 {
        "vocab_size"
    } else if name.contains("position_embeddings") && dim == 0 {
        "max_position_embeddings"
    } else if name.contains("token_type") && dim == 0 {
        "type_vocab_size"
    } else if (name.contains("intermediate.dense") || name.contains("lin1")) && dim == 0
        || (name.contains("output.dense") || name.contains("lin2"))
            && dim == 1
            && !name.contains("attention")
    {
        ff
    } else {
        hidden
    }
}

/// Looks up the encoder tensors of `cfg` in a safetensors buffer, accepting `prefix.` names.
fn encoder_tensors(
    bytes: &[u8],
    path: &Path,
    cfg: &EncoderConfig,
) -> Result<Vec<Tensor>, ModelError> {
    let mut all: HashMap<String, Tensor> =
        candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
            .map_err(|e| weights_err(path, format!("not a safetensors file: {e}")))?;
    let prefix = match cfg.arch {
        Arch::Bert => "bert.",
        Arch::DistilBert => "distilbert.",
    };
    let spec = names(cfg, 0);
    let encoder = &spec[..spec.len() - 2];
    encoder
        .iter()
        .map(|(name, shape)| {
            // Checkpoints converted from the original TensorFlow BERT name LayerNorm
            // parameters `gamma` / `beta`.
            let legacy = name
                .strip_suffix("LayerNorm.weight")
                .map(|s| format!("{s}LayerNorm.gamma"))
                .or_else(|| {
                    name.strip_suffix("LayerNorm.bias")
                        .map(|s| format!("{s}LayerNorm.beta"))
                });
            let mut candidates = vec![name.clone(), format!("{prefix}{name}")];
            if let Some(l) = legacy {
                candidates.push(format!("{prefix}{l}"));
                candidates.push(l);
            }
            let t = candidates
                .iter()
                .find_map(|n| all.remove(n))
                .ok_or_else(|| {
                    weights_err(
                        path,
                        format!(
                            "tensor `{name}` (or `{prefix}{name}`) is missing; a {} checkpoint \
                             with the shapes of {CONFIG_JSON} is needed",
                            match cfg.arch {
                                Arch::Bert => "BERT",
                                Arch::DistilBert => "DistilBERT",
                            }
                        ),
                    )
                })?;
            check_shape(&t, path, name, shape, cfg)?;
            t.to_dtype(DType::F32)
                .map_err(|e| weights_err(path, format!("tensor `{name}`: {e}")))
        })
        .collect()
}

fn check_shape(
    t: &Tensor,
    path: &Path,
    name: &str,
    shape: &[usize],
    cfg: &EncoderConfig,
) -> Result<(), ModelError> {
    if t.dims() == shape {
        return Ok(());
    }
    let dim = if t.dims().len() == shape.len() {
        t.dims()
            .iter()
            .zip(shape)
            .position(|(a, b)| a != b)
            .unwrap_or(0)
    } else {
        0
    };
    Err(ModelError::Mismatch {
        path: path.to_path_buf(),
        field: format!(
            "tensor `{name}` shape (from {CONFIG_JSON} `{}`)",
            config_key(cfg, name, dim)
        ),
        expected: format!("{shape:?}"),
        found: format!("{:?}", t.dims()),
    })
}

impl Checkpoint {
    /// Reads the Hugging Face checkpoint folder `dir`.
    pub(crate) fn read(
        dir: &Path,
        max_len: usize,
        truncation: super::Truncation,
    ) -> Result<Self, ModelError> {
        let (cfg, config_text) = EncoderConfig::read(dir)?;
        let (tokenizer, tokenizer_bytes) = TextEncoder::read(dir, max_len, truncation)?;
        let path = dir.join(WEIGHTS);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let encoder = encoder_tensors(&bytes, &path, &cfg)?;
        check_vocab(&tokenizer, &cfg, dir)?;
        Ok(Self {
            cfg,
            config_text,
            tokenizer,
            tokenizer_bytes,
            encoder,
        })
    }
}

/// The tokenizer must not produce ids beyond the embedding's rows.
fn check_vocab(tok: &TextEncoder, cfg: &EncoderConfig, dir: &Path) -> Result<(), ModelError> {
    if tok.vocab_size() > cfg.vocab_size {
        return Err(ModelError::Mismatch {
            path: dir.join(TOKENIZER_JSON),
            field: format!("vocabulary size (at most {CONFIG_JSON} `vocab_size`)"),
            expected: format!("<= {}", cfg.vocab_size),
            found: tok.vocab_size().to_string(),
        });
    }
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> Result<ModelFile, ModelError> {
    std::fs::write(path, bytes).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(ModelFile {
        name: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes: bytes.len() as u64,
        md5: Md5Hex::of_bytes(bytes),
    })
}

pub(super) fn save(m: &BertModel, dir: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(WEIGHTS);
    let spec = names(&m.net.cfg, m.labels.len());
    let map: HashMap<String, Tensor> = spec
        .iter()
        .map(|(n, _)| n.clone())
        .zip(m.net.tensors.iter().cloned())
        .collect();
    let tmp = dir.join(format!(".{WEIGHTS}.tmp"));
    candle_core::safetensors::save(&map, &tmp).map_err(|e| weights_err(&path, e.to_string()))?;
    let bytes = std::fs::read(&tmp).map_err(|source| ModelError::Io {
        path: tmp.clone(),
        source,
    })?;
    std::fs::remove_file(&tmp).map_err(|source| ModelError::Io {
        path: tmp.clone(),
        source,
    })?;
    let files = vec![
        write(&path, &bytes)?,
        write(&dir.join(CONFIG_JSON), m.config_text.as_bytes())?,
        write(&dir.join(TOKENIZER_JSON), &m.tokenizer_bytes)?,
    ];
    let mut desc = m.describe();
    desc.files = files;
    desc.write(dir)
}

impl BertModel {
    /// A model from the Hugging Face checkpoint folder `base` with a new classification head
    /// for `labels`, initialised from `seed`: the starting point of fine-tuning.
    pub fn from_checkpoint(
        base: &Path,
        config: &BertConfig,
        labels: &[String],
        seed: u64,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        let ck = Checkpoint::read(base, config.max_len, config.truncation)?;
        config.validate_for(&ck.cfg)?;
        let mut rng = crate::rng::SplitMix64::new(seed);
        let head = Net::init_head(ck.cfg.hidden, labels.len(), &mut rng)
            .map_err(|e| weights_err(&base.join(WEIGHTS), format!("classifier: {e}")))?;
        let mut tensors = ck.encoder;
        tensors.extend(head);
        Ok(BertModel {
            net: Net {
                tensors,
                cfg: ck.cfg,
                pooling: config.pooling,
                int8: None,
            },
            config: config.clone(),
            labels: labels.to_vec(),
            tokenizer: ck.tokenizer,
            tokenizer_bytes: ck.tokenizer_bytes,
            config_text: ck.config_text,
            files: Vec::new(),
        })
    }

    /// Loads the bert model folder `dir` (written by `save`).
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let desc = crate::read_description(dir, super::MODEL_TYPE)?;
        Self::load_described(dir, &desc)
    }

    /// Loads the files of `dir`, whose `model.json` is `desc`, checking their md5s and shapes.
    pub fn load_described(dir: &Path, desc: &ModelDescription) -> Result<Self, ModelError> {
        let config: BertConfig = crate::checked_params(dir, desc, 2, BertConfig::validate)?;
        let config_path = dir.join(CONFIG_JSON);
        let config_bytes = desc.read_checked(dir, CONFIG_JSON)?;
        let config_text = String::from_utf8(config_bytes)
            .map_err(|e| weights_err(&config_path, format!("not UTF-8: {e}")))?;
        let cfg = EncoderConfig::parse(&config_text, &config_path)?;
        config
            .validate_for(&cfg)
            .map_err(|e| ModelError::Mismatch {
                path: dir.join(MODEL_JSON),
                field: "params".into(),
                expected: format!("settings that fit {CONFIG_JSON}"),
                found: e.to_string(),
            })?;
        let tokenizer_bytes = desc.read_checked(dir, TOKENIZER_JSON)?;
        let tokenizer = TextEncoder::from_bytes(
            &tokenizer_bytes,
            &dir.join(TOKENIZER_JSON),
            config.max_len,
            config.truncation,
        )?;
        check_vocab(&tokenizer, &cfg, dir)?;
        let path = dir.join(WEIGHTS);
        let bytes = desc.read_checked(dir, WEIGHTS)?;
        let mut tensors = encoder_tensors(&bytes, &path, &cfg)?;
        let all = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| weights_err(&path, e.to_string()))?;
        let spec = names(&cfg, desc.labels.len());
        for (name, shape) in &spec[spec.len() - 2..] {
            let t = all.get(name).ok_or_else(|| {
                weights_err(
                    &path,
                    format!("tensor `{name}` (the classifier) is missing"),
                )
            })?;
            if t.dims() != shape.as_slice() {
                return Err(ModelError::Mismatch {
                    path: path.clone(),
                    field: format!(
                        "tensor `{name}` shape (from {MODEL_JSON} labels and {CONFIG_JSON})"
                    ),
                    expected: format!("{shape:?}"),
                    found: format!("{:?}", t.dims()),
                });
            }
            tensors.push(
                t.to_dtype(DType::F32)
                    .map_err(|e| weights_err(&path, e.to_string()))?,
            );
        }
        Ok(BertModel {
            net: Net {
                tensors,
                cfg,
                pooling: config.pooling,
                int8: None,
            },
            config,
            labels: desc.labels.clone(),
            tokenizer,
            tokenizer_bytes,
            config_text,
            files: desc.files.clone(),
        })
    }
}
