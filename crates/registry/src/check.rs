//! The checks a run's model folder passes before it is registered: every `model/*` artifact
//! still on disk with the md5 and size the run recorded, and a `model.json` that agrees with
//! those files. Materializing reuses the same agreement check against the version record.

use std::path::{Component, Path, PathBuf};

use taxon_core::Md5Hex;
use taxon_core::model::{MODEL_FORMAT_VERSION, MODEL_JSON, ModelDescription, ModelFile};
use taxon_track::RunRecord;

use crate::artifacts::md5_file;
use crate::error::RegistryError;

/// True when `rel` is a plain relative path inside a folder (no `..`, `.`, root or prefix).
pub(crate) fn is_safe_rel(rel: &str) -> bool {
    !rel.is_empty()
        && Path::new(rel)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// What registering needs from a run's model files.
pub(crate) type CheckedFiles = (Vec<ModelFile>, Vec<(PathBuf, Md5Hex)>, ModelDescription);

/// Checks the run's `model/*` artifacts on disk against the run's record and `model.json`
/// against them; returns the files (relative names), what to upload, and the description.
pub(crate) fn check_model_files(run: &RunRecord) -> Result<CheckedFiles, RegistryError> {
    let run_id = &run.summary.id;
    let refuse = |reason: String| RegistryError::NotRegistrable {
        run_id: run_id.clone(),
        reason,
    };
    let mut files = Vec::new();
    let mut uploads = Vec::new();
    let mut model_json = None;
    for a in &run.artifacts {
        let Some(rel) = a.name.strip_prefix("model/") else {
            continue;
        };
        if !is_safe_rel(rel) {
            return Err(refuse(format!(
                "artifact {:?} is not a plain path inside the model folder",
                a.name
            )));
        }
        let expected: Md5Hex = a
            .md5
            .parse()
            .map_err(|e| refuse(format!("artifact {}: {e}", a.name)))?;
        let path = PathBuf::from(&a.path);
        let (actual, size) = md5_file(&path).map_err(|e| {
            refuse(format!(
                "model file {rel} cannot be read where the run recorded it: {e}"
            ))
        })?;
        if actual != expected || size != a.size {
            return Err(RegistryError::ArtifactChanged {
                run_id: run_id.clone(),
                file: rel.to_string(),
                path: a.path.clone(),
                expected: format!("{expected} ({} bytes)", a.size),
                actual: format!("{actual} ({size} bytes)"),
            });
        }
        if rel == MODEL_JSON {
            model_json = Some((path.clone(), expected.clone()));
        }
        files.push(ModelFile {
            name: rel.to_string(),
            bytes: size,
            md5: expected.clone(),
        });
        uploads.push((path, expected));
    }
    if files.is_empty() {
        return Err(refuse(
            "it recorded no model files (artifacts named model/...)".into(),
        ));
    }
    let Some((mj_path, mj_md5)) = model_json else {
        return Err(refuse(format!("no {MODEL_JSON} among its model files")));
    };
    // Parse the bytes whose hash is checked again, so a file swapped after the check above
    // cannot slip in.
    let bytes = std::fs::read(&mj_path).map_err(RegistryError::io(&mj_path))?;
    let actual = Md5Hex::of_bytes(&bytes);
    if actual != mj_md5 {
        return Err(RegistryError::ArtifactChanged {
            run_id: run_id.clone(),
            file: MODEL_JSON.into(),
            path: mj_path.display().to_string(),
            expected: mj_md5.to_string(),
            actual: actual.to_string(),
        });
    }
    let context = format!("run {run_id}: {}", mj_path.display());
    let desc: ModelDescription =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::DescriptionMismatch {
            context: context.clone(),
            message: format!("cannot be parsed: {e}"),
        })?;
    if desc.format_version != MODEL_FORMAT_VERSION {
        return Err(RegistryError::DescriptionMismatch {
            context,
            message: format!(
                "format_version {} (this taxon reads {MODEL_FORMAT_VERSION})",
                desc.format_version
            ),
        });
    }
    files_agree(&desc, &files)
        .map_err(|message| RegistryError::DescriptionMismatch { context, message })?;
    Ok((files, uploads, desc))
}

/// An error message unless every file `desc` lists is in `files` with the same size and md5.
pub(crate) fn files_agree(desc: &ModelDescription, files: &[ModelFile]) -> Result<(), String> {
    for want in &desc.files {
        match files.iter().find(|f| f.name == want.name) {
            None => {
                return Err(format!(
                    "it lists {} but the model files are [{}]",
                    want.name,
                    files
                        .iter()
                        .map(|f| f.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Some(f) if f.md5 != want.md5 || f.bytes != want.bytes => {
                return Err(format!(
                    "it records {} as md5 {} ({} bytes), the file is md5 {} ({} bytes)",
                    want.name, want.md5, want.bytes, f.md5, f.bytes
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}
