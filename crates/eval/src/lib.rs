//! The evaluate stage: classification metrics (accuracy, macro-F1, per-class P/R/F1, confusion
//! matrix), calibration (ECE, temperature scaling), the evaluation of a model on labelled data
//! with its self-contained HTML report, and the before/after measurements of `taxon model
//! optimize`.
//!
//! It sees models only through [`taxon_core::model::TextClassifier`], so it sits below the
//! model code and training: the train driver scores its validation split with [`Metrics`].

pub mod calibration;
pub mod metrics;
pub mod optimize;
pub mod report;

pub use metrics::{ClassMetrics, Metrics};
pub use report::{EvalError, EvalOptions, Evaluation, METRICS_JSON, evaluate};
