//! The one tagged model configuration: which model type a run trains (`model_type`) with that
//! type's own typed options and defaults, and the trainer it builds.

use serde::{Deserialize, Serialize};
use taxon_core::model::ModelError;

use super::Trainable;
use crate::{bert, linear, lstm};

/// A model type and its training options, tagged by `model_type` (`linear`, `lstm`, `bert`);
/// the options of each type are defined by that type, with its defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "model_type", rename_all = "lowercase")]
pub enum ModelConfig {
    Linear(linear::LinearOptions),
    Lstm(lstm::LstmOptions),
    Bert(bert::BertOptions),
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Linear(Default::default())
    }
}

/// Settings of a run that every model type shares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSettings {
    /// Seed of the initialisation, shuffling and dropout.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
}

impl ModelConfig {
    /// The `model_type` name.
    pub fn model_type(&self) -> &'static str {
        match self {
            ModelConfig::Linear(_) => linear::MODEL_TYPE,
            ModelConfig::Lstm(_) => lstm::MODEL_TYPE,
            ModelConfig::Bert(_) => bert::MODEL_TYPE,
        }
    }

    /// Passes over the training data.
    pub fn epochs(&self) -> usize {
        match self {
            ModelConfig::Linear(o) => o.epochs,
            ModelConfig::Lstm(o) => o.epochs,
            ModelConfig::Bert(o) => o.epochs,
        }
    }

    /// The trainer of this model type on `train` and `validation` (text, label index into
    /// `labels`), initialised from `run.seed`.
    pub fn trainer(
        &self,
        run: RunSettings,
        labels: &[String],
        train: &[(&str, usize)],
        validation: &[(&str, usize)],
    ) -> Result<Box<dyn Trainable>, ModelError> {
        Ok(match self {
            ModelConfig::Linear(o) => Box::new(linear::LinearTrainer::new(
                &o.model_config,
                &o.sgd(run),
                labels,
                train,
                validation,
            )?),
            ModelConfig::Lstm(o) => Box::new(lstm::LstmTrainer::new(
                &o.model_config,
                &o.adamw(run),
                labels,
                train,
                validation,
            )?),
            ModelConfig::Bert(o) => Box::new(bert::BertTrainer::new(
                &o.model_path,
                &o.model_config,
                &o.adamw(run),
                labels,
                train,
                validation,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tag_picks_the_type_and_each_type_fills_its_own_defaults() {
        let c: ModelConfig =
            serde_json::from_str(r#"{"model_type": "lstm", "epochs": 2}"#).unwrap();
        let ModelConfig::Lstm(o) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(o.epochs, 2);
        assert_eq!(o.batch_size, lstm::LstmOptions::default().batch_size);
        assert_eq!(c.model_type(), "lstm");
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["model_type"], "lstm");
        assert_eq!(serde_json::from_value::<ModelConfig>(json).unwrap(), c);
        let err =
            serde_json::from_str::<ModelConfig>(r#"{"model_type": "linear", "pooling": "cls"}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("pooling"), "{err}");
        assert_eq!(ModelConfig::default().epochs(), 25);
    }
}
