//! One labelled (or unlabelled) text, and where it came from.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Where a record or an error sits in its source: `path:line` for text formats, `path:row N`
/// for Parquet (row numbers are 1-based in both).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub path: Arc<PathBuf>,
    /// 1-based line (JSONL, CSV) or row (Parquet).
    pub line: u64,
    /// True when `line` counts rows rather than text lines.
    pub is_row: bool,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_row {
            write!(f, "{}: row {}", self.path.display(), self.line)
        } else {
            write!(f, "{}:{}", self.path.display(), self.line)
        }
    }
}

/// A text with its label. The label is `None` in data meant for prediction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}
