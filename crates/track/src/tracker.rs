//! A live run: created in the store when a command starts, kept alive by a heartbeat thread,
//! fed per-step metrics and stage boundaries, and finished in one transaction; then mirrored to
//! MLflow and the Pushgateway when asked. Mirror failures do not fail the run: they come back
//! as warnings, and the local store keeps everything.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::JoinHandle;

use chrono::Utc;

use crate::error::Result;
use crate::mlflow::{Metric, MlflowClient, RemoteRun};
use crate::record::{MetricPoint, RunRecord, RunStatus};
use crate::stage::StageClock;
use crate::store::{HEARTBEAT_EVERY, NewRun, RunEnd, RunStore};
use crate::{pushgateway, record::StageRecord};

/// Where a run is mirrored besides the embedded store.
#[derive(Clone, Debug, Default)]
pub struct Mirrors {
    /// MLflow tracking server (`http://host:port`).
    pub mlflow_uri: Option<String>,
    /// MLflow experiment name.
    pub mlflow_experiment: String,
    /// Prometheus Pushgateway (`http://host:port`).
    pub pushgateway: Option<String>,
}

/// A run in progress.
pub struct Tracker {
    store: Mutex<RunStore>,
    id: String,
    name: String,
    model_type: Option<String>,
    clock: StageClock,
    heartbeat: Heartbeat,
    mirrors: Mirrors,
    mlflow: Option<(MlflowClient, RemoteRun)>,
    warnings: Mutex<Vec<String>>,
}

/// What finishing a run did.
#[derive(Clone, Debug)]
pub struct Finished {
    pub id: String,
    pub status: RunStatus,
    pub stages: Vec<StageRecord>,
    /// The MLflow run id, when mirrored.
    pub mlflow_run_id: Option<String>,
    /// Mirror problems (the run itself is recorded).
    pub warnings: Vec<String>,
}

fn mlflow_tags(run: &NewRun, id: &str) -> Vec<(String, String)> {
    let mut tags = vec![
        ("mlflow.runName".to_string(), run.name.clone()),
        ("mlflow.source.name".to_string(), "taxon".to_string()),
        ("mlflow.source.type".to_string(), "LOCAL".to_string()),
        ("taxon.run_id".to_string(), id.to_string()),
        ("taxon.kind".to_string(), run.kind.clone()),
        ("taxon.version".to_string(), run.code.taxon_version.clone()),
        ("taxon.host".to_string(), run.machine.hostname.clone()),
    ];
    if let Some(c) = &run.code.git_commit {
        tags.push(("mlflow.source.git.commit".into(), c.clone()));
        tags.push(("taxon.git_commit".into(), c.clone()));
    }
    if let Some(d) = run.code.git_dirty {
        tags.push(("taxon.git_dirty".into(), d.to_string()));
    }
    if let Some(v) = &run.data_version {
        tags.push(("taxon.data_version".into(), v.clone()));
    }
    if let Some(p) = &run.data_path {
        tags.push(("taxon.data_path".into(), p.clone()));
    }
    if let Some(m) = &run.model_type {
        tags.push(("taxon.model_type".into(), m.clone()));
    }
    tags
}

impl Tracker {
    /// Records `run` as running in `store`, starts its heartbeat and, when asked, its MLflow
    /// mirror (a mirror that cannot start becomes a warning).
    pub fn start(mut store: RunStore, run: NewRun, mirrors: Mirrors) -> Result<Self> {
        let id = store.create_run(&run)?;
        let started = Utc::now();
        let heartbeat = Heartbeat(spawn_heartbeat(store.location().to_path_buf(), id.clone()));
        let mut warnings = Vec::new();
        let mlflow = match &mirrors.mlflow_uri {
            None => None,
            Some(uri) => {
                let made = MlflowClient::new(uri).and_then(|c| {
                    let exp = c.get_or_create_experiment(&mirrors.mlflow_experiment)?;
                    let remote = c.create_run(
                        &exp,
                        &run.name,
                        started.timestamp_millis(),
                        &mlflow_tags(&run, &id),
                    )?;
                    Ok((c, remote))
                });
                match made {
                    Ok((c, remote)) => {
                        if let Err(e) = store.set_mlflow_run_id(&id, &remote.run_id) {
                            warnings.push(e.to_string());
                        }
                        Some((c, remote))
                    }
                    Err(e) => {
                        warnings.push(format!("MLflow mirror disabled: {e}"));
                        None
                    }
                }
            }
        };
        Ok(Self {
            store: Mutex::new(store),
            id,
            name: run.name,
            model_type: run.model_type,
            clock: StageClock::new(),
            heartbeat,
            mirrors,
            mlflow,
            warnings: Mutex::new(warnings),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stage clock (begin, enter, checkpoint) of this run.
    pub fn stages(&self) -> &StageClock {
        &self.clock
    }

    fn warn(&self, w: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(w);
    }

    /// Records the values of one step (an epoch); a store error becomes a warning so that
    /// training goes on.
    pub fn log_step(&self, step: u64, values: &[(&str, f64)]) {
        let now = Utc::now();
        let points: Vec<MetricPoint> = values
            .iter()
            .filter(|(_, v)| v.is_finite())
            .map(|(k, v)| MetricPoint {
                key: k.to_string(),
                step,
                value: *v,
                timestamp: now,
            })
            .collect();
        let res = self
            .store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log_metrics(&self.id, &points);
        if let Err(e) = res {
            self.warn(e.to_string());
        }
    }

    /// Ends the run (finished, or failed when `end.error` is set), then mirrors it. Stages still
    /// open on the clock are ended and added after `end.stages`.
    pub fn finish(mut self, mut end: RunEnd) -> Result<Finished> {
        self.heartbeat.stop();
        end.stages.extend(self.clock.finish());
        if end.model_type.is_none() {
            end.model_type = self.model_type.clone();
        }
        let status = if end.error.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Finished
        };
        let store = self.store.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut store = store;
        store.finish(&self.id, &end)?;
        let record = store.get(&self.id)?;
        let mut warnings = self
            .warnings
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let mlflow_run_id = self.mlflow.as_ref().map(|(_, r)| r.run_id.clone());
        if let Some((client, remote)) = &self.mlflow
            && let Err(e) = mirror_to_mlflow(client, remote, &record, status)
        {
            warnings.push(format!("MLflow mirror: {e}"));
        }
        if let Some(url) = &self.mirrors.pushgateway {
            let body = pushgateway::exposition(
                record.summary.model_type.as_deref().unwrap_or(""),
                &end.stages,
                &end.metrics,
            );
            if let Err(e) = pushgateway::push(url, &self.id, body) {
                warnings.push(e.to_string());
            }
        }
        Ok(Finished {
            id: self.id,
            status,
            stages: end.stages,
            mlflow_run_id,
            warnings,
        })
    }
}

/// The heartbeat thread; stopped (and joined) on [`Heartbeat::stop`] or drop.
struct Heartbeat(Option<(Sender<()>, JoinHandle<()>)>);

impl Heartbeat {
    fn stop(&mut self) {
        if let Some((tx, h)) = self.0.take() {
            drop(tx);
            let _ = h.join();
        }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Refreshes the heartbeat every [`HEARTBEAT_EVERY`] on its own connection until the sender
/// is dropped.
fn spawn_heartbeat(path: PathBuf, id: String) -> Option<(Sender<()>, JoinHandle<()>)> {
    let (tx, rx) = mpsc::channel::<()>();
    let h = std::thread::Builder::new()
        .name("taxon-heartbeat".into())
        .spawn(move || {
            let Ok(store) = RunStore::open(&path) else {
                return;
            };
            loop {
                match rx.recv_timeout(HEARTBEAT_EVERY) {
                    Err(RecvTimeoutError::Timeout) => {
                        let _ = store.heartbeat(&id);
                    }
                    _ => return,
                }
            }
        })
        .ok()?;
    Some((tx, h))
}

/// Sends a finished run's params, metric history, final metrics, tags, artifacts and status.
pub fn mirror_to_mlflow(
    client: &MlflowClient,
    remote: &RemoteRun,
    record: &RunRecord,
    status: RunStatus,
) -> Result<()> {
    let params: Vec<(String, String)> = record
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    client.log_params(&remote.run_id, &params)?;
    let end_ms = record
        .summary
        .end_time
        .unwrap_or_else(Utc::now)
        .timestamp_millis();
    let mut metrics: Vec<Metric> = record
        .history
        .iter()
        .map(|p| Metric {
            key: p.key.clone(),
            value: p.value,
            timestamp_ms: p.timestamp.timestamp_millis(),
            step: p.step,
        })
        .collect();
    metrics.extend(final_metrics(&record.summary.metrics, end_ms));
    metrics.extend(record.stages.iter().flat_map(|s| {
        let key = s.name.replace(['+', ' '], "_");
        [
            Metric {
                key: format!("stage.{key}.seconds"),
                value: s.seconds,
                timestamp_ms: end_ms,
                step: 0,
            },
            Metric {
                key: format!("stage.{key}.peak_rss_bytes"),
                value: s.peak_rss_bytes as f64,
                timestamp_ms: end_ms,
                step: 0,
            },
        ]
    }));
    client.log_metrics(&remote.run_id, &metrics)?;
    let mut tags = vec![
        ("taxon.status".to_string(), status.as_str().to_string()),
        (
            "taxon.machine".to_string(),
            format!(
                "{} / {} cores / {} MiB / {}",
                record.machine.cpu_model,
                record.machine.cores,
                record.machine.memory_bytes >> 20,
                record.machine.os
            ),
        ),
    ];
    if let Some(e) = &record.error {
        tags.push(("taxon.error".into(), e.chars().take(5000).collect()));
    }
    client.set_tags(&remote.run_id, &tags)?;
    upload_artifacts(client, remote, record)?;
    let state = match status {
        RunStatus::Finished => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Killed => "KILLED",
        RunStatus::Running => "RUNNING",
    };
    client.update_run(&remote.run_id, state, end_ms)
}

fn final_metrics(m: &BTreeMap<String, f64>, ts: i64) -> Vec<Metric> {
    m.iter()
        .map(|(k, v)| Metric {
            key: k.clone(),
            value: *v,
            timestamp_ms: ts,
            step: 0,
        })
        .collect()
}

fn upload_artifacts(client: &MlflowClient, remote: &RemoteRun, record: &RunRecord) -> Result<()> {
    for a in &record.artifacts {
        let local = Path::new(&a.path);
        if !local.is_file() {
            continue;
        }
        if !client.upload_artifact(&remote.artifact_uri, &a.name, local)? {
            return Err(crate::error::TrackError::Mlflow {
                url: remote.artifact_uri.clone(),
                message: "artifacts not uploaded: taxon writes to mlflow-artifacts: (the \
                          server's proxy) and local-path stores only"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Sends metrics computed after a run ended (an evaluation) to the run's MLflow mirror.
pub fn mirror_late_metrics(
    uri: &str,
    mlflow_run_id: &str,
    metrics: &BTreeMap<String, f64>,
) -> Result<()> {
    let client = MlflowClient::new(uri)?;
    client.log_metrics(
        mlflow_run_id,
        &final_metrics(metrics, Utc::now().timestamp_millis()),
    )
}
