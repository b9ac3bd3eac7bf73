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

use std::collections::{HashMap, HashSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use taxon_core::Md5Hex;
use taxon_core::model::{MODEL_JSON, ModelDescription, ModelError, ModelFile};

use super::config::{Arch, CONFIG_JSON, EncoderConfig};
use super::encoder::{Net, names};
use super::optimize::Quantization;
use super::quant::{Int8Linear, Int8Linears, dense_weight_indices, placeholder};
use super::tokenize::{TOKENIZER_JSON, TextEncoder};
use super::{BertConfig, BertModel, Pooling, TextClassifier};

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

/// Reads every tensor of a safetensors buffer with candle.
fn candle_tensors(bytes: &[u8], path: &Path) -> Result<HashMap<String, Tensor>, ModelError> {
    candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| weights_err(path, format!("not a safetensors file: {e}")))
}

/// Looks up the encoder tensors of `cfg` (and the pooler's with [`Pooling::Pooler`]) among
/// `all`, accepting `prefix.` names; the tensors whose index is in `int8` (held as int8
/// layers) get a placeholder.
fn encoder_tensors(
    mut all: HashMap<String, Tensor>,
    path: &Path,
    cfg: &EncoderConfig,
    pooling: Pooling,
    int8: &HashSet<usize>,
) -> Result<Vec<Tensor>, ModelError> {
    let prefix = match cfg.arch {
        Arch::Bert => "bert.",
        Arch::DistilBert => "distilbert.",
    };
    let spec = names(cfg, pooling, 0);
    let encoder = &spec[..spec.len() - 2];
    encoder
        .iter()
        .enumerate()
        .map(|(i, (name, shape))| {
            if int8.contains(&i) {
                return placeholder().map_err(|e| weights_err(path, e.to_string()));
            }
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
                    if name.starts_with("pooler.") {
                        return weights_err(
                            path,
                            format!(
                                "tensor `{name}` (or `{prefix}{name}`) is missing: pooling \
                                 `pooler` needs a checkpoint with a pre-trained pooler \
                                 (DistilBERT checkpoints have none); use mean or cls pooling"
                            ),
                        );
                    }
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
    /// Reads the Hugging Face checkpoint folder `dir` for a model with `config`'s settings.
    pub(crate) fn read(dir: &Path, config: &BertConfig) -> Result<Self, ModelError> {
        let (cfg, config_text) = EncoderConfig::read(dir)?;
        let (tokenizer, tokenizer_bytes) =
            TextEncoder::read(dir, config.max_len, config.truncation)?;
        let path = dir.join(WEIGHTS);
        let bytes = std::fs::read(&path).map_err(|source| ModelError::Io {
            path: path.clone(),
            source,
        })?;
        let all = candle_tensors(&bytes, &path)?;
        let encoder = encoder_tensors(all, &path, &cfg, config.pooling, &HashSet::new())?;
        check_vocab(&tokenizer, &cfg, dir)?;
        config.validate_for(&cfg)?;
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

/// Suffix of the f32 per-output scales stored next to an int8 weight.
pub const SCALE_SUFFIX: &str = "_scale";

/// The safetensors bytes of `m`'s tensors: f32, except int8 layers, stored as an I8 weight plus
/// an f32 `<name>_scale`.
fn weights_bytes(m: &BertModel) -> Result<Vec<u8>, String> {
    use safetensors::tensor::{Dtype, TensorView};
    let spec = names(&m.net.cfg, m.net.pooling, m.labels.len());
    // (name, dtype, shape, bytes)
    let mut owned: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::with_capacity(spec.len());
    for (i, ((name, shape), t)) in spec.iter().zip(&m.net.tensors).enumerate() {
        if let Some(l) = m.net.int8.as_ref().and_then(|q| q.get(i)) {
            let q: Vec<u8> = l.packed.int8().into_iter().map(|v| v as u8).collect();
            owned.push((name.clone(), Dtype::I8, shape.clone(), q));
            let scales: Vec<u8> = l
                .packed
                .scales()
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            owned.push((
                format!("{name}{SCALE_SUFFIX}"),
                Dtype::F32,
                vec![shape[0]],
                scales,
            ));
            continue;
        }
        let v = t
            .flatten_all()
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        let b: Vec<u8> = v.iter().flat_map(|v| v.to_le_bytes()).collect();
        owned.push((name.clone(), Dtype::F32, t.dims().to_vec(), b));
    }
    let views = owned
        .iter()
        .map(|(n, d, s, b)| {
            TensorView::new(*d, s.clone(), b)
                .map(|v| (n.clone(), v))
                .map_err(|e| format!("tensor `{n}`: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    safetensors::tensor::serialize(views, None).map_err(|e| e.to_string())
}

/// Every tensor of a taxon model's weights file: the f32 ones as candle tensors, the int8 ones
/// as `(shape, values)`.
#[allow(clippy::type_complexity)]
fn model_tensors(
    bytes: &[u8],
    path: &Path,
) -> Result<
    (
        HashMap<String, Tensor>,
        HashMap<String, (Vec<usize>, Vec<i8>)>,
    ),
    ModelError,
> {
    use safetensors::tensor::Dtype;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| weights_err(path, format!("not a safetensors file: {e}")))?;
    let mut floats = HashMap::new();
    let mut ints = HashMap::new();
    for (name, view) in st.tensors() {
        let shape = view.shape().to_vec();
        match view.dtype() {
            Dtype::I8 => {
                let q: Vec<i8> = view.data().iter().map(|&b| b as i8).collect();
                ints.insert(name, (shape, q));
            }
            d => {
                let dtype = match d {
                    Dtype::F32 => DType::F32,
                    Dtype::F16 => DType::F16,
                    Dtype::BF16 => DType::BF16,
                    Dtype::F64 => DType::F64,
                    other => {
                        return Err(weights_err(
                            path,
                            format!("tensor `{name}` has dtype {other:?}; expected F32 or I8"),
                        ));
                    }
                };
                let t = Tensor::from_raw_buffer(view.data(), dtype, &shape, &Device::Cpu)
                    .map_err(|e| weights_err(path, format!("tensor `{name}`: {e}")))?;
                floats.insert(name, t);
            }
        }
    }
    Ok((floats, ints))
}

/// Takes the int8 layers out of `floats` / `ints` for a model whose params say `quantization`:
/// every encoder dense weight must be I8 `(out, in)` with an f32 `<name>_scale` of `out`
/// finite values when int8, and no tensor may be I8 otherwise.
fn int8_layers(
    quantization: Quantization,
    floats: &mut HashMap<String, Tensor>,
    mut ints: HashMap<String, (Vec<usize>, Vec<i8>)>,
    path: &Path,
    cfg: &EncoderConfig,
    pooling: Pooling,
    labels: usize,
) -> Result<Option<Int8Linears>, ModelError> {
    if quantization == Quantization::None {
        if let Some(name) = ints.keys().min() {
            return Err(weights_err(
                path,
                format!(
                    "tensor `{name}` is int8 but {MODEL_JSON} params do not say                      `quantization: int8`"
                ),
            ));
        }
        return Ok(None);
    }
    let spec = names(cfg, pooling, labels);
    let mut layers = HashMap::new();
    for i in dense_weight_indices(cfg) {
        let (name, shape) = &spec[i];
        let (found, q) = ints.remove(name).ok_or_else(|| {
            let what = if floats.contains_key(name) {
                "is not int8"
            } else {
                "is missing"
            };
            weights_err(
                path,
                format!("tensor `{name}` {what} ({MODEL_JSON} params say `quantization: int8`)"),
            )
        })?;
        if &found != shape {
            return Err(ModelError::Mismatch {
                path: path.to_path_buf(),
                field: format!("int8 tensor `{name}` shape (from {CONFIG_JSON})"),
                expected: format!("{shape:?}"),
                found: format!("{found:?}"),
            });
        }
        let scale_name = format!("{name}{SCALE_SUFFIX}");
        let scale = floats.remove(&scale_name).ok_or_else(|| {
            weights_err(
                path,
                format!("tensor `{scale_name}` (the scales of int8 `{name}`) is missing"),
            )
        })?;
        if scale.dims() != [shape[0]] {
            return Err(ModelError::Mismatch {
                path: path.to_path_buf(),
                field: format!("tensor `{scale_name}` shape"),
                expected: format!("[{}]", shape[0]),
                found: format!("{:?}", scale.dims()),
            });
        }
        let scales = scale
            .to_dtype(DType::F32)
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| weights_err(path, format!("tensor `{scale_name}`: {e}")))?;
        let layer = Int8Linear::from_int8(&q, &scales, shape[0], shape[1])
            .map_err(|e| weights_err(path, format!("int8 tensor `{name}`: {e}")))?;
        layers.insert(i, layer);
    }
    if let Some(name) = ints.keys().min() {
        return Err(weights_err(
            path,
            format!("tensor `{name}` is int8 but is not an encoder dense weight"),
        ));
    }
    Ok(Some(Int8Linears { layers }))
}

pub(super) fn save(m: &BertModel, dir: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(WEIGHTS);
    let bytes = weights_bytes(m).map_err(|e| weights_err(&path, e))?;
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
        if !config.quantization.is_none() {
            return Err(ModelError::InvalidConfig {
                field: "quantization".into(),
                message: "must be none to fine-tune: quantize the trained model with                           `taxon model optimize --int8`"
                    .into(),
            });
        }
        let ck = Checkpoint::read(base, config)?;
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
                transposed: Default::default(),
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
        let (mut all, ints) = model_tensors(&bytes, &path)?;
        let int8 = int8_layers(
            config.quantization,
            &mut all,
            ints,
            &path,
            &cfg,
            config.pooling,
            desc.labels.len(),
        )?;
        let skip: HashSet<usize> = int8
            .as_ref()
            .map(|q| q.layers.keys().copied().collect())
            .unwrap_or_default();
        let spec = names(&cfg, config.pooling, desc.labels.len());
        let head: Vec<Option<Tensor>> = spec
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(|(n, _)| all.get(n).cloned())
            .collect();
        let mut tensors = encoder_tensors(all, &path, &cfg, config.pooling, &skip)?;
        for ((name, shape), t) in spec[spec.len() - 2..].iter().zip(&head) {
            let t = t.as_ref().ok_or_else(|| {
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
                int8: int8.map(std::sync::Arc::new),
                transposed: Default::default(),
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
