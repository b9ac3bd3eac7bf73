//! The model registry: model versions with lineage (run, data version, metrics, labels, input
//! limits, code version), aliases (`staging`, `production`, any name) with an audit history,
//! a promotion gate on `production`, model files in a content-addressed object store (a local
//! folder or S3/MinIO), and metadata in SQLite or a shared PostgreSQL database (taxon-db).
//!
//! ```text
//! RunRecord --register--> files checked, uploaded by md5 --> version row (one transaction)
//! alias set --gate (production)--> aliases + alias_history (one transaction)
//! resolve(name, "production") --materialize--> verified folder in the local cache
//! ```

// Errors carry structured fields (versions, files, both hashes) that callers match on, and are
// cold next to hashing and transferring model files: keep them unboxed, as taxon-version does.
#![allow(clippy::result_large_err)]

pub mod aliases;
pub mod artifacts;
mod check;
pub mod error;
pub mod gate;
pub mod materialize;
pub mod names;
pub mod registry;
pub mod schema;
pub mod types;

#[cfg(test)]
mod tests;

pub use error::RegistryError;
pub use gate::{DEFAULT_GATE_METRICS, GATED_ALIASES, GateRefusal};
pub use names::{DEFAULT_MODEL, LATEST, split_ref};
pub use registry::{
    ARTIFACTS_ENV, DB_ENV, Registry, TEST_ABORT_AFTER_UPLOAD_ENV, default_artifacts_url,
    default_db_path,
};
pub use types::{AliasChange, AliasOptions, ModelVersion, RegisterOptions};
