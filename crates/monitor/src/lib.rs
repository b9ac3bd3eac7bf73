//! The monitor stage: what a served model's predictions look like against what they looked
//! like on held-out data when it was trained.
//!
//! [`profile`] builds the reference profile (bounded, mergeable [`sketch`]es of each
//! feature) stored in every model folder; [`drift`] compares a current profile with it
//! (normalized [`wasserstein`] distance for numeric features, a [`chisq`] test for the
//! predicted labels; [`projection`] reduces a `bert` model's pooled embeddings to a few
//! numeric features) and [`report`] draws the comparison as HTML; [`log`] is the prediction
//! log the server writes and `taxon monitor` reads, [`live`] the live accuracy of feedback.
//! It sees models only through `taxon_core::model::TextClassifier` and knows nothing of HTTP:
//! `taxon-serve` feeds it and the CLI drives it.

pub mod chisq;
pub mod drift;
pub mod error;
pub mod live;
pub mod log;
pub mod profile;
pub mod projection;
pub mod report;
pub mod sketch;
pub mod source;
pub mod wasserstein;

pub use error::MonitorError;
pub use profile::{Observation, PROFILE_JSON, Profile};
