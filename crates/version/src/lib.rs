//! DVC-compatible versioning: md5 content hashes, the `.dvc/cache` layout, `PATH.dvc` pointer
//! files, remotes (local folder, S3) read from DVC's own config, and taxon's version records.
//!
//! Everything written here is readable by the real `dvc` CLI, and everything `dvc` writes is
//! readable here; the version records (statistics, content diff) are taxon's addition.

// `StoreError::Remote(RemoteError)` is part of the crate's public contract (other code builds
// it directly), and errors are cold paths next to hashing gigabytes: keep it unboxed.
#![allow(clippy::result_large_err)]

pub mod error;
pub mod repo;

// Local versioning: hashing, cache, pointer files, add/checkout/status, version records.
pub mod add;
pub mod cache;
pub mod checkout;
pub mod dvcfile;
pub mod hashing;
pub mod status;
pub mod versions;

// Remotes: configuration, object-store access, parallel push/pull.
pub mod config;
pub mod remote;
pub mod transfer;

pub use error::{Result, StoreError};
pub use repo::Repo;
