//! `taxon pipeline retrain`: the loop from monitoring back to serving. The labelled feedback
//! of a prediction log becomes fresh training (and test) rows, a new data version with its
//! diff, a pipeline run, a registry version, and an alias move through the promotion gate
//! (which `taxon serve --alias` picks up without a restart). One at a time, with a cool-down,
//! and refused on too few fresh labels; every retraining is recorded with its cause.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use chrono::Utc;
use clap::Args;
use taxon_pipeline::retrain::{
    self, Outcome as RetrainOutcome, RetrainLock, RetrainRecord, cooldown_until,
};
use taxon_pipeline::{Action, Pipeline, RunOptions};
use taxon_version::Repo;

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// The prediction log whose feedback to learn from (`taxon serve --prediction-log DIR
    /// --prediction-log-text`).
    #[arg(
        long,
        value_name = "DIR",
        env = "TAXON_RETRAIN_LOG",
        required_unless_present = "history"
    )]
    log: Option<PathBuf>,
    /// The key of a log whose texts are encrypted (else TAXON_FERNET_KEY).
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Where fresh labels go: a JSONL training file (appended) or a folder of label folders
    /// (one file per text). Default: `retrain.into` of params.yaml.
    #[arg(long, value_name = "PATH")]
    into: Option<PathBuf>,
    /// A JSONL test file that gets --test-share of the fresh labels. Default:
    /// `retrain.test_into` of params.yaml, if any.
    #[arg(long, value_name = "FILE")]
    test_into: Option<PathBuf>,
    /// Share of the fresh labels that goes to --test-into (seeded by the text's hash).
    #[arg(long)]
    test_share: Option<f64>,
    /// Refuse (exit 1, nothing changed) with fewer fresh labels than this. Default:
    /// `retrain.min_feedback` of params.yaml, else 50.
    #[arg(long)]
    min_feedback: Option<usize>,
    /// Minutes that must pass after a retraining before the next. Default:
    /// `retrain.cooldown_minutes` of params.yaml, else 60.
    #[arg(long)]
    cooldown_minutes: Option<i64>,
    /// What started it, recorded: `manual`, `schedule`, `alert:<name>`.
    #[arg(long, default_value = "manual")]
    cause: String,
    /// Retrain even inside the cool-down.
    #[arg(long)]
    force: bool,
    /// Print the recorded retrainings instead (newest last).
    #[arg(long)]
    history: bool,
    /// The pipeline file.
    #[arg(long, short = 'f', value_name = "PATH", default_value = "dvc.yaml")]
    file: PathBuf,
}

/// A value of params.yaml's `retrain:` section, if the file and key exist.
fn param(file: &Path, key: &str) -> Option<String> {
    let params = file.parent()?.join("params.yaml");
    let mut files = taxon_pipeline::params::ParamsFiles::default();
    let v = files.value(&params, key, "retrain").ok()?;
    match v {
        v if v.is_string() => v.as_str().map(str::to_string),
        v if v.is_number() => Some(
            v.as_f64()
                .map(|f| f.to_string())
                .unwrap_or_else(|| format!("{v:?}")),
        ),
        _ => None,
    }
}

/// Runs this taxon binary with `args`, returning stdout; a failure names the command.
fn self_cmd(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let exe = std::env::current_exe()?;
    let out = Command::new(exe)
        .current_dir(dir)
        .args(args)
        .output()
        .with_context(|| format!("running taxon {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`taxon {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The path `taxon data add` versions for `path`: the tracked folder holding it, or itself.
fn tracked_for(repo: &Repo, path: &Path) -> PathBuf {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut cur = Some(abs.as_path());
    while let Some(p) = cur {
        if !p.starts_with(&repo.root) || p == repo.root {
            break;
        }
        if taxon_version::dvcfile::dvc_path_for(p).is_file() {
            return p.to_path_buf();
        }
        cur = p.parent();
    }
    abs
}

/// The normalized texts already in a JSONL file or a folder of label folders.
fn existing_texts(path: &Path) -> anyhow::Result<HashSet<String>> {
    let mut seen = HashSet::new();
    if path.is_dir() {
        for f in taxon_version::hashing::walk_files(path)? {
            if let Ok(t) = std::fs::read_to_string(&f.path) {
                seen.insert(norm(&t));
            }
        }
    } else if path.is_file() {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let v: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a JSON line", path.display(), i + 1))?;
            if let Some(t) = v.get("text").and_then(|t| t.as_str()) {
                seen.insert(norm(t));
            }
        }
    }
    Ok(seen)
}

fn norm(t: &str) -> String {
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Appends JSON lines to `path` atomically (the old content plus the new, then a rename).
fn append_jsonl(path: &Path, rows: &[(String, String)]) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(path).unwrap_or_default();
    if !bytes.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    for (text, label) in rows {
        serde_json::to_writer(
            &mut bytes,
            &serde_json::json!({"text": text, "label": label}),
        )?;
        bytes.push(b'\n');
    }
    let tmp = path.with_extension("jsonl.retrain-tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("{}", tmp.display()))?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    // `taxon data add` leaves cached files read-only: replace, never write through.
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(())
}

/// One text file per row under `root/<label>/`, named by the text's md5.
fn write_label_files(root: &Path, rows: &[(String, String)]) -> anyhow::Result<()> {
    for (text, label) in rows {
        if label.is_empty() || label.contains(['/', '\\']) || label.starts_with('.') {
            bail!("feedback label {label:?} cannot be a folder name");
        }
        let dir = root.join(label);
        std::fs::create_dir_all(&dir)?;
        let name = format!(
            "feedback-{}.txt",
            taxon_core::Md5Hex::of_bytes(text.as_bytes())
        );
        std::fs::write(dir.join(name), text)?;
    }
    Ok(())
}

/// Where `alias` of `model` points, from the registry.
fn alias_version(dir: &Path, model: &str, alias: &str) -> Option<u64> {
    let out = self_cmd(dir, &["--json", "registry", "alias", "list"]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v.get(model)?.get(alias)?.as_u64()
}

/// The newest registered version of `model`.
fn newest_version(dir: &Path, model: &str) -> Option<u64> {
    let out = self_cmd(dir, &["--json", "registry", "list", "--name", model]).ok()?;
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    v.as_array()?
        .iter()
        .filter_map(|x| x.get("version").and_then(|n| n.as_u64()))
        .max()
}

pub fn run(args: RetrainArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let file = std::path::absolute(&args.file)?;
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let repo = Repo::discover(&dir)?;
    if args.history {
        return history(&repo, ctx);
    }
    let log = args.log.clone().expect("clap requires --log");
    let _lock = RetrainLock::acquire(&repo)?;
    // The pipeline's own lock too, before any data changes: a `taxon pipeline run` in progress
    // refuses this retraining up front instead of after fresh rows were added.
    let _run_lock = taxon_pipeline::run::RunLock::acquire(&repo)?;
    let started = Utc::now();
    let cooldown = args
        .cooldown_minutes
        .or_else(|| {
            param(&file, "retrain.cooldown_minutes")
                .and_then(|s| s.parse::<f64>().ok())
                .map(|m| m as i64)
        })
        .unwrap_or(60);
    let history = retrain::read_history(&repo)?;
    if !args.force {
        if let Some(next) = cooldown_until(&history, chrono::Duration::minutes(cooldown), started) {
            let msg = format!(
                "cool-down: the last retraining started less than {cooldown} min ago; the next is allowed at {} (--force overrides)",
                next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            );
            if ctx.json {
                print_json(
                    &serde_json::json!({"refused": "cooldown", "next_allowed_at": next, "message": msg}),
                )?;
            } else {
                println!("{msg}");
            }
            return Ok(Outcome::CheckFailed);
        }
    }
    let into = args
        .into
        .clone()
        .or_else(|| param(&file, "retrain.into").map(|p| dir.join(p)))
        .context("where do fresh labels go? give --into (a JSONL file or label folders) or set retrain.into in params.yaml")?;
    let test_into = args
        .test_into
        .clone()
        .or_else(|| param(&file, "retrain.test_into").map(|p| dir.join(p)));
    let test_share = args
        .test_share
        .or_else(|| param(&file, "retrain.test_share").and_then(|s| s.parse().ok()))
        .unwrap_or(0.2);
    if !(0.0..1.0).contains(&test_share) {
        bail!("--test-share must be in [0, 1), got {test_share}");
    }
    let min_feedback = args
        .min_feedback
        .or_else(|| {
            param(&file, "retrain.min_feedback")
                .and_then(|s| s.parse::<f64>().ok())
                .map(|n| n as usize)
        })
        .unwrap_or(50);
    let model =
        param(&file, "register.name").unwrap_or_else(|| taxon_registry::DEFAULT_MODEL.into());
    let alias = param(&file, "register.alias").unwrap_or_else(|| "production".into());
    let id = format!("rt-{}", started.format("%Y%m%dT%H%M%S%.3fZ"));
    let mut record = RetrainRecord {
        id: id.clone(),
        cause: args.cause.clone(),
        started_at: started,
        finished_at: started,
        outcome: RetrainOutcome::Failed,
        feedback_rows: 0,
        fresh_rows: 0,
        fresh_test_rows: 0,
        data_path: None,
        data_version_before: None,
        data_version_after: None,
        added_by_label: Default::default(),
        data_diff: None,
        stages_ran: Vec::new(),
        model: Some(model.clone()),
        alias: Some(alias.clone()),
        version: None,
        alias_before: alias_version(&dir, &model, &alias),
        alias_after: None,
        promoted: false,
        error: None,
    };
    let result = steps(
        &args,
        ctx,
        &repo,
        &dir,
        &file,
        &log,
        &into,
        test_into.as_deref(),
        test_share,
        min_feedback,
        &mut record,
    );
    record.finished_at = Utc::now();
    if let Err(e) = &result {
        record.outcome = RetrainOutcome::Failed;
        record.error = Some(format!("{e:#}"));
    }
    record.alias_after = alias_version(&dir, &model, &alias);
    record.version = newest_version(&dir, &model);
    record.promoted = record.alias_after.is_some() && record.alias_after != record.alias_before;
    retrain::append(&repo, &record)?;
    if ctx.json {
        print_json(&record)?;
    } else {
        print_record(&record);
    }
    result?;
    Ok(match record.outcome {
        RetrainOutcome::Ok => Outcome::Ok,
        _ => Outcome::CheckFailed,
    })
}

#[allow(clippy::too_many_arguments)]
fn steps(
    args: &RetrainArgs,
    ctx: &Ctx,
    repo: &Repo,
    dir: &Path,
    file: &Path,
    log: &Path,
    into: &Path,
    test_into: Option<&Path>,
    test_share: f64,
    min_feedback: usize,
    record: &mut RetrainRecord,
) -> anyhow::Result<()> {
    // 1. The labelled feedback of the log, as a dataset.
    ctx.info(format!("retrain {}: cause {}", record.id, record.cause));
    let tmp = tempfile::Builder::new()
        .prefix(".retrain-feedback")
        .suffix(".jsonl")
        .tempfile_in(repo.taxon_dir())?;
    let log_s = log.to_string_lossy().into_owned();
    let out_s = tmp.path().to_string_lossy().into_owned();
    let mut export = vec![
        "-q",
        "monitor",
        "export",
        &log_s,
        "--labelled",
        "-o",
        &out_s,
    ];
    let key_s;
    if let Some(k) = &args.key_file {
        key_s = k.to_string_lossy().into_owned();
        export.extend(["--key-file", &key_s]);
    }
    self_cmd(dir, &export)?;
    let mut seen = existing_texts(into)?;
    if let Some(t) = test_into {
        seen.extend(existing_texts(t)?);
    }
    let mut fresh: Vec<(String, String)> = Vec::new();
    let text = std::fs::read_to_string(tmp.path())?;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        record.feedback_rows += 1;
        let v: serde_json::Value = serde_json::from_str(line)?;
        let (Some(t), Some(l)) = (v["text"].as_str(), v["label"].as_str()) else {
            continue;
        };
        if seen.insert(norm(t)) {
            fresh.push((t.to_string(), l.to_string()));
        }
    }
    record.fresh_rows = fresh.len();
    for (_, label) in &fresh {
        *record.added_by_label.entry(label.clone()).or_default() += 1;
    }
    ctx.info(format!(
        "  {} labelled predictions in the log, {} new to the data",
        record.feedback_rows, record.fresh_rows
    ));
    if fresh.len() < min_feedback {
        record.outcome = RetrainOutcome::TooFewLabels;
        record.error = Some(format!(
            "{} fresh labels, at least {min_feedback} needed (retrain.min_feedback): nothing changed",
            fresh.len()
        ));
        return Ok(());
    }
    // 2. Into the data: a seeded share to the test file, the rest to training.
    let (mut train_rows, mut test_rows) = (Vec::new(), Vec::new());
    for row in fresh {
        let h = taxon_core::Md5Hex::of_bytes(row.0.as_bytes());
        let u = u32::from_str_radix(&h.as_str()[..8], 16).unwrap_or(0) as f64 / u32::MAX as f64;
        if test_into.is_some() && u < test_share {
            test_rows.push(row);
        } else {
            train_rows.push(row);
        }
    }
    record.fresh_test_rows = test_rows.len();
    if into.is_dir() {
        write_label_files(into, &train_rows)?;
    } else {
        append_jsonl(into, &train_rows)?;
    }
    if let Some(t) = test_into {
        append_jsonl(t, &test_rows)?;
    }
    // 3. A new data version, with its diff against the previous one.
    let tracked = tracked_for(repo, into);
    let tracked_s = tracked.to_string_lossy().into_owned();
    record.data_path = Some(
        taxon_version::versions::rel_path(repo, &tracked).unwrap_or_else(|_| tracked_s.clone()),
    );
    record.data_version_before =
        taxon_version::dvcfile::data_version(&tracked)?.map(|v| v.to_string());
    let message = format!(
        "retrain {}: {} fresh labels ({} to test), cause {}",
        record.id, record.fresh_rows, record.fresh_test_rows, record.cause
    );
    self_cmd(dir, &["-q", "data", "add", &tracked_s, "-m", &message])?;
    if let Some(t) = test_into {
        let t = tracked_for(repo, t);
        if t != tracked {
            self_cmd(
                dir,
                &["-q", "data", "add", &t.to_string_lossy(), "-m", &message],
            )?;
        }
    }
    record.data_version_after =
        taxon_version::dvcfile::data_version(&tracked)?.map(|v| v.to_string());
    if let (Some(a), Some(b)) = (&record.data_version_before, &record.data_version_after) {
        if a != b {
            if let Ok(out) = self_cmd(dir, &["--json", "data", "diff", &tracked_s, a, b]) {
                record.data_diff = serde_json::from_str(&out).ok();
            }
        }
    }
    // 4. The pipeline: only what the new data changed runs; the register stage moves the
    //    alias through the promotion gate.
    let p = Pipeline::load(file)?;
    let reports = taxon_pipeline::run(
        &p,
        &RunOptions {
            stdout_to_stderr: true,
            cause: Some(format!("retrain {}: {}", record.id, record.cause)),
            lock_held: true,
            ..RunOptions::default()
        },
        &mut |e| {
            if let taxon_pipeline::Event::Starting { stage, .. } = e {
                ctx.info(format!("  stage {}", stage.name));
            }
        },
    )?;
    record.stages_ran = reports
        .iter()
        .filter(|r| r.action == Action::Ran)
        .map(|r| r.stage.clone())
        .collect();
    record.outcome = RetrainOutcome::Ok;
    Ok(())
}

fn print_record(r: &RetrainRecord) {
    let v = |x: Option<u64>| x.map_or_else(|| "none".to_string(), |v| format!("v{v}"));
    match r.outcome {
        RetrainOutcome::TooFewLabels => {
            println!(
                "{}: not retrained: {}",
                r.id,
                r.error.as_deref().unwrap_or("")
            );
        }
        RetrainOutcome::Failed => {
            println!("{}: failed: {}", r.id, r.error.as_deref().unwrap_or(""));
        }
        RetrainOutcome::Ok => {
            println!(
                "{}: {} fresh labels ({} to test) -> data {} -> ran {} -> {} {} {}",
                r.id,
                r.fresh_rows,
                r.fresh_test_rows,
                r.data_version_after
                    .as_deref()
                    .map_or("-", |s| &s[..8.min(s.len())]),
                if r.stages_ran.is_empty() {
                    "no stage".to_string()
                } else {
                    r.stages_ran.join(", ")
                },
                r.model.as_deref().unwrap_or("-"),
                r.alias.as_deref().unwrap_or("-"),
                if r.promoted {
                    format!("{} -> {} (promoted)", v(r.alias_before), v(r.alias_after))
                } else {
                    format!("stays {} (the gate kept it)", v(r.alias_after))
                }
            );
        }
    }
}

fn history(repo: &Repo, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let rows = retrain::read_history(repo)?;
    if ctx.json {
        print_json(&rows)?;
        return Ok(Outcome::Ok);
    }
    if rows.is_empty() {
        println!("no retraining recorded yet (`taxon pipeline retrain --log DIR`)");
        return Ok(Outcome::Ok);
    }
    let mut t = table([
        "id", "cause", "outcome", "fresh", "data", "stages", "version", "alias",
    ]);
    for r in &rows {
        let v = |x: Option<u64>| x.map_or_else(|| "-".to_string(), |v| format!("v{v}"));
        t.add_row(vec![
            r.id.clone(),
            r.cause.clone(),
            format!("{:?}", r.outcome).to_lowercase(),
            r.fresh_rows.to_string(),
            r.data_version_after
                .as_deref()
                .map_or_else(|| "-".into(), |s| s[..8.min(s.len())].to_string()),
            r.stages_ran.len().to_string(),
            v(r.version),
            format!("{} -> {}", v(r.alias_before), v(r.alias_after)),
        ]);
    }
    println!("{t}");
    Ok(Outcome::Ok)
}
