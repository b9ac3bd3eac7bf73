//! The train stage: a YAML training config with flag overrides, and the driver that reads data,
//! takes a validation split, trains the configured model type with checkpoints, resume and
//! early stopping, scores each epoch on the validation split (taxon-eval's metrics), and writes
//! the model folder and `metrics.json`.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod driver;
pub mod error;

pub use config::{ConfigFile, ConfigKeys, ModelType, Monitor, TrainConfig};
pub use driver::{METRICS_JSON, RunOptions, TrainSummary, train, train_with};
pub use error::TrainError;
