//! Reading labelled texts for training and evaluation.
//!
//! Reads JSONL (`{"text": ..., "label": ...}` per line) directly; switch to taxon-dataset's
//! streaming readers (CSV, Parquet) once that crate's API settles.

use std::io::{BufRead, BufReader};
use std::path::Path;

use taxon_core::Record;

use crate::error::TrainError;

/// All labelled records of `path`. A record without a label is an error at its line.
pub fn read_labelled(path: &Path) -> Result<Vec<(String, String)>, TrainError> {
    let file = std::fs::File::open(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record = serde_json::from_str(&line).map_err(|e| TrainError::Data {
            path: path.to_path_buf(),
            line: line_no,
            message: format!("not a {{\"text\", \"label\"}} JSON object: {e}"),
        })?;
        let Some(label) = rec.label else {
            return Err(TrainError::Data {
                path: path.to_path_buf(),
                line: line_no,
                message: "field `label` is missing; training and evaluation need labels".into(),
            });
        };
        out.push((rec.text, label));
    }
    if out.is_empty() {
        return Err(TrainError::Dataset {
            path: path.to_path_buf(),
            message: "no records".into(),
        });
    }
    Ok(out)
}
