//! The retraining loop's guard rails and record: one retraining at a time per repository (a
//! kernel lock, released when its process ends, crash included), a cool-down between
//! retrainings, and `.taxon/retrains.jsonl`: one line per retraining with its cause, the fresh
//! labels it added, the data versions before and after, the stages it ran and the model
//! version it produced.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use taxon_version::Repo;

use crate::error::{IoContext, PipelineError, Result};
use crate::lockfile::FileLock;

/// How a retraining ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The pipeline ran; `promoted` says whether the alias moved.
    Ok,
    /// Too few fresh labels: nothing was changed.
    TooFewLabels,
    /// A step failed; `error` says which.
    Failed,
}

/// One retraining, as recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RetrainRecord {
    /// `rt-<start time>`.
    pub id: String,
    /// What started it: `manual`, `schedule`, `alert:<name>` (with the alert's labels).
    pub cause: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub outcome: Outcome,
    /// Labelled predictions the log held, and how many of them were new to the data.
    pub feedback_rows: usize,
    pub fresh_rows: usize,
    /// Fresh rows that went to the test file (the rest went to training).
    pub fresh_test_rows: usize,
    /// The tracked data path and its version ids before and after.
    pub data_path: Option<String>,
    pub data_version_before: Option<String>,
    pub data_version_after: Option<String>,
    /// The fresh rows by label (training and test together).
    #[serde(default)]
    pub added_by_label: std::collections::BTreeMap<String, usize>,
    /// `taxon data diff` between the two versions (rows added, relabelled, label shift), when
    /// the tracked data is in files taxon reads (label folders of text files are not).
    pub data_diff: Option<serde_json::Value>,
    /// The stages the pipeline ran.
    pub stages_ran: Vec<String>,
    /// The registry model, the newest version after the run, and where the alias pointed
    /// before and after.
    pub model: Option<String>,
    pub alias: Option<String>,
    pub version: Option<u64>,
    pub alias_before: Option<u64>,
    pub alias_after: Option<u64>,
    pub promoted: bool,
    pub error: Option<String>,
}

/// `.taxon/retrains.jsonl`.
pub fn history_path(repo: &Repo) -> PathBuf {
    repo.taxon_dir().join("retrains.jsonl")
}

/// Every recorded retraining, oldest first. A torn last line (a crash while appending) is
/// skipped.
pub fn read_history(repo: &Repo) -> Result<Vec<RetrainRecord>> {
    let path = history_path(repo);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).at(&path),
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if i + 1 == lines.len() => {}
            Err(e) => {
                return Err(PipelineError::Invalid {
                    path: path.clone(),
                    location: format!("line {}", i + 1),
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Appends one record (one line, flushed to disk).
pub fn append(repo: &Repo, record: &RetrainRecord) -> Result<()> {
    let path = history_path(repo);
    let mut line = serde_json::to_string(record).expect("a record serializes");
    line.push('\n');
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .at(&path)?;
    f.write_all(line.as_bytes()).at(&path)?;
    f.sync_data().at(&path)
}

/// When the last retraining that changed something started, if that is less than
/// `cooldown` ago: the time the next one is allowed.
pub fn cooldown_until(
    history: &[RetrainRecord],
    cooldown: chrono::Duration,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let last = history
        .iter()
        .filter(|r| r.outcome != Outcome::TooFewLabels)
        .map(|r| r.started_at)
        .max()?;
    let next = last + cooldown;
    (next > now).then_some(next)
}

/// Held while a retraining runs.
pub struct RetrainLock {
    _lock: FileLock,
}

impl RetrainLock {
    /// Takes `.taxon/retrain.lock`, or fails at once when another retraining holds it.
    pub fn acquire(repo: &Repo) -> Result<Self> {
        Ok(Self {
            _lock: FileLock::try_acquire(&repo.taxon_dir().join("retrain.lock"))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(started: DateTime<Utc>, outcome: Outcome) -> RetrainRecord {
        RetrainRecord {
            id: "rt".into(),
            cause: "manual".into(),
            started_at: started,
            finished_at: started,
            outcome,
            feedback_rows: 0,
            fresh_rows: 0,
            fresh_test_rows: 0,
            data_path: None,
            data_version_before: None,
            data_version_after: None,
            added_by_label: Default::default(),
            data_diff: None,
            stages_ran: Vec::new(),
            model: None,
            alias: None,
            version: None,
            alias_before: None,
            alias_after: None,
            promoted: false,
            error: None,
        }
    }

    #[test]
    fn the_cool_down_counts_from_the_last_retraining_that_changed_something() {
        let now = Utc::now();
        let hour = chrono::Duration::hours(1);
        let h = vec![record(now - chrono::Duration::minutes(10), Outcome::Ok)];
        assert_eq!(
            cooldown_until(&h, hour, now),
            Some(now + chrono::Duration::minutes(50))
        );
        let h = vec![record(now - chrono::Duration::minutes(70), Outcome::Failed)];
        assert_eq!(cooldown_until(&h, hour, now), None);
        let h = vec![record(now, Outcome::TooFewLabels)];
        assert_eq!(cooldown_until(&h, hour, now), None);
    }

    #[test]
    fn history_survives_a_torn_last_line_and_the_lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let (repo, _) = Repo::init(dir.path()).unwrap();
        append(&repo, &record(Utc::now(), Outcome::Ok)).unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(history_path(&repo))
            .unwrap();
        f.write_all(b"{\"id\": \"tor").unwrap();
        assert_eq!(read_history(&repo).unwrap().len(), 1);
        let held = RetrainLock::acquire(&repo).unwrap();
        assert!(matches!(
            RetrainLock::acquire(&repo),
            Err(PipelineError::Locked(_))
        ));
        drop(held);
        RetrainLock::acquire(&repo).unwrap();
    }
}
