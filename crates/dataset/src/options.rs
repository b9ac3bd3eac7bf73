//! What to read and how: the file format, the text and label field names, and the policy for
//! bad rows.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ReadError;

/// A dataset file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format named by a file's extension (case-insensitive): `.jsonl`, `.ndjson`, `.json`
    /// (read as JSON Lines), `.csv`, `.tsv`, `.parquet`; `None` for anything else.
    pub fn from_path(p: &Path) -> Option<Format> {
        let ext = p.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "jsonl" | "ndjson" | "json" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            "tsv" => Some(Format::Tsv),
            "parquet" => Some(Format::Parquet),
            _ => None,
        }
    }

    /// The lower-case name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
            Format::Tsv => "tsv",
            Format::Parquet => "parquet",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = ReadError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "jsonl" | "ndjson" | "json" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "tsv" => Ok(Format::Tsv),
            "parquet" => Ok(Format::Parquet),
            _ => Err(ReadError::InvalidArgument {
                what: "format",
                value: s.to_string(),
                expected: "one of jsonl, csv, tsv, parquet",
            }),
        }
    }
}

/// What to do with a row that cannot be read (malformed, missing field, wrong type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop at the first bad row with an error naming it.
    #[default]
    Fail,
    /// Count the bad row, keep a sample of the first errors, and go on.
    Skip,
}

impl FromStr for OnError {
    type Err = ReadError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "fail" => Ok(OnError::Fail),
            "skip" => Ok(OnError::Skip),
            _ => Err(ReadError::InvalidArgument {
                what: "on-error policy",
                value: s.to_string(),
                expected: "fail or skip",
            }),
        }
    }
}

impl fmt::Display for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OnError::Fail => "fail",
            OnError::Skip => "skip",
        })
    }
}

/// How to read a dataset file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// The format; `None` picks it from the file extension.
    pub format: Option<Format>,
    /// The field (JSONL key, CSV/TSV header, Parquet column) holding the text.
    pub text_field: String,
    /// The field holding the label.
    pub label_field: String,
    /// When true, a row without a label is an error; when false its label is `None`.
    pub label_required: bool,
    /// What to do with bad rows.
    pub on_error: OnError,
    /// Records per batch from [`crate::DatasetReader::next_batch`] (at least 1).
    pub batch_size: usize,
    /// Compute the md5 of the bytes read, for [`crate::DatasetReader::content_md5`] (JSONL and
    /// CSV/TSV), so a file read for its records needs no second read to be hashed.
    #[serde(default)]
    pub hash: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            format: None,
            text_field: "text".to_string(),
            label_field: "label".to_string(),
            label_required: true,
            on_error: OnError::Fail,
            batch_size: 4096,
            hash: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_from_extension() {
        assert_eq!(
            Format::from_path(Path::new("a/b.jsonl")),
            Some(Format::Jsonl)
        );
        assert_eq!(
            Format::from_path(Path::new("b.NDJSON")),
            Some(Format::Jsonl)
        );
        assert_eq!(Format::from_path(Path::new("b.json")), Some(Format::Jsonl));
        assert_eq!(Format::from_path(Path::new("b.csv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("b.tsv")), Some(Format::Tsv));
        assert_eq!(
            Format::from_path(Path::new("b.parquet")),
            Some(Format::Parquet)
        );
        assert_eq!(Format::from_path(Path::new("b.txt")), None);
        assert_eq!(Format::from_path(Path::new("noext")), None);
    }

    #[test]
    fn policies_and_formats_parse() {
        assert_eq!("skip".parse::<OnError>().unwrap(), OnError::Skip);
        assert_eq!("FAIL".parse::<OnError>().unwrap(), OnError::Fail);
        let err = "ignore".parse::<OnError>().unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid on-error policy \"ignore\": expected fail or skip"
        );
        assert_eq!("tsv".parse::<Format>().unwrap(), Format::Tsv);
        assert!("xlsx".parse::<Format>().is_err());
    }
}
