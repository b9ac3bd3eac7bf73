//! Reading labelled texts for training and evaluation, through taxon-dataset's streaming
//! readers: JSONL, CSV/TSV and Parquet, with the same `path:line` errors as every other command.
//! A file can be read once for both its records and its md5 (DVC's content hash, computed from
//! the same bytes), with progress reported from the reader's byte position.

use std::path::Path;

use taxon_core::Md5Hex;

use crate::{DatasetReader, ReadError, ReadOptions};

/// (text, label) records in file order.
type Rows = Vec<(String, String)>;

/// All labelled records of `path` (format from its extension, fields `text` and `label`).
/// A bad row, or a row without a label, is an error at its line: training never silently
/// drops data.
pub fn read_labelled(path: &Path) -> Result<Rows, ReadError> {
    read_labelled_with(path, false, &|_, _| {}).map(|(rows, _)| rows)
}

/// [`read_labelled`], with the md5 of the file's bytes computed while reading when `hash` (for
/// the formats read as a stream; `None` for Parquet), and `progress(bytes read, file bytes)`
/// called after each batch.
pub fn read_labelled_with(
    path: &Path,
    hash: bool,
    progress: &dyn Fn(u64, u64),
) -> Result<(Rows, Option<Md5Hex>), ReadError> {
    let opts = ReadOptions {
        label_required: true,
        hash,
        ..ReadOptions::default()
    };
    let total = std::fs::metadata(path).map_or(0, |m| m.len());
    let mut reader = DatasetReader::open(path, &opts)?;
    let mut rows = Vec::new();
    while let Some(batch) = reader.next_batch()? {
        // label_required guarantees a label; an absent one would have been a ReadError.
        rows.extend(
            batch
                .into_iter()
                .map(|rec| (rec.text, rec.label.unwrap_or_default())),
        );
        progress(reader.bytes_read(), total);
    }
    if rows.is_empty() {
        return Err(ReadError::NoRecords {
            path: path.to_path_buf(),
        });
    }
    Ok((rows, reader.content_md5()))
}
