//! Reading labelled texts for training and evaluation, through taxon-dataset's streaming
//! readers: JSONL, CSV/TSV and Parquet, with the same `path:line` errors as every other command.
//! A training file is read once: its md5 (DVC's content hash) is computed from the same bytes,
//! and its progress reported from the reader's byte position.

use std::path::Path;

use taxon_core::Md5Hex;
use taxon_dataset::{DatasetReader, ReadOptions};
use taxon_models::training::TrainObserver;

use crate::error::TrainError;

/// (text, label) records in file order.
type Rows = Vec<(String, String)>;

/// The labelled records of a file and the md5 of its bytes.
#[derive(Clone, Debug)]
pub struct Labelled {
    /// (text, label) per record, in file order.
    pub rows: Vec<(String, String)>,
    pub md5: Md5Hex,
}

/// All labelled records of `path` (format from its extension, fields `text` and `label`).
/// A bad row, or a row without a label, is an error at its line: training never silently
/// drops data.
pub fn read_labelled(path: &Path) -> Result<Vec<(String, String)>, TrainError> {
    read(path, false, &()).map(|(rows, _)| rows)
}

/// [`read_labelled`], with the file's md5 computed while reading (a second read only for
/// Parquet, which is not read as a stream), and progress reported to `observer`.
pub fn read_hashed(path: &Path, observer: &dyn TrainObserver) -> Result<Labelled, TrainError> {
    let (rows, md5) = read(path, true, observer)?;
    let md5 = match md5 {
        Some(md5) => md5,
        None => taxon_version::hashing::md5_file(path)?.0,
    };
    Ok(Labelled { rows, md5 })
}

/// The records of `path`, and their md5 when `hash` and the format streams its bytes.
fn read(
    path: &Path,
    hash: bool,
    observer: &dyn TrainObserver,
) -> Result<(Rows, Option<Md5Hex>), TrainError> {
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
        observer.on_read(path, reader.bytes_read(), total);
    }
    if rows.is_empty() {
        return Err(TrainError::Dataset {
            path: path.to_path_buf(),
            message: "no records".into(),
        });
    }
    Ok((rows, reader.content_md5()))
}
