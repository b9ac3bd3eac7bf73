//! The load generator's errors: every one is a usage mistake (bad flag, unreadable file,
//! unknown process) found before the first request is sent.

use std::path::PathBuf;

/// What went wrong while setting up a run; the binary exits 2 on any of them.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--url` is not an `http://host[:port]/path` URL.
    #[error("bad --url {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// Why it was refused.
        reason: String,
    },
    /// The URL's host name does not resolve to an address.
    #[error("cannot resolve the host of --url {url:?}: {source}")]
    Resolve {
        /// The URL as given.
        url: String,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A `--header` is not `Name: value` or not a valid HTTP header.
    #[error("bad --header {header:?}: {reason} (expected 'Name: value')")]
    Header {
        /// The header as given.
        header: String,
        /// Why it was refused.
        reason: String,
    },
    /// A duration flag is not a number with an optional unit.
    #[error("bad duration {value:?}: {reason} (use e.g. 30s, 500ms, 2m)")]
    Duration {
        /// The value as given.
        value: String,
        /// Why it was refused.
        reason: String,
    },
    /// The texts file cannot be read.
    #[error("reading --texts {}: {source}", path.display())]
    TextsRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the texts file is not UTF-8.
    #[error("--texts {}:{line}: not valid UTF-8", path.display())]
    TextsEncoding {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
    },
    /// The texts file has no non-empty line.
    #[error("--texts {}: no non-empty line; put one text per line", path.display())]
    TextsEmpty {
        /// The file.
        path: PathBuf,
    },
    /// `--track-field` is not a dotted path such as `model.version`.
    #[error("bad --track-field {0:?}: use a dotted path of JSON keys such as model.version")]
    TrackField(String),
    /// `--server-pid` names no readable process.
    #[error("--server-pid {pid}: cannot read /proc/{pid}/status: {source}")]
    ServerPid {
        /// The process id.
        pid: u32,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A numeric setting is out of range (zero connections, a non-positive rate, ...).
    #[error("{0}")]
    Invalid(String),
}
