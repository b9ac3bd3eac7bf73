//! The reference profile: sketches of every monitored feature of a model's predictions on
//! held-out data, stored as `profile.json` in the model folder and listed in `model.json`.
//!
//! Features, per prediction: `tokens` (text length in the model's own tokens), `unknown_share`
//! (share of out-of-vocabulary words, `[UNK]` word pieces, words missing from a linear model's
//! index), `confidence` (the top class's probability), `score:LABEL` (each label's
//! probability), `predicted_label` (categorical) and, for a model with a pooled embedding
//! (`bert`), `embedding:i`, the embedding's coordinates along the reference's principal
//! components (see [`crate::projection`]). A profile is bounded in size whatever
//! the data size (see [`crate::sketch`]) and mergeable: profiles of two shards merge into the
//! profile of both.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use taxon_core::Md5Hex;
use taxon_core::model::{Encoded, MODEL_JSON, ModelDescription, ModelFile, TextClassifier};

use crate::error::MonitorError;
use crate::projection::Projection;
use crate::sketch::{Binning, Categorical, Histogram};

/// Reference embeddings the projection is fitted on, at most (the first ones observed).
const PROJECTION_FIT_ROWS: usize = 5_000;

/// File name of the profile in a model folder.
pub const PROFILE_JSON: &str = "profile.json";
/// Layout version of `profile.json`.
pub const PROFILE_FORMAT_VERSION: u32 = 1;

/// Feature names.
pub const TOKENS: &str = "tokens";
pub const UNKNOWN_SHARE: &str = "unknown_share";
pub const CONFIDENCE: &str = "confidence";
pub const PREDICTED_LABEL: &str = "predicted_label";
/// Prefix of the per-label score features (`score:LABEL`).
pub const SCORE_PREFIX: &str = "score:";

/// What the monitor sees of one prediction.
#[derive(Clone, Copy, Debug)]
pub struct Observation<'a> {
    /// Tokens the model looked at.
    pub tokens: usize,
    /// Share of them it did not know, when the model type reports it.
    pub unknown_share: Option<f32>,
    /// Probabilities in the model's label order.
    pub scores: &'a [f32],
    /// The pooled embedding the model's head read, for a model type that has one.
    pub embedding: Option<&'a [f32]>,
}

impl Observation<'_> {
    /// Index and probability of the top class (the first one on ties); `None` without scores.
    pub fn top(&self) -> Option<(usize, f32)> {
        self.scores
            .iter()
            .copied()
            .enumerate()
            .fold(None, |best, (i, p)| match best {
                Some((_, bp)) if bp >= p => best,
                _ => Some((i, p)),
            })
    }
}

/// Sketches of every feature, for one model's label set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub format_version: u32,
    pub model_type: String,
    pub labels: Vec<String>,
    /// What the profile was computed on (a file, a validation split, a prediction log).
    pub source: String,
    /// Predictions observed.
    pub rows: u64,
    /// Numeric features by name.
    pub numeric: BTreeMap<String, Histogram>,
    /// The predicted label's counts.
    pub predicted_label: Categorical,
    /// How embeddings become the `embedding:i` features (fitted on the reference; a current
    /// profile carries its reference's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<Projection>,
}

impl Profile {
    /// An empty profile for a model with `labels`.
    pub fn new(model_type: &str, labels: &[String], source: impl Into<String>) -> Self {
        let mut numeric = BTreeMap::new();
        numeric.insert(TOKENS.to_string(), Histogram::new(Binning::Count));
        numeric.insert(UNKNOWN_SHARE.to_string(), Histogram::new(Binning::Unit));
        numeric.insert(CONFIDENCE.to_string(), Histogram::new(Binning::Unit));
        for l in labels {
            numeric.insert(format!("{SCORE_PREFIX}{l}"), Histogram::new(Binning::Unit));
        }
        Self {
            format_version: PROFILE_FORMAT_VERSION,
            model_type: model_type.to_string(),
            labels: labels.to_vec(),
            source: source.into(),
            rows: 0,
            numeric,
            predicted_label: Categorical::default(),
            projection: None,
        }
    }

    /// An empty profile to compare with `reference`: its model type, labels and projection.
    pub fn like(reference: &Profile, source: impl Into<String>) -> Self {
        let mut p = Self::new(&reference.model_type, &reference.labels, source);
        if let Some(proj) = &reference.projection {
            p.set_projection(proj.clone());
        }
        p
    }

    /// Projects embeddings with `projection` from now on (one `embedding:i` feature per
    /// component).
    pub fn set_projection(&mut self, projection: Projection) {
        for i in 0..projection.components.len() {
            self.numeric
                .entry(Projection::feature(i))
                .or_insert_with(|| Histogram::new(Binning::Standard));
        }
        self.projection = Some(projection);
    }

    /// Adds one prediction. Scores beyond the label count are ignored.
    pub fn observe(&mut self, obs: &Observation<'_>) {
        self.rows += 1;
        if let Some(h) = self.numeric.get_mut(TOKENS) {
            h.add(obs.tokens as f64);
        }
        if let (Some(u), Some(h)) = (obs.unknown_share, self.numeric.get_mut(UNKNOWN_SHARE)) {
            h.add(f64::from(u));
        }
        if let Some((i, p)) = obs.top() {
            if let Some(h) = self.numeric.get_mut(CONFIDENCE) {
                h.add(f64::from(p));
            }
            if let Some(l) = self.labels.get(i) {
                self.predicted_label.add(l);
            }
        }
        for (l, &p) in self.labels.iter().zip(obs.scores) {
            if let Some(h) = self.numeric.get_mut(&format!("{SCORE_PREFIX}{l}")) {
                h.add(f64::from(p));
            }
        }
        let projected = match (&self.projection, obs.embedding) {
            (Some(p), Some(e)) => p.project(e),
            _ => None,
        };
        if let Some(coords) = projected {
            self.observe_projected(&coords);
        }
    }

    /// Adds the coordinates of one embedding already projected with this profile's
    /// projection ([`Projection::project`]); for a window that keeps only the coordinates.
    pub fn observe_projected(&mut self, coords: &[f32]) {
        for (i, &v) in coords.iter().enumerate() {
            if let Some(h) = self.numeric.get_mut(&Projection::feature(i)) {
                h.add(f64::from(v));
            }
        }
    }

    /// Adds every prediction of `other`, a profile of the same labels.
    pub fn merge(&mut self, other: &Profile) -> Result<(), MonitorError> {
        if other.labels != self.labels {
            return Err(MonitorError::Labels {
                expected: self.labels.clone(),
                found: other.labels.clone(),
            });
        }
        if other.rows > 0 && self.rows > 0 && other.projection != self.projection {
            return Err(MonitorError::Projection);
        }
        if self.projection.is_none() {
            self.projection.clone_from(&other.projection);
        }
        self.rows += other.rows;
        for (name, h) in &other.numeric {
            match self.numeric.get_mut(name) {
                Some(mine) => {
                    mine.merge(h);
                }
                None => {
                    self.numeric.insert(name.clone(), h.clone());
                }
            }
        }
        self.predicted_label.merge(&other.predicted_label);
        Ok(())
    }

    /// Runs `model` over `texts` (encode, then predict in batches of `batch`) and adds every
    /// prediction. An empty profile without a projection, of a model that gives embeddings,
    /// first fits its projection on the first embeddings (up to 5,000 texts of this call).
    pub fn observe_texts(
        &mut self,
        model: &dyn TextClassifier,
        texts: &[&str],
        batch: usize,
    ) -> Result<(), MonitorError> {
        struct Held {
            tokens: usize,
            unknown: Option<f32>,
            probs: Vec<f32>,
            embedding: Vec<f32>,
        }
        let mut fitting = self.projection.is_none() && self.rows == 0;
        let mut held: Vec<Held> = Vec::new();
        for chunk in texts.chunks(batch.max(1)) {
            let encoded = chunk
                .iter()
                .map(|t| model.encode(t))
                .collect::<Result<Vec<Encoded>, _>>()?;
            let refs: Vec<&Encoded> = encoded.iter().collect();
            let outputs = model.predict_embedded(&refs)?;
            for (e, (probs, embedding)) in encoded.iter().zip(outputs) {
                match embedding {
                    Some(embedding) if fitting => held.push(Held {
                        tokens: e.tokens(),
                        unknown: e.unknown_share(),
                        probs,
                        embedding,
                    }),
                    embedding => self.observe(&Observation {
                        tokens: e.tokens(),
                        unknown_share: e.unknown_share(),
                        scores: &probs,
                        embedding: embedding.as_deref(),
                    }),
                }
            }
            if held.len() >= PROJECTION_FIT_ROWS {
                fitting = false;
                self.fit_projection(held.iter().map(|h| &h.embedding));
            }
            if !fitting {
                for h in held.drain(..) {
                    self.observe(&Observation {
                        tokens: h.tokens,
                        unknown_share: h.unknown,
                        scores: &h.probs,
                        embedding: Some(&h.embedding),
                    });
                }
            }
        }
        if !held.is_empty() {
            self.fit_projection(held.iter().map(|h| &h.embedding));
            for h in held {
                self.observe(&Observation {
                    tokens: h.tokens,
                    unknown_share: h.unknown,
                    scores: &h.probs,
                    embedding: Some(&h.embedding),
                });
            }
        }
        Ok(())
    }

    fn fit_projection<'a>(&mut self, embeddings: impl Iterator<Item = &'a Vec<f32>>) {
        let rows: Vec<Vec<f32>> = embeddings.cloned().collect();
        if let Some(p) = Projection::fit(&rows, crate::projection::DEFAULT_COMPONENTS) {
            self.set_projection(p);
        }
    }

    /// Reads a `profile.json` file.
    pub fn read(path: &Path) -> Result<Self, MonitorError> {
        let bytes = std::fs::read(path).map_err(|source| MonitorError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, MonitorError> {
        let p: Self = serde_json::from_slice(bytes).map_err(|source| MonitorError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        if p.format_version != PROFILE_FORMAT_VERSION {
            return Err(MonitorError::Invalid {
                path: path.to_path_buf(),
                message: format!(
                    "format_version {} (this build reads {PROFILE_FORMAT_VERSION})",
                    p.format_version
                ),
            });
        }
        Ok(p)
    }

    /// The profile stored in model folder `dir`, checked against its `model.json` entry (size
    /// and md5). A folder without one is [`MonitorError::NoProfile`].
    pub fn read_from_model(dir: &Path) -> Result<Self, MonitorError> {
        let desc = ModelDescription::read(dir)?;
        if !desc.files.iter().any(|f| f.name == PROFILE_JSON) {
            return Err(MonitorError::NoProfile {
                dir: dir.to_path_buf(),
            });
        }
        let bytes = desc.read_checked(dir, PROFILE_JSON)?;
        let p = Self::from_bytes(&bytes, &dir.join(PROFILE_JSON))?;
        if p.labels != desc.labels {
            return Err(MonitorError::Invalid {
                path: dir.join(PROFILE_JSON),
                message: format!(
                    "labels {:?} differ from model.json's {:?}",
                    p.labels, desc.labels
                ),
            });
        }
        Ok(p)
    }

    /// Writes the profile into model folder `dir` as `profile.json` and lists it in
    /// `model.json` with its size and md5 (replacing an earlier entry). Both files are written
    /// to a temporary file and renamed into place.
    pub fn write_to_model(&self, dir: &Path) -> Result<(), MonitorError> {
        let mut desc = ModelDescription::read(dir)?;
        let text = serde_json::to_string(self).map_err(|source| MonitorError::Json {
            path: dir.join(PROFILE_JSON),
            source,
        })? + "\n";
        let path = dir.join(PROFILE_JSON);
        write_atomic(&path, text.as_bytes())?;
        let entry = ModelFile {
            name: PROFILE_JSON.to_string(),
            bytes: text.len() as u64,
            md5: Md5Hex::of_bytes(text.as_bytes()),
        };
        desc.files.retain(|f| f.name != PROFILE_JSON);
        desc.files.push(entry);
        let json_path = dir.join(MODEL_JSON);
        let json = serde_json::to_string_pretty(&desc).map_err(|source| MonitorError::Json {
            path: json_path.clone(),
            source,
        })? + "\n";
        write_atomic(&json_path, json.as_bytes())
    }
}

/// Writes `bytes` to a temporary file beside `path`, synced, then renames it into place.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), MonitorError> {
    let io = |p: &Path| {
        let p: PathBuf = p.to_path_buf();
        move |source| MonitorError::Io { path: p, source }
    };
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(name);
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn observe_fills_every_feature() {
        let mut p = Profile::new("linear", &labels(), "test");
        p.observe(&Observation {
            tokens: 12,
            unknown_share: Some(0.25),
            scores: &[0.2, 0.8],
            embedding: None,
        });
        p.observe(&Observation {
            tokens: 3,
            unknown_share: None,
            scores: &[0.9, 0.1],
            embedding: None,
        });
        assert_eq!(p.rows, 2);
        assert_eq!(p.numeric[TOKENS].count, 2);
        assert_eq!(p.numeric[UNKNOWN_SHARE].count, 1);
        assert!((p.numeric[CONFIDENCE].mean() - 0.85).abs() < 1e-6);
        assert!((p.numeric["score:b"].mean() - 0.45).abs() < 1e-6);
        assert_eq!(p.predicted_label.counts["b"], 1);
        assert_eq!(p.predicted_label.counts["a"], 1);
    }

    #[test]
    fn merge_refuses_other_labels() {
        let mut p = Profile::new("linear", &labels(), "x");
        let q = Profile::new("linear", &["a".to_string(), "c".to_string()], "y");
        assert!(matches!(p.merge(&q), Err(MonitorError::Labels { .. })));
    }
}
