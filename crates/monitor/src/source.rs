//! Current profiles from what production saw: a dataset file run through the model.
//! (Prediction logs are read in [`crate::log`].)

use std::path::Path;

use taxon_core::model::TextClassifier;
use taxon_dataset::{DatasetReader, ReadOptions};

use crate::error::MonitorError;
use crate::profile::Profile;

/// Runs `model` over every text of the dataset file `path` (JSONL, CSV/TSV or Parquet; labels
/// optional), streaming in batches of `opts.batch_size`, and returns the profile of its
/// predictions: a current profile to compare with `reference` (its projection of embeddings),
/// or, without one, a new reference. `progress` gets the bytes read so far.
pub fn profile_file(
    model: &dyn TextClassifier,
    path: &Path,
    opts: &ReadOptions,
    reference: Option<&Profile>,
    progress: &mut dyn FnMut(u64),
) -> Result<Profile, MonitorError> {
    let desc = model.describe();
    let source = path.display().to_string();
    let mut profile = match reference {
        Some(r) => Profile::like(r, source),
        None => Profile::new(&desc.model_type, model.labels(), source),
    };
    let opts = ReadOptions {
        label_required: false,
        ..opts.clone()
    };
    let mut reader = DatasetReader::open(path, &opts)?;
    while let Some(batch) = reader.next_batch()? {
        let texts: Vec<&str> = batch.iter().map(|r| r.text.as_str()).collect();
        profile.observe_texts(model, &texts, 256)?;
        progress(reader.bytes_read());
    }
    Ok(profile)
}
