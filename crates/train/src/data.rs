//! The training data of a run, read once ([`taxon_dataset::read_labelled_with`]): its records,
//! its md5 (DVC's content hash) computed from the same bytes, and the reading progress
//! reported to the run's observer.

use std::path::Path;

use taxon_core::Md5Hex;
use taxon_dataset::read_labelled_with;
use taxon_models::training::TrainObserver;

use crate::error::TrainError;

/// The labelled records of a file and the md5 of its bytes.
#[derive(Clone, Debug)]
pub struct Labelled {
    /// (text, label) per record, in file order.
    pub rows: Vec<(String, String)>,
    pub md5: Md5Hex,
}

/// The labelled records of `path` with the file's md5 computed while reading (a second read
/// only for Parquet, which is not read as a stream), and progress reported to `observer`.
pub fn read_hashed(path: &Path, observer: &dyn TrainObserver) -> Result<Labelled, TrainError> {
    let (rows, md5) = read_labelled_with(path, true, &|read, total| {
        observer.on_read(path, read, total)
    })?;
    let md5 = match md5 {
        Some(md5) => md5,
        None => taxon_version::hashing::md5_file(path)?.0,
    };
    Ok(Labelled { rows, md5 })
}
