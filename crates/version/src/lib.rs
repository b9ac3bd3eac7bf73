//! DVC-compatible versioning: md5 content hashes, the `.dvc/cache` layout, `PATH.dvc` pointer
//! files, remotes (local folder, S3) read from DVC's own config, and taxon's version records.
//!
//! Everything written here is readable by the real `dvc` CLI, and everything `dvc` writes is
//! readable here; the version records (statistics, content diff) are taxon's addition.

// `VersionError::Remote(RemoteError)` is part of the crate's public contract (other code builds
// it directly), and errors are cold paths next to hashing gigabytes: keep it unboxed.
#![allow(clippy::result_large_err)]

// Modules in layers; each uses only those of the layers above it (no cycles):
//
//   error, repo                     errors; finding `.dvc/` and `.taxon/`
//   hashing, dvcfile, config        md5 and the state file; `PATH.dvc` files; DVC's config
//   cache, versions                 the content-addressed cache; `.taxon/versions.jsonl`
//   workspace                       a tracked path's hash (state file, into the cache or not)
//   add, checkout, status           the local commands
//   remote                          one remote's object operations
//   transfer                        push and pull
pub mod error;
pub mod repo;

pub mod config;
pub mod dvcfile;
pub mod hashing;

pub mod cache;
pub mod versions;

pub mod workspace;

pub mod add;
pub mod checkout;
pub mod status;

pub mod remote;
pub mod transfer;

pub use error::{RemoteError, Result, VersionError};
pub use repo::Repo;
