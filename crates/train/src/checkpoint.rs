//! Checkpoints of a training run, in `OUTPUT/checkpoints/`: one folder per saved epoch
//! (`epoch-0003/`) holding the model folder as `TextClassifier::save` writes it plus
//! `state.json` (the [`RunState`]: resolved config, data md5, the epoch loop's state (epoch,
//! per-epoch reports, best validation metric, patience counter) and the model type's optimizer
//! state), and `LATEST`, naming the folder a `--resume` continues from. [`Checkpoints`] is how
//! the epoch loop hands them over: written by a background thread while the next epoch trains.
//!
//! Writes are atomic: a checkpoint is written into `epoch-NNNN.tmp/` and renamed into place,
//! then `LATEST` is replaced by rename, so a process killed at any point leaves the previous
//! checkpoint intact and `LATEST` always names a complete folder. Older folders are pruned,
//! except the best epoch's (early stopping makes it the final model).

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use taxon_core::Md5Hex;
use taxon_core::model::TextClassifier;
use taxon_eval::Metrics;
use taxon_models::training::{LoopHooks, LoopState, Trainable, Validation};

use crate::config::{Monitor, TrainConfig};
use crate::error::TrainError;

/// Folder of the checkpoints inside a run's output folder.
pub const CHECKPOINTS_DIR: &str = "checkpoints";
/// File in [`CHECKPOINTS_DIR`] naming the newest complete checkpoint folder.
pub const LATEST: &str = "LATEST";
/// The run state inside a checkpoint folder.
pub const STATE_JSON: &str = "state.json";
/// Layout version of `state.json` (2: the typed model config, the loop's state from
/// taxon-models).
pub const STATE_FORMAT_VERSION: u32 = 2;

/// Everything a resumed run needs besides the model weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub format_version: u32,
    /// The resolved config of the run (defaults filled in).
    pub config: TrainConfig,
    /// md5 of the training data file.
    pub data_md5: Md5Hex,
    /// The epoch loop's state: epochs finished, their reports, the best epoch and the
    /// patience counter.
    #[serde(flatten)]
    pub progress: LoopState<Metrics>,
    /// The model type's own optimizer state (linear: `SgdState`).
    pub trainer: serde_json::Value,
}

/// `OUTPUT/checkpoints`.
pub fn checkpoints_dir(output: &Path) -> PathBuf {
    output.join(CHECKPOINTS_DIR)
}

/// Folder name of epoch `epoch`'s checkpoint.
pub fn epoch_dir_name(epoch: usize) -> String {
    format!("epoch-{epoch:04}")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes the checkpoint of `state.epoch`: `save_model` fills a fresh folder with the model,
/// `state.json` is added, the folder is renamed into place and `LATEST` switched to it.
/// Returns the checkpoint folder.
pub fn write(
    output: &Path,
    state: &RunState,
    save_model: &dyn Fn(&Path) -> Result<(), TrainError>,
) -> Result<PathBuf, TrainError> {
    let root = checkpoints_dir(output);
    fs::create_dir_all(&root).map_err(io_err(&root))?;
    let name = epoch_dir_name(state.progress.epoch);
    let tmp = root.join(format!("{name}.tmp"));
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    save_model(&tmp)?;
    let state_path = tmp.join(STATE_JSON);
    let text = serde_json::to_string(state).map_err(|e| TrainError::Checkpoint {
        path: state_path.clone(),
        message: e.to_string(),
    })?;
    fs::write(&state_path, text).map_err(io_err(&state_path))?;
    let dir = root.join(&name);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
    }
    fs::rename(&tmp, &dir).map_err(io_err(&dir))?;
    let latest = root.join(LATEST);
    let latest_tmp = root.join(format!("{LATEST}.tmp"));
    fs::write(&latest_tmp, format!("{name}\n")).map_err(io_err(&latest_tmp))?;
    fs::rename(&latest_tmp, &latest).map_err(io_err(&latest))?;
    Ok(dir)
}

/// The newest complete checkpoint of the run in `output`: its folder and state; `None` when
/// there is none.
pub fn read_latest(output: &Path) -> Result<Option<(PathBuf, RunState)>, TrainError> {
    let root = checkpoints_dir(output);
    let latest = root.join(LATEST);
    let name = match fs::read_to_string(&latest) {
        Ok(n) => n.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TrainError::Io {
                path: latest,
                source,
            });
        }
    };
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(TrainError::Checkpoint {
            path: latest,
            message: format!("names {name:?}, not a checkpoint folder"),
        });
    }
    let dir = root.join(&name);
    let path = dir.join(STATE_JSON);
    let text = fs::read_to_string(&path).map_err(io_err(&path))?;
    let unreadable = |e: serde_json::Error| TrainError::Checkpoint {
        path: path.clone(),
        message: format!("unreadable run state: {e}"),
    };
    // The layout version first: a state of another layout does not decode as this one.
    #[derive(Deserialize)]
    struct Layout {
        format_version: u32,
    }
    let layout: Layout = serde_json::from_str(&text).map_err(unreadable)?;
    if layout.format_version != STATE_FORMAT_VERSION {
        return Err(TrainError::Checkpoint {
            path,
            message: format!(
                "state format {} (this build reads {STATE_FORMAT_VERSION}): train from scratch \
                 without --resume",
                layout.format_version
            ),
        });
    }
    let state: RunState = serde_json::from_str(&text).map_err(unreadable)?;
    Ok(Some((dir, state)))
}

/// Removes checkpoint folders (and stale temporaries) except those named in `keep`.
pub fn prune(output: &Path, keep: &[String]) -> Result<(), TrainError> {
    let root = checkpoints_dir(output);
    let entries = fs::read_dir(&root).map_err(io_err(&root))?;
    for e in entries {
        let e = e.map_err(io_err(&root))?;
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("epoch-") && !keep.contains(&name) && e.path().is_dir() {
            fs::remove_dir_all(e.path()).map_err(io_err(&e.path()))?;
        }
    }
    Ok(())
}

/// Copies the model files of a checkpoint folder (everything but `state.json`) into `dst`.
pub fn copy_model(checkpoint: &Path, dst: &Path) -> Result<(), TrainError> {
    fs::create_dir_all(dst).map_err(io_err(dst))?;
    for e in fs::read_dir(checkpoint).map_err(io_err(checkpoint))? {
        let e = e.map_err(io_err(checkpoint))?;
        if e.file_name() == STATE_JSON || !e.path().is_file() {
            continue;
        }
        let to = dst.join(e.file_name());
        fs::copy(e.path(), &to).map_err(io_err(&to))?;
    }
    Ok(())
}

/// The epoch loop's checkpoints of one run: each is written by a background thread while the
/// next epoch trains (one write at a time, so `LATEST` only moves forward), then older ones are
/// pruned except the best epoch's. Validation is measured with [`Metrics`] and the monitored
/// metric.
pub struct Checkpoints<'a> {
    pub output: &'a Path,
    pub config: &'a TrainConfig,
    pub data_md5: &'a Md5Hex,
    pub labels: &'a [String],
    /// True label index of every validation example.
    pub truth: &'a [usize],
    pub monitor: Monitor,
    pub writer: Option<std::thread::JoinHandle<Result<(), TrainError>>>,
}

impl Checkpoints<'_> {
    /// Waits for the checkpoint being written, if any, and passes on its error.
    fn join(&mut self) -> Result<(), TrainError> {
        match self.writer.take().map(|w| w.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(TrainError::Checkpoint {
                path: checkpoints_dir(self.output),
                message: "the checkpoint writer thread panicked".into(),
            }),
        }
    }
}

impl LoopHooks for Checkpoints<'_> {
    type Metrics = Metrics;
    type Error = TrainError;

    fn measure(&self, validation: &Validation) -> (Metrics, f64) {
        let m = Metrics::compute(self.labels, self.truth, &validation.predictions);
        let value = self.monitor.value(&m);
        (m, value)
    }

    /// Takes the state and a copy of the weights now; the files are written in the background.
    fn checkpoint(
        &mut self,
        progress: &LoopState<Metrics>,
        trainer: &dyn Trainable,
    ) -> Result<(), TrainError> {
        let snapshot = trainer.checkpoint()?;
        let state = RunState {
            format_version: STATE_FORMAT_VERSION,
            config: self.config.clone(),
            data_md5: self.data_md5.clone(),
            progress: progress.clone(),
            trainer: snapshot.state,
        };
        self.join()?;
        let output = self.output.to_path_buf();
        let model = snapshot.model;
        self.writer = Some(std::thread::spawn(move || {
            write_pruning(&output, &state, model.as_ref())
        }));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), TrainError> {
        self.join()
    }
}

/// Writes the checkpoint of `state` with the weights of `model`, then removes older
/// checkpoints except the best epoch's.
fn write_pruning(
    output: &Path,
    state: &RunState,
    model: &dyn TextClassifier,
) -> Result<(), TrainError> {
    write(output, state, &|d| Ok(model.save(d)?))?;
    let mut keep = vec![epoch_dir_name(state.progress.epoch)];
    if let Some(b) = &state.progress.best {
        keep.push(epoch_dir_name(b.epoch));
    }
    prune(output, &keep)
}

/// Keys whose value may differ between a checkpoint and the run resuming it: where the run
/// writes, and how many threads it uses.
const RESUME_FREE_KEYS: &[&str] = &["output", "threads"];

/// The first config key (in key order) whose value differs between the checkpoint's config
/// and the resuming run's, with both values as JSON; `None` when they agree.
pub fn config_difference(
    checkpoint: &TrainConfig,
    now: &TrainConfig,
) -> Option<(String, String, String)> {
    let as_map = |c: &TrainConfig| match serde_json::to_value(c) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (as_map(checkpoint), as_map(now));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let null = serde_json::Value::Null;
    keys.into_iter()
        .filter(|k| !RESUME_FREE_KEYS.contains(&k.as_str()))
        .find_map(|k| {
            let (x, y) = (a.get(k).unwrap_or(&null), b.get(k).unwrap_or(&null));
            (x != y).then(|| (k.clone(), x.to_string(), y.to_string()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigKeys;

    fn config(over: ConfigKeys) -> TrainConfig {
        let keys = ConfigKeys {
            data: Some("d.jsonl".into()),
            output: Some("out".into()),
            ..Default::default()
        };
        TrainConfig::resolve(None, &keys.with_overrides(over)).unwrap()
    }

    fn state(epoch: usize) -> RunState {
        RunState {
            format_version: STATE_FORMAT_VERSION,
            config: config(ConfigKeys::default()),
            data_md5: Md5Hex::of_bytes(b"data"),
            progress: LoopState {
                epoch,
                ..Default::default()
            },
            trainer: serde_json::json!({"k": epoch}),
        }
    }

    #[test]
    fn latest_names_the_newest_complete_checkpoint_and_prune_keeps_what_is_asked() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        assert!(read_latest(out).unwrap().is_none());
        let save = |d: &Path| {
            fs::write(d.join("model.bin"), b"w").map_err(|source| TrainError::Io {
                path: d.to_path_buf(),
                source,
            })
        };
        for e in 1..=3 {
            write(out, &state(e), &save).unwrap();
        }
        let (d, s) = read_latest(out).unwrap().unwrap();
        assert_eq!(s, state(3));
        assert!(d.ends_with("epoch-0003"));
        prune(out, &[epoch_dir_name(3), epoch_dir_name(1)]).unwrap();
        let root = checkpoints_dir(out);
        assert!(root.join("epoch-0001").is_dir());
        assert!(!root.join("epoch-0002").exists());
        let copy = out.join("copy");
        copy_model(&d, &copy).unwrap();
        assert!(copy.join("model.bin").is_file());
        assert!(!copy.join(STATE_JSON).exists());
    }

    #[test]
    fn a_state_of_another_layout_is_refused_by_its_version() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let ck = write(out, &state(1), &|_| Ok(())).unwrap();
        // What taxon wrote before the typed model config: format 1, other keys.
        fs::write(
            ck.join(STATE_JSON),
            r#"{"format_version": 1, "epoch": 1, "config": {"warmup_steps": null}}"#,
        )
        .unwrap();
        let err = read_latest(out).unwrap_err().to_string();
        assert!(
            err.contains("state format 1 (this build reads 2)") && err.contains("--resume"),
            "{err}"
        );
    }

    #[test]
    fn a_failed_write_leaves_the_previous_checkpoint_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        write(out, &state(1), &|_| Ok(())).unwrap();
        let failing = |d: &Path| -> Result<(), TrainError> {
            Err(TrainError::Checkpoint {
                path: d.to_path_buf(),
                message: "disk full".into(),
            })
        };
        assert!(write(out, &state(2), &failing).is_err());
        assert_eq!(read_latest(out).unwrap().unwrap().1.progress.epoch, 1);
    }

    #[test]
    fn config_difference_names_the_first_differing_key_and_ignores_threads() {
        let a = config(ConfigKeys {
            epochs: Some(4),
            threads: Some(1),
            ..Default::default()
        });
        let b = TrainConfig {
            threads: 2,
            ..a.clone()
        };
        assert_eq!(config_difference(&a, &b), None);
        let c = config(ConfigKeys {
            epochs: Some(4),
            threads: Some(1),
            learning_rate: Some(0.5),
            ..Default::default()
        });
        let (key, was, now) = config_difference(&a, &c).unwrap();
        assert_eq!(
            (key.as_str(), was.as_str(), now.as_str()),
            ("learning_rate", "1.0", "0.5")
        );
    }
}
