//! The one error type of taxon-fernet.

use std::io;
use std::path::{Path, PathBuf};

/// Everything that can go wrong loading a key or encrypting/decrypting a stream.
#[derive(Debug, thiserror::Error)]
pub enum FernetError {
    /// The key text is not 32 bytes of URL-safe base64.
    #[error(
        "invalid Fernet key from {origin}: {reason} (a key is 32 bytes of URL-safe base64, 44 characters; make one with `taxon data keygen`)"
    )]
    InvalidKey { origin: String, reason: String },

    /// Neither the environment variable nor a key file provided a key.
    #[error("no Fernet key: set {env_var} or pass a key file (make one with `taxon data keygen`)")]
    KeyMissing { env_var: String },

    /// A token failed authentication or decryption: wrong key, tampered or corrupted data.
    #[error("invalid Fernet token at {}: wrong key, or the data was tampered with or corrupted", at(.path.as_deref(), *.line))]
    InvalidToken { path: Option<PathBuf>, line: u64 },

    /// A line longer than any token taxon would read; not a Fernet token file.
    #[error("line {} is longer than {limit} bytes: not a file of Fernet tokens", at(.path.as_deref(), *.line))]
    TokenTooLong {
        path: Option<PathBuf>,
        line: u64,
        limit: usize,
    },

    /// The stream ended where an encrypted stream cannot end.
    #[error("encrypted data is truncated after {}: {reason}", at(.path.as_deref(), *.line))]
    Truncated {
        path: Option<PathBuf>,
        /// The last complete line read (0: nothing was read).
        line: u64,
        reason: &'static str,
    },

    /// A chunk size of zero.
    #[error("chunk size must be at least 1 byte (got {chunk})")]
    InvalidChunk { chunk: usize },

    /// Reading or writing a named file failed.
    #[error("cannot {op} {}: {source}", .path.display())]
    File {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Reading or writing an unnamed stream failed.
    #[error("I/O error while {op}: {source}")]
    Stream {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// `path:line` when the path is known, `line N` otherwise.
fn at(path: Option<&Path>, line: u64) -> String {
    match path {
        Some(p) => format!("{}:{line}", p.display()),
        None => format!("line {line}"),
    }
}

impl FernetError {
    /// Attaches a file path to errors that name a line of an unnamed stream.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            Self::InvalidToken { path: None, line } => Self::InvalidToken {
                path: Some(file.to_path_buf()),
                line,
            },
            Self::TokenTooLong {
                path: None,
                line,
                limit,
            } => Self::TokenTooLong {
                path: Some(file.to_path_buf()),
                line,
                limit,
            },
            Self::Truncated {
                path: None,
                line,
                reason,
            } => Self::Truncated {
                path: Some(file.to_path_buf()),
                line,
                reason,
            },
            other => other,
        }
    }
}
