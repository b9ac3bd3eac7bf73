//! Reading labelled texts for training and evaluation, through taxon-dataset's streaming
//! readers: JSONL, CSV/TSV and Parquet, with the same `path:line` errors as every other command.

use std::path::Path;

use crate::{DatasetReader, ReadError, ReadOptions};

/// All labelled records of `path` (format from its extension, fields `text` and `label`).
/// A bad row, or a row without a label, is an error at its line: training never silently
/// drops data.
pub fn read_labelled(path: &Path) -> Result<Vec<(String, String)>, ReadError> {
    let opts = ReadOptions {
        label_required: true,
        ..ReadOptions::default()
    };
    let reader = DatasetReader::open(path, &opts)?;
    let mut out = Vec::new();
    for rec in reader {
        let rec = rec?;
        // label_required guarantees a label; an absent one would have been a ReadError.
        let label = rec.label.unwrap_or_default();
        out.push((rec.text, label));
    }
    if out.is_empty() {
        return Err(ReadError::NoRecords {
            path: path.to_path_buf(),
        });
    }
    Ok(out)
}
