//! The record kept for every version of a tracked dataset.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{DatasetStats, Md5Hex};

/// One version of one tracked path: its content hash, when it was made, and what it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionRecord {
    /// The content hash (`.dir` suffixed for folders): the version id.
    pub id: Md5Hex,
    /// The tracked path, relative to the repository root, with `/` separators.
    pub path: String,
    pub created_at: DateTime<Utc>,
    /// Total bytes and number of files.
    pub size: u64,
    pub nfiles: u64,
    /// Column names seen in the data (for folders: of the first readable data file).
    #[serde(default)]
    pub features: Vec<String>,
    /// Statistics of the data, when it is in a format taxon reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<DatasetStats>,
    /// Free-form note (`taxon data add -m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}
