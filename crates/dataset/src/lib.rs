//! taxon-dataset: streaming dataset readers (JSONL, CSV/TSV, Parquet) in bounded memory, the
//! labelled rows that training and evaluation read ([`read_labelled`]), and the data-level
//! analyses built on them: statistics, content diff, and the seeded stratified import of label
//! folders.
//!
//! Every reader yields [`taxon_core::Record`]s in batches; every error names where it happened
//! (`path:line` or `path: row N`) and what was expected.

pub mod diff;
mod error;
mod labelled;
mod options;
mod reader;
pub mod split;
pub mod stats;
pub mod text;

pub use diff::ContentDiff;
pub use error::ReadError;
pub use labelled::{read_labelled, read_labelled_with};
pub use options::{Format, OnError, ReadOptions};
pub use reader::{DatasetReader, MAX_LINE_BYTES, SKIPPED_SAMPLE_LIMIT};
pub use split::{SplitSummary, import_label_folders};
pub use stats::{StatsBuilder, compute_stats};
