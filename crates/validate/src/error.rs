//! The one error type of taxon-validate: a bad suite or unreadable data (a *failed*
//! expectation is not an error; it is a result with `success: false`).

use std::path::PathBuf;

/// Why validation could not run.
#[derive(Debug, thiserror::Error)]
pub enum ValidateError {
    /// The suite file could not be read.
    #[error("cannot read expectation suite {}: {source}", path.display())]
    SuiteIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The suite is not valid YAML or has an unknown top-level key.
    #[error("{}: invalid expectation suite: {message}", path.display())]
    SuiteSyntax { path: PathBuf, message: String },

    /// An expectation has an unknown type, unknown or missing kwargs, or kwargs out of range.
    #[error("{}: expectation #{index} ({expectation_type}): {message}", path.display())]
    Expectation {
        path: PathBuf,
        /// 1-based position in the suite's `expectations` list.
        index: usize,
        expectation_type: String,
        message: String,
    },

    /// An expectation compares against test data, but none was given.
    #[error("{}: expectation #{index} ({expectation_type}) needs test data: pass --test FILE or set `test_data:` in the suite", path.display())]
    MissingTestData {
        path: PathBuf,
        index: usize,
        expectation_type: String,
    },

    /// The data (or test data) could not be read.
    #[error("cannot read {role} {}: {source}", path.display())]
    Read {
        role: &'static str,
        path: PathBuf,
        #[source]
        source: Box<taxon_dataset::ReadError>,
    },
}
