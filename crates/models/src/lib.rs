//! The model factory: every model type taxon can train, and [`load`], which opens any model
//! folder by dispatching on the `model_type` of its `model.json`.
//!
//! Models implement [`taxon_core::model::TextClassifier`], so consumers never depend on a
//! concrete model. Training: a [`ModelConfig`] (tagged by `model_type`, each type with its own
//! typed options) builds the type's trainer, which implements [`training::Trainable`] and runs
//! in the shared epoch loop ([`training::run_epochs`]).

pub mod bert;
pub mod linear;
pub mod lstm;
pub mod rng;
pub mod training;

pub use training::ModelConfig;

use std::path::Path;

use taxon_core::model::{MODEL_JSON, ModelDescription, ModelError, TextClassifier};

/// The model types this build can load and train.
pub const MODEL_TYPES: &[&str] = &[linear::MODEL_TYPE, lstm::MODEL_TYPE, bert::MODEL_TYPE];

/// Opens the model folder `dir`: reads `model.json`, then loads the weights with the
/// implementation its `model_type` names, checking that the files match the description.
pub fn load(dir: &Path) -> Result<Box<dyn TextClassifier>, ModelError> {
    let desc = ModelDescription::read(dir)?;
    match desc.model_type.as_str() {
        linear::MODEL_TYPE => Ok(Box::new(linear::LinearModel::load_described(dir, &desc)?)),
        lstm::MODEL_TYPE => Ok(Box::new(lstm::LstmModel::load_described(dir, &desc)?)),
        bert::MODEL_TYPE => Ok(Box::new(bert::BertModel::load_described(dir, &desc)?)),
        other => Err(unknown_type(dir, other)),
    }
}

/// Reads `dir/model.json` and checks that it describes a `model_type` model.
pub(crate) fn read_description(
    dir: &Path,
    model_type: &str,
) -> Result<ModelDescription, ModelError> {
    let desc = ModelDescription::read(dir)?;
    if desc.model_type != model_type {
        return Err(unknown_type(dir, &desc.model_type));
    }
    Ok(desc)
}

/// The `params` of `desc` (the model folder `dir`) as `C`, checked with `validate`, after
/// checking that `desc` lists at least `min_labels` labels (1 or 2). Errors name
/// `dir/model.json` and the field.
pub(crate) fn checked_params<C: serde::de::DeserializeOwned>(
    dir: &Path,
    desc: &ModelDescription,
    min_labels: usize,
    validate: impl FnOnce(&C) -> Result<(), ModelError>,
) -> Result<C, ModelError> {
    let json = dir.join(MODEL_JSON);
    let config: C = desc.params_as(dir)?;
    validate(&config).map_err(|e| ModelError::Mismatch {
        path: json.clone(),
        field: "params".into(),
        expected: format!("a valid {} config", desc.model_type),
        found: e.to_string(),
    })?;
    if desc.labels.len() < min_labels {
        return Err(ModelError::Mismatch {
            path: json,
            field: "labels".into(),
            expected: match min_labels {
                1 => "at least one label".into(),
                2 => "at least two labels".into(),
                n => format!("at least {n} labels"),
            },
            found: format!("{:?}", desc.labels),
        });
    }
    Ok(config)
}

/// The error for a `model_type` this build does not know, naming `dir/model.json`.
pub fn unknown_type(dir: &Path, found: &str) -> ModelError {
    ModelError::UnknownModelType {
        path: dir.join(MODEL_JSON),
        found: found.to_string(),
        known: MODEL_TYPES.join(", "),
    }
}
