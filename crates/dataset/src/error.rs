//! The one error type of this crate: every variant says what went wrong and where
//! (`path:line` for text formats, `path: row N` for Parquet, or the file for whole-file problems).

use std::path::PathBuf;

use taxon_core::Location;

/// An error reading, analysing or importing a dataset.
///
/// Row-level variants (see [`ReadError::is_row_error`]) can be skipped with
/// [`crate::OnError::Skip`]; the others stop the read whatever the policy.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file could not be opened, read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file's extension does not name a format taxon reads.
    #[error(
        "{}: cannot tell the format from the extension (expected .jsonl, .ndjson, .json, .csv, .tsv or .parquet); pass --format",
        path.display()
    )]
    UnknownFormat { path: PathBuf },

    /// A line or row is not valid UTF-8.
    /// `byte` is 1-based, within the line (JSONL) or within the field (CSV/TSV, `field` set).
    #[error("{at}: {}invalid UTF-8 at byte {byte}: expected UTF-8 text", in_field(.field))]
    InvalidUtf8 {
        at: Location,
        field: Option<String>,
        byte: usize,
    },

    /// A JSONL line is longer than the reader accepts.
    #[error("{at}: line longer than the limit of {limit} bytes ({} MiB): expected one JSON object per line", limit / (1024 * 1024))]
    LineTooLong { at: Location, limit: usize },

    /// A JSONL line is not valid JSON.
    #[error("{at}: malformed JSON: {message}: expected one JSON object per line")]
    MalformedJson { at: Location, message: String },

    /// A JSONL line holds JSON that is not an object.
    #[error("{at}: expected a JSON object, found {found}")]
    NotAnObject { at: Location, found: String },

    /// A required field is absent (or null) in a row.
    #[error("{at}: missing field {field:?}: expected {expected}")]
    MissingField {
        at: Location,
        field: String,
        expected: &'static str,
    },

    /// A field holds a value of the wrong type.
    #[error("{at}: field {field:?}: expected {expected}, found {found}")]
    WrongType {
        at: Location,
        field: String,
        expected: &'static str,
        found: String,
    },

    /// A CSV/TSV record could not be parsed (unequal field counts, bad quoting).
    #[error("{at}: {message}")]
    Csv { at: Location, message: String },

    /// The text or label column named in the options is not in the file.
    #[error(
        "{}: no {role} column {column:?}; columns found: {}",
        path.display(),
        found.join(", ")
    )]
    MissingColumn {
        path: PathBuf,
        role: &'static str,
        column: String,
        found: Vec<String>,
    },

    /// A Parquet column has a type taxon cannot read as text or label.
    #[error(
        "{}: column {column:?} has type {found}: expected {expected}",
        path.display()
    )]
    UnsupportedColumnType {
        path: PathBuf,
        column: String,
        expected: &'static str,
        found: String,
    },

    /// The Parquet file could not be decoded.
    #[error("{}: invalid Parquet data: {message}", path.display())]
    Parquet { path: PathBuf, message: String },

    /// A value given by the caller is out of range (e.g. a test ratio of 1.5).
    #[error("invalid {what} {value:?}: expected {expected}")]
    InvalidArgument {
        what: &'static str,
        value: String,
        expected: &'static str,
    },

    /// A folder to import has no label sub-folders with files.
    #[error("{}: no label folders with files found: expected one sub-folder per label holding text files", path.display())]
    NoLabelFolders { path: PathBuf },

    /// A file to train or evaluate on holds no records.
    #[error("{}: no records", path.display())]
    NoRecords { path: PathBuf },
}

impl ReadError {
    /// True for errors confined to one line or row, which [`crate::OnError::Skip`] skips.
    pub fn is_row_error(&self) -> bool {
        matches!(
            self,
            ReadError::InvalidUtf8 { .. }
                | ReadError::LineTooLong { .. }
                | ReadError::MalformedJson { .. }
                | ReadError::NotAnObject { .. }
                | ReadError::MissingField { .. }
                | ReadError::WrongType { .. }
                | ReadError::Csv { .. }
        )
    }

    /// Where the error sits, when it is confined to one line or row.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ReadError::InvalidUtf8 { at, .. }
            | ReadError::LineTooLong { at, .. }
            | ReadError::MalformedJson { at, .. }
            | ReadError::NotAnObject { at, .. }
            | ReadError::MissingField { at, .. }
            | ReadError::WrongType { at, .. }
            | ReadError::Csv { at, .. } => Some(at),
            _ => None,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ReadError::Io {
            path: path.into(),
            source,
        }
    }
}

fn in_field(field: &Option<String>) -> String {
    match field {
        Some(f) => format!("field {f:?}: "),
        None => String::new(),
    }
}
