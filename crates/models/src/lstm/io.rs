//! Save and load an lstm model: `model.safetensors`, `vocab.txt` and `model.json`, with every
//! tensor's dtype and shape checked against the shapes that `model.json`'s params, its labels and
//! the vocabulary imply, before any tensor is used.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use taxon_core::Md5Hex;
use taxon_core::model::{MODEL_JSON, ModelDescription, ModelError, ModelFile};

use super::net::{NAMES, Net, shapes};
use super::vocab::{VOCAB_TXT, Vocab};
use super::{LstmConfig, LstmModel, TextClassifier};

/// The weights file of an lstm model folder.
pub const WEIGHTS: &str = "model.safetensors";

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

pub(super) fn save(m: &LstmModel, dir: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(WEIGHTS);
    let weights_err = |message: String| ModelError::Weights {
        path: path.clone(),
        message,
    };
    let values = m.net.values().map_err(|e| weights_err(e.to_string()))?;
    let bytes: Vec<Vec<u8>> = values
        .iter()
        .map(|v| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let shapes = shapes(m.vocab.len(), &m.config, m.labels.len());
    let views = NAMES
        .iter()
        .zip(shapes)
        .zip(&bytes)
        .map(|((name, shape), data)| {
            TensorView::new(Dtype::F32, shape, data)
                .map(|v| (name.to_string(), v))
                .map_err(|e| weights_err(format!("tensor `{name}`: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let st = safetensors::tensor::serialize(views, None::<HashMap<String, String>>)
        .map_err(|e| weights_err(e.to_string()))?;
    let files = vec![
        write(&path, &st)?,
        write(&dir.join(VOCAB_TXT), m.vocab.to_text().as_bytes())?,
    ];
    let mut desc = m.describe();
    desc.files = files;
    desc.write(dir)
}

impl LstmModel {
    /// Loads the lstm model in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let desc = crate::read_description(dir, super::MODEL_TYPE)?;
        Self::load_described(dir, &desc)
    }

    /// Loads the weights and vocabulary of `dir`, whose `model.json` is `desc`.
    pub fn load_described(dir: &Path, desc: &ModelDescription) -> Result<Self, ModelError> {
        let config: LstmConfig = crate::checked_params(dir, desc, 2, LstmConfig::validate)?;
        let vocab_path = dir.join(VOCAB_TXT);
        let vocab_bytes = desc.read_checked(dir, VOCAB_TXT)?;
        let vocab_text = String::from_utf8(vocab_bytes).map_err(|e| ModelError::Weights {
            path: vocab_path.clone(),
            message: format!("not UTF-8: {e}"),
        })?;
        let vocab = Vocab::from_text(&vocab_text, config.lowercase, &vocab_path)?;
        if vocab.len() > config.max_vocab {
            return Err(ModelError::Mismatch {
                path: vocab_path,
                field: format!("word count (at most {MODEL_JSON} params.max_vocab)"),
                expected: format!("<= {}", config.max_vocab),
                found: vocab.len().to_string(),
            });
        }

        let bytes = desc.read_checked(dir, WEIGHTS)?;
        let path = dir.join(WEIGHTS);
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Weights {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let tensors = NAMES
            .iter()
            .zip(shapes(vocab.len(), &config, desc.labels.len()))
            .map(|(name, shape)| tensor(&st, &path, name, &shape))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LstmModel {
            net: Net {
                tensors,
                hidden: config.hidden,
                pooling: config.pooling,
            },
            config,
            labels: desc.labels.clone(),
            vocab,
            files: desc.files.clone(),
        })
    }
}

/// Tensor `name` of `st` as a candle tensor, after checking its dtype and shape.
fn tensor(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    shape: &[usize],
) -> Result<Tensor, ModelError> {
    let t = st.tensor(name).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        message: format!("tensor `{name}`: {e}"),
    })?;
    if t.dtype() != Dtype::F32 {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            field: format!("tensor `{name}` dtype"),
            expected: "F32".into(),
            found: format!("{:?}", t.dtype()),
        });
    }
    if t.shape() != shape {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            field: format!(
                "tensor `{name}` shape (from {MODEL_JSON} params and labels, and {VOCAB_TXT})"
            ),
            expected: format!("{shape:?}"),
            found: format!("{:?}", t.shape()),
        });
    }
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Tensor::from_vec(values, shape, &Device::Cpu).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        message: format!("tensor `{name}`: {e}"),
    })
}
