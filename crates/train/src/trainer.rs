//! What the driver's epoch loop needs from a model type's trainer ([`EpochTrainer`]): run an
//! epoch, predict the validation set, save the model, and capture/restore its optimizer state
//! for checkpoints. Every model type that trains in epochs implements it; the driver adds
//! checkpoints, `--resume`, early stopping and the best-epoch model on top, once for all.

use std::path::Path;

use taxon_core::model::TextClassifier;
use taxon_models::bert;
use taxon_models::linear::{EpochReport, LinearModel, LinearTrainer, SgdState, TrainObserver};
use taxon_models::lstm::{LstmModel, LstmState, LstmTrainer};

use crate::error::TrainError;

/// A model in training, advanced one epoch at a time.
pub trait EpochTrainer {
    /// Epochs finished so far (restored ones included).
    fn epochs_done(&self) -> usize;
    /// Runs one more epoch and reports it (also to `observer`).
    fn run_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochReport, TrainError>;
    /// Arg-max label index of every validation example after the last epoch, in order.
    fn validation_predictions(&self) -> Vec<usize>;
    /// Writes the model as it stands into `dir` (a model folder `taxon_models::load` opens).
    fn save_model(&self, dir: &Path) -> Result<(), TrainError>;
    /// A copy of the model as it stands, to be saved by a checkpoint writer thread while
    /// training goes on.
    fn snapshot(&self) -> Box<dyn TextClassifier>;
    /// The optimizer state at this epoch boundary (schedule position, RNG, order, moments).
    fn state(&self) -> Result<serde_json::Value, TrainError>;
    /// Continues from a checkpoint: the model folder `dir` (written by `save_model`) and the
    /// `state` captured with it.
    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), TrainError>;
}

impl EpochTrainer for LinearTrainer {
    fn epochs_done(&self) -> usize {
        LinearTrainer::epochs_done(self)
    }

    fn run_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochReport, TrainError> {
        Ok(LinearTrainer::run_epoch(self, observer))
    }

    fn validation_predictions(&self) -> Vec<usize> {
        LinearTrainer::validation_predictions(self).to_vec()
    }

    fn save_model(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(self.model().save(dir)?)
    }

    fn snapshot(&self) -> Box<dyn TextClassifier> {
        Box::new(self.model())
    }

    fn state(&self) -> Result<serde_json::Value, TrainError> {
        serde_json::to_value(LinearTrainer::state(self)).map_err(|e| TrainError::Checkpoint {
            path: Default::default(),
            message: format!("serializing the SGD state: {e}"),
        })
    }

    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), TrainError> {
        let state: SgdState =
            serde_json::from_value(state.clone()).map_err(|e| TrainError::Checkpoint {
                path: dir.join(crate::checkpoint::STATE_JSON),
                message: format!("field `trainer`: not a linear SGD state: {e}"),
            })?;
        let model = LinearModel::load(dir)?;
        Ok(LinearTrainer::restore(self, &model, &state)?)
    }
}

impl EpochTrainer for LstmTrainer {
    fn epochs_done(&self) -> usize {
        LstmTrainer::epochs_done(self)
    }

    fn run_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochReport, TrainError> {
        Ok(LstmTrainer::run_epoch(self, observer)?)
    }

    fn validation_predictions(&self) -> Vec<usize> {
        LstmTrainer::validation_predictions(self).to_vec()
    }

    fn save_model(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(self.model().save(dir)?)
    }

    fn snapshot(&self) -> Box<dyn TextClassifier> {
        Box::new(self.model())
    }

    fn state(&self) -> Result<serde_json::Value, TrainError> {
        serde_json::to_value(LstmTrainer::state(self)).map_err(|e| TrainError::Checkpoint {
            path: Default::default(),
            message: format!("serializing the AdamW state: {e}"),
        })
    }

    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), TrainError> {
        let state: LstmState =
            serde_json::from_value(state.clone()).map_err(|e| TrainError::Checkpoint {
                path: dir.join(crate::checkpoint::STATE_JSON),
                message: format!("field `trainer`: not an lstm AdamW state: {e}"),
            })?;
        let model = LstmModel::load(dir)?;
        Ok(LstmTrainer::restore(self, &model, &state)?)
    }
}

impl EpochTrainer for bert::BertTrainer {
    fn epochs_done(&self) -> usize {
        bert::BertTrainer::epochs_done(self)
    }

    fn run_epoch(&mut self, observer: &dyn TrainObserver) -> Result<EpochReport, TrainError> {
        Ok(bert::BertTrainer::run_epoch(self, observer)?)
    }

    fn validation_predictions(&self) -> Vec<usize> {
        bert::BertTrainer::validation_predictions(self).to_vec()
    }

    fn save_model(&self, dir: &Path) -> Result<(), TrainError> {
        Ok(self.model().save(dir)?)
    }

    fn snapshot(&self) -> Box<dyn TextClassifier> {
        Box::new(self.model())
    }

    fn state(&self) -> Result<serde_json::Value, TrainError> {
        serde_json::to_value(bert::BertTrainer::state(self)).map_err(|e| TrainError::Checkpoint {
            path: Default::default(),
            message: format!("serializing the AdamW state: {e}"),
        })
    }

    fn restore(&mut self, dir: &Path, state: &serde_json::Value) -> Result<(), TrainError> {
        let state: bert::BertState =
            serde_json::from_value(state.clone()).map_err(|e| TrainError::Checkpoint {
                path: dir.join(crate::checkpoint::STATE_JSON),
                message: format!("field `trainer`: not a bert AdamW state: {e}"),
            })?;
        let model = bert::BertModel::load(dir)?;
        Ok(bert::BertTrainer::restore(self, &model, &state)?)
    }
}
