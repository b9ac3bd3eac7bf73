//! `taxon runs list | show | compare`: the runs recorded in the embedded store, and the
//! tracking that `taxon train` and `taxon eval` do (store, MLflow mirror, Pushgateway).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;
use clap::{Args, Subcommand};
use serde::Serialize;
use taxon_models::training::{EpochReport, TrainObserver};
use taxon_track::artifacts::{file_artifact, folder_artifacts};
use taxon_track::{Mirrors, NewRun, RunEnd, RunRecord, RunStore, Tracker, env, flatten_params};

use crate::ctx::{Ctx, Outcome};
use crate::output::{human_bytes, print_json, table};

#[derive(Debug, Subcommand)]
pub enum RunsCmd {
    /// The newest runs: id, name, status, start, duration, model type, data version, metrics.
    List {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Everything recorded about one run (ID or a unique prefix).
    Show { id: String },
    /// Runs' params and metrics side by side; differing params are marked with `*`.
    Compare {
        #[arg(required = true, num_args = 2..)]
        ids: Vec<String>,
    },
}

/// Tracking options of `taxon train`.
#[derive(Clone, Debug, Default, Args)]
pub struct TrackArgs {
    /// Name of the run (default: model type and data file name).
    #[arg(long)]
    pub run_name: Option<String>,
    /// Mirror the run to this MLflow tracking server (REST API).
    #[arg(long, env = "MLFLOW_TRACKING_URI", value_name = "URL")]
    pub mlflow_uri: Option<String>,
    /// MLflow experiment (created when missing).
    #[arg(long, env = "MLFLOW_EXPERIMENT_NAME", default_value = "taxon")]
    pub mlflow_experiment: String,
    /// Push per-stage time and peak memory to this Prometheus Pushgateway.
    #[arg(long, env = "TAXON_PUSHGATEWAY", value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Record nothing in the run store.
    #[arg(long)]
    pub no_track: bool,
}

pub fn run(cmd: RunsCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = RunStore::open_default(Path::new("."))?;
    match cmd {
        RunsCmd::List { limit } => list(&store, limit, ctx),
        RunsCmd::Show { id } => show(&store, &id, ctx),
        RunsCmd::Compare { ids } => compare(&store, &ids, ctx),
    }
}

fn fmt_duration(s: Option<f64>) -> String {
    match s {
        None => "-".into(),
        Some(s) if s < 60.0 => format!("{s:.1}s"),
        Some(s) if s < 3600.0 => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        Some(s) => format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        ),
    }
}

/// The metrics a list row shows: validation and evaluation scores.
fn key_metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .filter(|(k, _)| k.ends_with("accuracy") || k.ends_with("macro_f1"))
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn short(v: &Option<String>) -> String {
    v.as_deref()
        .map(|s| s.chars().take(8).collect())
        .unwrap_or_else(|| "-".into())
}

fn list(store: &RunStore, limit: usize, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let runs = store.list(limit)?;
    if ctx.json {
        print_json(&runs)?;
        return Ok(Outcome::Ok);
    }
    let mut t = table([
        "id", "name", "status", "start", "duration", "model", "data", "metrics",
    ]);
    for r in &runs {
        t.add_row(vec![
            r.id[..8].to_string(),
            r.name.clone(),
            r.status.to_string(),
            r.start_time
                .with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            fmt_duration(r.duration_seconds),
            r.model_type.clone().unwrap_or_else(|| "-".into()),
            short(&r.data_version),
            key_metrics(&r.metrics),
        ]);
    }
    println!("{t}");
    if runs.is_empty() {
        ctx.info(format!("no runs in {}", store.path().display()));
    }
    Ok(Outcome::Ok)
}

fn show(store: &RunStore, id: &str, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let r = store.get(id)?;
    if ctx.json {
        print_json(&r)?;
        return Ok(Outcome::Ok);
    }
    let s = &r.summary;
    println!("run {} ({})", s.id, s.name);
    println!("  status      {}", s.status);
    if let Some(e) = &r.error {
        println!("  error       {e}");
    }
    println!("  kind        {}", s.kind);
    println!("  started     {}", s.start_time.to_rfc3339());
    if let Some(e) = s.end_time {
        println!("  ended       {}", e.to_rfc3339());
    }
    println!("  duration    {}", fmt_duration(s.duration_seconds));
    println!("  model type  {}", s.model_type.as_deref().unwrap_or("-"));
    println!(
        "  data        {} (version {})",
        s.data_path.as_deref().unwrap_or("-"),
        s.data_version.as_deref().unwrap_or("untracked")
    );
    let c = &r.code;
    println!(
        "  code        taxon {}, git {}{}",
        c.taxon_version,
        c.git_commit.as_deref().unwrap_or("-"),
        if c.git_dirty == Some(true) {
            " (dirty)"
        } else {
            ""
        }
    );
    let m = &r.machine;
    println!(
        "  machine     {} / {} / {} cores / {} / {}",
        m.hostname,
        m.cpu_model,
        m.cores,
        human_bytes(m.memory_bytes),
        m.os
    );
    if let Some(id) = &r.mlflow_run_id {
        println!("  mlflow run  {id}");
    }
    let mut t = table(["param", "value"]);
    for (k, v) in &r.params {
        t.add_row(vec![k.clone(), v.clone()]);
    }
    println!("{t}");
    let mut t = table(["metric", "value"]);
    for (k, v) in &s.metrics {
        t.add_row(vec![k.clone(), format!("{v:.6}")]);
    }
    println!("{t}");
    if !r.history.is_empty() {
        let keys: Vec<String> = r
            .history
            .iter()
            .map(|p| p.key.clone())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut by_step: BTreeMap<u64, BTreeMap<&str, f64>> = BTreeMap::new();
        for p in &r.history {
            by_step.entry(p.step).or_default().insert(&p.key, p.value);
        }
        let mut header = vec!["step".to_string()];
        header.extend(keys.iter().cloned());
        let mut t = table(header);
        for (step, vals) in &by_step {
            let mut row = vec![step.to_string()];
            row.extend(keys.iter().map(|k| {
                vals.get(k.as_str())
                    .map_or("-".into(), |v| format!("{v:.4}"))
            }));
            t.add_row(row);
        }
        println!("{t}");
    }
    let mut t = table(["stage", "seconds", "peak RSS"]);
    for st in &r.stages {
        t.add_row(vec![
            st.name.clone(),
            format!("{:.3}", st.seconds),
            human_bytes(st.peak_rss_bytes),
        ]);
    }
    println!("{t}");
    let mut t = table(["artifact", "md5", "bytes", "path"]);
    for a in &r.artifacts {
        t.add_row(vec![
            a.name.clone(),
            a.md5.clone(),
            a.size.to_string(),
            a.path.clone(),
        ]);
    }
    println!("{t}");
    Ok(Outcome::Ok)
}

fn compare(store: &RunStore, ids: &[String], ctx: &Ctx) -> anyhow::Result<Outcome> {
    let runs: Vec<RunRecord> = ids
        .iter()
        .map(|id| store.get(id))
        .collect::<Result<_, _>>()?;
    let c = taxon_track::compare(&runs);
    if ctx.json {
        print_json(&c)?;
        return Ok(Outcome::Ok);
    }
    let mut header = vec!["".to_string(), "param".to_string()];
    header.extend(c.runs.iter().map(|id| id[..8].to_string()));
    let mut t = table(header.clone());
    for row in &c.params {
        let mut cells = vec![
            if row.differs { "*" } else { "" }.to_string(),
            row.key.clone(),
        ];
        cells.extend(
            row.values
                .iter()
                .map(|v| v.clone().unwrap_or_else(|| "-".into())),
        );
        t.add_row(cells);
    }
    println!("{t}");
    header[1] = "metric".into();
    let mut t = table(header);
    for row in &c.metrics {
        let mut cells = vec![
            if row.differs { "*" } else { "" }.to_string(),
            row.key.clone(),
        ];
        cells.extend(
            row.values
                .iter()
                .map(|v| v.map_or("-".into(), |x| format!("{x:.4}"))),
        );
        t.add_row(cells);
    }
    println!("{t}");
    ctx.info("* marks a param or metric that differs between the runs");
    Ok(Outcome::Ok)
}

// ---- tracking of `taxon train` ----

/// The numeric top-level fields of a JSON object (and of its `metrics` object), prefixed.
fn numeric_fields(v: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, f64>) {
    if let Some(m) = v.as_object() {
        for (k, x) in m {
            if let Some(f) = x.as_f64() {
                out.insert(format!("{prefix}{k}"), f);
            } else if k == "metrics" {
                numeric_fields(x, prefix, out);
            }
        }
    }
}

/// A `taxon train` run being recorded. Tracking never fails training: a store that cannot be
/// opened or a mirror that does not answer is a warning.
pub struct TrainTracking {
    tracker: Mutex<Option<Tracker>>,
    ctx: Ctx,
}

impl TrainTracking {
    /// Records the start of a training run with `cfg` (a `TrainConfig`).
    pub fn start<C: Serialize>(cfg: &C, args: &TrackArgs, ctx: &Ctx) -> Self {
        let none = Self {
            tracker: Mutex::new(None),
            ctx: ctx.clone(),
        };
        if args.no_track {
            return none;
        }
        let json = serde_json::to_value(cfg).unwrap_or_default();
        let model_type = json
            .get("model_type")
            .and_then(|v| v.as_str())
            .unwrap_or("linear")
            .to_string();
        let data = json
            .get("data")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let data_name = data
            .as_deref()
            .and_then(|d| Path::new(d).file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let run = NewRun {
            name: args
                .run_name
                .clone()
                .unwrap_or_else(|| format!("{model_type} {data_name}")),
            kind: "train".into(),
            model_type: Some(model_type),
            data_version: data.as_deref().and_then(|d| data_version(Path::new(d))),
            data_path: data,
            params: with_pipeline_context(flatten_params(&json)),
            code: env::code_version(Path::new("."), env!("CARGO_PKG_VERSION")),
            machine: env::machine_info(),
        };
        let mirrors = Mirrors {
            mlflow_uri: args.mlflow_uri.clone().filter(|s| !s.is_empty()),
            mlflow_experiment: args.mlflow_experiment.clone(),
            pushgateway: args.pushgateway.clone().filter(|s| !s.is_empty()),
        };
        let started = RunStore::open_default(Path::new("."))
            .and_then(|store| Tracker::start(store, run, mirrors));
        match started {
            Ok(t) => {
                t.stages().begin("load data");
                Self {
                    tracker: Mutex::new(Some(t)),
                    ctx: ctx.clone(),
                }
            }
            Err(e) => {
                ctx.info(format!("warning: run not tracked: {e}"));
                none
            }
        }
    }

    fn with<R>(&self, f: impl FnOnce(&Tracker) -> R) -> Option<R> {
        let g = self.tracker.lock().unwrap_or_else(|p| p.into_inner());
        g.as_ref().map(f)
    }

    /// Wraps the command's observer so that epochs and stage boundaries are recorded too.
    pub fn observe<O: TrainObserver>(&self, inner: O) -> Tracked<'_, O> {
        Tracked {
            inner,
            tracking: self,
            training: AtomicBool::new(false),
        }
    }

    /// Ends the run as failed with the error's whole chain.
    pub fn fail(&self, err: &anyhow::Error) {
        let message = format!("{err:#}");
        self.end(RunEnd {
            error: Some(message),
            ..Default::default()
        });
    }

    /// Ends the run as finished with the training summary (a `TrainSummary`): resolved params,
    /// validation metrics, model folder artifacts; prints the run id.
    pub fn finish<S: Serialize>(&self, summary: &S) {
        let Some(()) = self.with(|t| t.stages().begin_after_checkpoint("validate+save")) else {
            return;
        };
        let json = serde_json::to_value(summary).unwrap_or_default();
        let mut metrics = BTreeMap::new();
        if let Some(v) = json.get("validation") {
            numeric_fields(v, "validation_", &mut metrics);
        }
        for k in ["train_seconds", "train_examples", "validation_examples"] {
            if let Some(x) = json.get(k).and_then(|v| v.as_f64()) {
                metrics.insert(k.to_string(), x);
            }
        }
        if let Some(e) = json.get("epochs").and_then(|v| v.as_array()) {
            metrics.insert("epochs_run".into(), e.len() as f64);
        }
        let stages = self.with(|t| t.stages().finish()).unwrap_or_default();
        let output = json.get("output").and_then(|v| v.as_str()).unwrap_or("");
        let mut artifacts = Vec::new();
        if !output.is_empty() && Path::new(output).is_dir() {
            match folder_artifacts(Path::new(output), "model", &["checkpoints"]) {
                Ok(a) => artifacts = a,
                Err(e) => self
                    .ctx
                    .info(format!("warning: artifacts not recorded: {e}")),
            }
        }
        self.end(RunEnd {
            error: None,
            params: json
                .get("config")
                .map(|c| with_pipeline_context(flatten_params(c))),
            model_type: json
                .get("model_type")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            metrics,
            artifacts,
            stages,
        });
    }

    fn end(&self, end: RunEnd) {
        let tracker = self
            .tracker
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(t) = tracker else { return };
        match t.finish(end) {
            Ok(f) => {
                for w in &f.warnings {
                    self.ctx.info(format!("warning: {w}"));
                }
                let mirror = f
                    .mlflow_run_id
                    .map(|m| format!(" (MLflow run {m})"))
                    .unwrap_or_default();
                self.ctx
                    .info(format!("run {} recorded as {}{mirror}", f.id, f.status));
            }
            Err(e) => self.ctx.info(format!("warning: run not recorded: {e}")),
        }
    }
}

impl Drop for TrainTracking {
    /// A command that returned early through an error path nobody reported ends its run as failed.
    fn drop(&mut self) {
        if self.with(|_| ()).is_some() {
            self.end(RunEnd {
                error: Some("the command ended with an error".into()),
                ..Default::default()
            });
        }
    }
}

/// `params` plus, for a run started by a pipeline stage, why and where: `pipeline.cause`
/// (`TAXON_PIPELINE_CAUSE`, e.g. `retrain rt-...: alert:ModelAccuracyLow`) and
/// `pipeline.stage` (`DVC_STAGE`), so `taxon runs show` says which trigger made the run.
fn with_pipeline_context(
    mut params: std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    for (key, var) in [
        ("pipeline.cause", "TAXON_PIPELINE_CAUSE"),
        ("pipeline.stage", "DVC_STAGE"),
    ] {
        if let Some(v) = std::env::var(var).ok().filter(|v| !v.is_empty()) {
            params.insert(key.to_string(), v);
        }
    }
    params
}

/// The command's observer plus recording: the first examples end the `load data` stage, each
/// epoch's report is stored as step metrics.
pub struct Tracked<'a, O> {
    inner: O,
    tracking: &'a TrainTracking,
    training: AtomicBool,
}

impl<O> std::ops::Deref for Tracked<'_, O> {
    type Target = O;
    fn deref(&self) -> &O {
        &self.inner
    }
}

impl<O: TrainObserver> TrainObserver for Tracked<'_, O> {
    fn on_read(&self, path: &Path, bytes: u64, total: u64) {
        self.inner.on_read(path, bytes, total);
    }

    fn on_start(&self, examples: u64, epochs: u64) {
        if !self.training.swap(true, Ordering::Relaxed) {
            self.tracking.with(|t| t.stages().enter("train"));
        }
        self.inner.on_start(examples, epochs);
    }

    fn on_docs(&self, docs: u64, mean_loss: f32) {
        if !self.training.swap(true, Ordering::Relaxed) {
            self.tracking.with(|t| t.stages().enter("train"));
        }
        self.inner.on_docs(docs, mean_loss);
    }

    fn on_epoch(&self, r: &EpochReport) {
        self.inner.on_epoch(r);
        let json = serde_json::to_value(r).unwrap_or_default();
        let mut values = BTreeMap::new();
        numeric_fields(&json, "", &mut values);
        values.remove("epoch");
        values.remove("epochs");
        if let Some(s) = values.remove("seconds") {
            values.insert("epoch_seconds".into(), s);
        }
        let pairs: Vec<(&str, f64)> = values.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        self.tracking.with(|t| {
            t.stages().enter("train");
            t.log_step(r.epoch as u64, &pairs);
            t.stages().checkpoint();
        });
    }
}

/// The version id of `data` as the train driver records it; `None` when untracked (or when its
/// pointer cannot be read: tracking never fails a command).
fn data_version(data: &Path) -> Option<String> {
    taxon_version::dvcfile::data_version(data)
        .ok()
        .flatten()
        .map(String::from)
}

// ---- tracking of `taxon eval` ----

/// Times an evaluation; at the end, adds its metrics, report and stage to the run that trained
/// the model (found by the md5 of its `model.json`), or records a run of its own.
pub struct EvalTracking {
    clock: taxon_track::StageClock,
    started: chrono::DateTime<Utc>,
}

impl EvalTracking {
    pub fn start() -> Self {
        let clock = taxon_track::StageClock::new();
        clock.begin("evaluate");
        Self {
            clock,
            started: Utc::now(),
        }
    }

    /// Records `report` (an evaluation report) of `model` on `data`; problems are warnings.
    pub fn finish<R: Serialize>(self, model: &Path, data: &Path, report: &R, ctx: &Ctx) {
        if let Err(e) = self.record(model, data, report, ctx) {
            ctx.info(format!("warning: evaluation not recorded: {e:#}"));
        }
    }

    fn record<R: Serialize>(
        self,
        model: &Path,
        data: &Path,
        report: &R,
        ctx: &Ctx,
    ) -> anyhow::Result<()> {
        let stages = self.clock.finish();
        let json = serde_json::to_value(report)?;
        let stem = data
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "data".into());
        let mut metrics = BTreeMap::new();
        numeric_fields(&json, &format!("eval.{stem}."), &mut metrics);
        let mut store = RunStore::open_default(Path::new("."))?;
        let model_md5 = taxon_track::artifacts::file_md5(&model.join("model.json"))
            .ok()
            .map(|(m, _)| m);
        let owner = match &model_md5 {
            Some(m) => store.find_by_artifact_md5(m)?,
            None => None,
        };
        let (id, fresh) = match owner {
            Some(id) => (id, false),
            None => {
                let params: BTreeMap<String, String> = [
                    ("model".to_string(), model.display().to_string()),
                    ("data".to_string(), data.display().to_string()),
                ]
                .into();
                let id = store.create_run(&NewRun {
                    name: format!("eval {}", stem),
                    kind: "eval".into(),
                    model_type: None,
                    data_path: Some(data.display().to_string()),
                    data_version: data_version(data),
                    params,
                    code: env::code_version(Path::new("."), env!("CARGO_PKG_VERSION")),
                    machine: env::machine_info(),
                })?;
                (id, true)
            }
        };
        let dir = store
            .path()
            .parent()
            .unwrap_or(Path::new("."))
            .join("runs")
            .join(&id);
        std::fs::create_dir_all(&dir)?;
        let ts = self.started.format("%Y%m%dT%H%M%S");
        let path = dir.join(format!("eval-{stem}-{ts}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&json)? + "\n")?;
        let artifact = file_artifact(&path, &format!("eval/{stem}.json"))?;
        if fresh {
            store.finish(
                &id,
                &RunEnd {
                    metrics: metrics.clone(),
                    artifacts: vec![artifact],
                    stages,
                    ..Default::default()
                },
            )?;
        } else {
            store.append(&id, &metrics, &[artifact], &stages)?;
        }
        let rec = store.get(&id)?;
        if let (Some(uri), Some(mid)) = (
            std::env::var("MLFLOW_TRACKING_URI")
                .ok()
                .filter(|s| !s.is_empty()),
            rec.mlflow_run_id.as_deref(),
        ) && let Err(e) = taxon_track::tracker::mirror_late_metrics(&uri, mid, &metrics)
        {
            ctx.info(format!("warning: MLflow mirror: {e}"));
        }
        ctx.info(format!("evaluation recorded in run {id}"));
        Ok(())
    }
}
