//! taxon-validate: declarative expectations on a text-classification dataset, named after
//! Great Expectations' (columns, nulls/empties, lengths, label set, distinct labels, class
//! shares, duplicates, train/test leakage, row count), checked in one streaming pass.
//!
//! ```no_run
//! use std::path::Path;
//! let suite = taxon_validate::Suite::load(Path::new("examples/expectations.yaml"))?;
//! let report = taxon_validate::validate_paths(
//!     Path::new("data/train.jsonl"), Some(Path::new("data/test.jsonl")), &suite)?;
//! if !report.success {
//!     for failed in report.failures() {
//!         eprintln!("{}: {}", failed.expectation_type, failed.summary);
//!     }
//! }
//! # Ok::<(), taxon_validate::ValidateError>(())
//! ```

mod engine;
mod error;
mod report;
pub mod suite;

pub use engine::{MAX_DISTINCT, SAMPLE_SIZE, validate_paths, validate_paths_with};
pub use error::ValidateError;
pub use report::{ExpectationResult, Statistics, ValidationReport};
pub use suite::{Expectation, Suite};
