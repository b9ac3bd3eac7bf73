//! Save and load a linear model: `model.safetensors` plus `model.json`, with every tensor's
//! dtype and shape checked against the description before use.

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;
use safetensors::tensor::{Dtype, TensorView};
use taxon_core::Md5Hex;
use taxon_core::model::{MODEL_JSON, ModelDescription, ModelError, ModelFile};

use super::features::KeyMap;
use super::{LinearConfig, LinearModel, Weighting};

/// The weights file of a linear model folder.
pub const WEIGHTS: &str = "model.safetensors";

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn u64_bytes(v: &[u64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn save(m: &LinearModel, dir: &Path) -> Result<(), ModelError> {
    std::fs::create_dir_all(dir).map_err(|source| ModelError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(WEIGHTS);
    let weights_err = |message: String| ModelError::Weights {
        path: path.clone(),
        message,
    };
    let dim = m.config.dim;
    let rows = m.keys.len();
    let keys = u64_bytes(&m.keys);
    let input = f32_bytes(&m.input);
    let output = f32_bytes(&m.output);
    let idf = m.idf.as_deref().map(f32_bytes);
    fn view(dtype: Dtype, shape: Vec<usize>, data: &[u8]) -> Result<TensorView<'_>, String> {
        TensorView::new(dtype, shape, data).map_err(|e| e.to_string())
    }
    let mut tensors = vec![
        (
            "keys".to_string(),
            view(Dtype::U64, vec![rows], &keys).map_err(weights_err)?,
        ),
        (
            "input".to_string(),
            view(Dtype::F32, vec![rows, dim], &input).map_err(weights_err)?,
        ),
        (
            "output".to_string(),
            view(Dtype::F32, vec![m.labels.len(), dim], &output).map_err(weights_err)?,
        ),
    ];
    if let Some(idf) = &idf {
        tensors.push((
            "idf".to_string(),
            view(Dtype::F32, vec![rows], idf).map_err(weights_err)?,
        ));
    }
    let bytes = safetensors::tensor::serialize(tensors, None::<HashMap<String, String>>)
        .map_err(|e| weights_err(e.to_string()))?;
    std::fs::write(&path, &bytes).map_err(|source| ModelError::Io {
        path: path.clone(),
        source,
    })?;
    let mut desc = super::TextClassifier::describe(m);
    desc.files = vec![ModelFile {
        name: WEIGHTS.into(),
        bytes: bytes.len() as u64,
        md5: Md5Hex::of_bytes(&bytes),
    }];
    desc.write(dir)
}

impl LinearModel {
    /// Loads the linear model in `dir`.
    pub fn load(dir: &Path) -> Result<Self, ModelError> {
        let desc = crate::read_description(dir, super::MODEL_TYPE)?;
        Self::load_described(dir, &desc)
    }

    /// Loads the weights of `dir`, whose `model.json` is `desc`.
    pub fn load_described(dir: &Path, desc: &ModelDescription) -> Result<Self, ModelError> {
        let desc = &with_legacy_params(desc);
        let config: LinearConfig = crate::checked_params(dir, desc, 1, LinearConfig::validate)?;
        let bytes = desc.read_checked(dir, WEIGHTS)?;
        let path = dir.join(WEIGHTS);
        let st = SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Weights {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let dim = config.dim;
        let keys = tensor(&st, &path, "keys", Dtype::U64, None)?;
        let rows = keys.len() / 8;
        let keys: Vec<u64> = keys
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect();
        let input = f32s(tensor(&st, &path, "input", Dtype::F32, Some(&[rows, dim]))?);
        let output = f32s(tensor(
            &st,
            &path,
            "output",
            Dtype::F32,
            Some(&[desc.labels.len(), dim]),
        )?);
        let idf = match config.weighting {
            Weighting::Idf => Some(f32s(tensor(&st, &path, "idf", Dtype::F32, Some(&[rows]))?)),
            Weighting::None => None,
        };
        let mut index = KeyMap::with_capacity_and_hasher(rows, Default::default());
        for (row, &k) in keys.iter().enumerate() {
            if index.insert(k, row as u32).is_some() {
                return Err(ModelError::Weights {
                    path,
                    message: format!("tensor `keys`: key {k} appears twice"),
                });
            }
        }
        Ok(LinearModel {
            featurizer: config.featurizer(),
            config,
            labels: desc.labels.clone(),
            keys,
            index,
            input,
            output,
            idf,
            files: desc.files.clone(),
        })
    }
}

/// The raw bytes of tensor `name`, after checking its dtype and (when given) its shape.
/// `desc` with the params that models written before `tf`, `solver`, `min_df` and `c` existed
/// lack filled with what those models were: fastText SGD models on raw counts of every feature.
/// (The training defaults are the SVM's; a missing key in an old `model.json` is not.)
fn with_legacy_params(desc: &ModelDescription) -> ModelDescription {
    let mut desc = desc.clone();
    if let Some(params) = desc.params.as_object_mut() {
        for (key, value) in [
            ("tf", serde_json::json!("raw")),
            ("solver", serde_json::json!("sgd")),
            ("min_df", serde_json::json!(1)),
            ("c", serde_json::Value::Null),
        ] {
            params.entry(key).or_insert(value);
        }
    }
    desc
}

fn tensor<'a>(
    st: &'a SafeTensors<'a>,
    path: &Path,
    name: &str,
    dtype: Dtype,
    shape: Option<&[usize]>,
) -> Result<&'a [u8], ModelError> {
    let t = st.tensor(name).map_err(|e| ModelError::Weights {
        path: path.to_path_buf(),
        message: format!("tensor `{name}`: {e}"),
    })?;
    if t.dtype() != dtype {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            field: format!("tensor `{name}` dtype"),
            expected: format!("{dtype:?}"),
            found: format!("{:?}", t.dtype()),
        });
    }
    let ok_shape = match shape {
        Some(s) => t.shape() == s,
        None => t.shape().len() == 1,
    };
    if !ok_shape {
        return Err(ModelError::Mismatch {
            path: path.to_path_buf(),
            field: format!("tensor `{name}` shape (from {MODEL_JSON} params and labels)"),
            expected: format!("{:?}", shape.unwrap_or(&[0])),
            found: format!("{:?}", t.shape()),
        });
    }
    Ok(t.data())
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
