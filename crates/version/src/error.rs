//! The error kinds of the versioning crate: [`VersionError`] for everything it does, and
//! [`RemoteError`] for the operations of one remote (which the registry's artifact store uses
//! alone). The bottom of the crate: every other module uses it, it uses none of them.

use std::path::PathBuf;

use taxon_core::Md5Hex;

/// Everything that can go wrong while versioning data or talking to a remote.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "not inside a DVC/taxon repository (no .dvc folder found from {0} upwards); run `dvc init` or `taxon data init`"
    )]
    NotARepo(PathBuf),
    #[error("{path}: {message}")]
    InvalidFile { path: PathBuf, message: String },
    /// A `.dvc` file, manifest or record with a bad or missing field.
    #[error("{path}: field `{field}`: {message}")]
    Malformed {
        path: PathBuf,
        field: String,
        message: String,
    },
    /// Content whose md5 is not the one it is stored under (corrupt, truncated or tampered).
    #[error(
        "{path}: content hash mismatch: expected {expected}, got {actual} (corrupt, truncated or tampered object; refused)"
    )]
    HashMismatch {
        path: PathBuf,
        expected: Md5Hex,
        actual: Md5Hex,
    },
    /// Objects a checkout needs that the cache does not hold; nothing was changed.
    #[error(
        "{} object(s) missing from the cache {cache}: {}; nothing in the workspace was changed (run `taxon data pull` first)",
        missing.len(),
        missing.join(", ")
    )]
    MissingObjects {
        cache: PathBuf,
        missing: Vec<String>,
    },
    /// A path given to a command has no `.dvc` file.
    #[error("{path} is not tracked (no {path}.dvc file); run `taxon data add {path}` first")]
    NotTracked { path: PathBuf },
    /// A folder manifest entry that would write outside its folder.
    #[error(
        "{manifest}: unsafe relpath {relpath:?} (absolute, empty or containing ..); refusing to write outside the folder"
    )]
    UnsafeRelpath { manifest: PathBuf, relpath: String },
    #[error(
        "{path}: output uses hash {hash:?}; taxon reads DVC 3 outputs (`hash: md5`); run `dvc cache migrate` and re-add"
    )]
    UnsupportedHash { path: PathBuf, hash: String },
    #[error(
        "no recorded version of {path} matches {id:?}; list them with `taxon data versions {path}`"
    )]
    UnknownVersion { path: String, id: String },
    #[error("version {id:?} of {path} is ambiguous: it is a prefix of {}; give more digits", candidates.join(", "))]
    AmbiguousVersion {
        path: String,
        id: String,
        candidates: Vec<String>,
    },
    #[error(transparent)]
    Remote(#[from] RemoteError),
    #[error(transparent)]
    Read(#[from] taxon_dataset::ReadError),
    #[error("{0}")]
    Other(String),
}

/// Errors talking to a remote. Messages name the remote and the object; never credentials.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("remote {remote:?}: {message}")]
    Config { remote: String, message: String },
    #[error("remote {remote:?}: {op} {object} failed")]
    Store {
        remote: String,
        op: &'static str,
        object: String,
        #[source]
        source: object_store::Error,
    },
    #[error("remote {remote:?}: object {object} is not on the remote")]
    Missing { remote: String, object: Md5Hex },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "remote {remote:?}: object {object} is corrupt or truncated: expected md5 {object}, got {actual} ({size} bytes received)"
    )]
    HashMismatch {
        remote: String,
        object: Md5Hex,
        actual: Md5Hex,
        size: u64,
    },
    #[error(
        "remote {remote:?}: object {object} cannot be decrypted (wrong key, or tampered data): {message}"
    )]
    Decrypt {
        remote: String,
        object: Md5Hex,
        message: String,
    },
    #[error("remote {remote:?}: encryption key: {message}")]
    Key { remote: String, message: String },
    #[error("remote {remote:?}: transfer task failed: {message}")]
    Task { remote: String, message: String },
}

pub type Result<T, E = VersionError> = std::result::Result<T, E>;

/// Attaches a path to an I/O error.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| VersionError::Io {
            path: path.into(),
            source,
        })
    }
}
