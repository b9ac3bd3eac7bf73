//! The train and evaluate stages: a YAML training config with flag overrides, the driver that
//! reads data, takes a validation split, trains the configured model type and writes its folder
//! and `metrics.json`, and the evaluation metrics (accuracy, macro-F1, per-class P/R/F1,
//! confusion matrix), with checkpoints, resume and early stopping; calibration (ECE, temperature
//! scaling) and the self-contained HTML evaluation report.

pub mod calibration;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod driver;
pub mod error;
pub mod metrics;
pub mod report;

pub use config::{ConfigFile, ConfigKeys, ModelType, Monitor, TrainConfig};
pub use driver::{EvalReport, METRICS_JSON, RunOptions, TrainSummary, evaluate, train, train_with};
pub use error::TrainError;
pub use metrics::{ClassMetrics, Metrics};
