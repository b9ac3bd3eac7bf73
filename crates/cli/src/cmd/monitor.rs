//! `taxon monitor`: the monitor stage from the command line. `profile` builds a model
//! folder's reference profile from held-out data; `drift` compares current data (a dataset
//! file run through the model, or a server's prediction log) with that reference, feature by
//! feature, and exits 1 on drift; `export` turns the logged predictions that got feedback into
//! a training-ready dataset.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, Subcommand};
use taxon_dataset::ReadOptions;
use taxon_monitor::drift::{self, Thresholds};
use taxon_monitor::{Profile, report, source};

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum MonitorCmd {
    /// Build (or rebuild) MODEL's reference profile from held-out labelled or unlabelled
    /// DATA: writes MODEL/profile.json and lists it in model.json.
    Profile(ProfileArgs),
    /// Compare current data with a model's reference profile, feature by feature: normalized
    /// Wasserstein distance for numeric features, chi-square test for predicted labels. Exit 0:
    /// no drift, 1: drift, 2: error.
    Drift(DriftArgs),
    /// The predictions of a prediction log (`taxon serve --prediction-log DIR
    /// --prediction-log-text`) that got feedback, as a training-ready JSONL dataset
    /// `{"text", "label"}` with the true labels, for retraining.
    Export(ExportArgs),
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The prediction log folder.
    pub log: PathBuf,
    /// Only predictions with feedback (the true label); required: unlabelled export is not
    /// offered.
    #[arg(long, required = true)]
    pub labelled: bool,
    /// Output file (JSONL), written atomically.
    #[arg(long, short)]
    pub output: PathBuf,
    /// The key of a log whose texts are encrypted (`taxon serve --prediction-log-encrypt`);
    /// without it the key is read from TAXON_FERNET_KEY when the log needs one.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Model folder (with model.json).
    pub model: PathBuf,
    /// Held-out texts (JSONL, CSV/TSV or Parquet; a label field is ignored). Not the
    /// training data: the model is over-confident on what it was trained on.
    pub data: PathBuf,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
}

#[derive(Debug, Args)]
pub struct DriftArgs {
    /// Model folder whose profile.json is the reference.
    #[arg(long, value_name = "MODEL_DIR")]
    pub reference: PathBuf,
    /// Current data: a dataset file (JSONL, CSV/TSV, Parquet), run through the reference
    /// model, or a prediction log folder (`taxon serve --prediction-log`), whose logged
    /// features are used as they are (predictions of other label sets are left out).
    #[arg(long, value_name = "SOURCE")]
    pub current: PathBuf,
    /// Thresholds file (YAML: `wasserstein`, `chi_square_p`, `features: {NAME: value}`).
    #[arg(long, value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// Write a self-contained HTML report (each feature's distributions overlaid) here.
    #[arg(long, value_name = "FILE.html")]
    pub report: Option<PathBuf>,
    /// Field holding the text in a dataset file.
    #[arg(long, default_value = "text")]
    pub text_field: String,
}

pub fn run(cmd: MonitorCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        MonitorCmd::Profile(a) => profile(a, ctx),
        MonitorCmd::Drift(a) => drift_cmd(a, ctx),
        MonitorCmd::Export(a) => export(a, ctx),
    }
}

/// The profile of `model` on the dataset file `data`: to compare with `reference`, or a new
/// reference without one.
fn profile_of_file(
    model_dir: &Path,
    data: &Path,
    text_field: &str,
    reference: Option<&Profile>,
    ctx: &Ctx,
) -> anyhow::Result<Profile> {
    let model = taxon_models::load(model_dir)
        .with_context(|| format!("loading the model in {}", model_dir.display()))?;
    let size = std::fs::metadata(data).map(|m| m.len()).unwrap_or(0);
    let bar = ctx.bytes_bar(size, "profiling");
    let opts = ReadOptions {
        text_field: text_field.to_string(),
        ..ReadOptions::default()
    };
    let p = source::profile_file(model.as_ref(), data, &opts, reference, &mut |b| {
        bar.set_position(b)
    })
    .with_context(|| format!("profiling {} with {}", data.display(), model_dir.display()));
    bar.finish_and_clear();
    p
}

fn profile(args: ProfileArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let p = profile_of_file(&args.model, &args.data, &args.text_field, None, ctx)?;
    if p.rows == 0 {
        anyhow::bail!(
            "{} has no rows: a profile needs held-out texts",
            args.data.display()
        );
    }
    p.write_to_model(&args.model)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "model": args.model,
            "profile": args.model.join(taxon_monitor::PROFILE_JSON),
            "rows": p.rows,
            "features": p.numeric.keys().chain(std::iter::once(&taxon_monitor::profile::PREDICTED_LABEL.to_string())).collect::<Vec<_>>(),
        }))?;
    } else {
        ctx.info(format!(
            "profile of {} rows written to {} (listed in model.json)",
            p.rows,
            args.model.join(taxon_monitor::PROFILE_JSON).display()
        ));
    }
    Ok(Outcome::Ok)
}

fn drift_cmd(args: DriftArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let thresholds = match &args.thresholds {
        Some(p) => Thresholds::load(p)?,
        None => Thresholds::default(),
    };
    let reference = Profile::read_from_model(&args.reference)?;
    let current = if args.current.is_dir() {
        let desc = taxon_core::model::ModelDescription::read(&args.reference)?;
        let (p, skipped) =
            taxon_monitor::log::profile_log(&args.current, &desc.model_type, &desc.labels)
                .with_context(|| {
                    format!("reading the prediction log {}", args.current.display())
                })?;
        if skipped > 0 {
            ctx.info(format!(
                "{skipped} logged predictions of another label set were left out"
            ));
        }
        p
    } else {
        profile_of_file(
            &args.reference,
            &args.current,
            &args.text_field,
            Some(&reference),
            ctx,
        )?
    };
    if current.rows == 0 {
        anyhow::bail!("{} has no rows to compare", args.current.display());
    }
    let result = drift::compare(&reference, &current, &thresholds)?;
    if let Some(path) = &args.report {
        std::fs::write(path, report::html(&reference, &current, &result))
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    if ctx.json {
        print_json(&result)?;
    } else {
        let mut t = table(["feature", "statistic", "value", "threshold", "drift"]);
        for f in &result.features {
            t.add_row(vec![
                f.name.clone(),
                f.statistic.clone(),
                format!("{:.4}", f.value),
                f.threshold.to_string(),
                if f.drift { "DRIFT".into() } else { "no".into() },
            ]);
        }
        println!("{t}");
        println!(
            "{}: {} current rows against {} reference rows ({})",
            if result.drift { "drift" } else { "no drift" },
            result.rows,
            reference.rows,
            reference.source
        );
        if let Some(path) = &args.report {
            ctx.info(format!("report written to {}", path.display()));
        }
    }
    Ok(if result.drift {
        Outcome::CheckFailed
    } else {
        Outcome::Ok
    })
}

fn export(args: ExportArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    use std::collections::HashMap;
    use std::io::Write;
    use taxon_monitor::log::LogRecord;
    // Texts of the logged predictions, by request id; feedback (the last one wins) by id.
    let mut texts: HashMap<String, Option<String>> = HashMap::new();
    let mut labels: HashMap<String, String> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    // The key is loaded on the first encrypted text only: a plain log needs none.
    let mut key: Option<taxon_fernet::Key> = None;
    let mut failure: Option<anyhow::Error> = None;
    taxon_monitor::log::read_dir(&args.log, &mut |rec| match rec {
        LogRecord::Prediction(p) => {
            if failure.is_some() {
                return;
            }
            if p.text_fernet.is_some() && key.is_none() {
                match taxon_fernet::Key::from_env_or_file(
                    taxon_fernet::DEFAULT_KEY_ENV,
                    args.key_file.as_deref(),
                ) {
                    Ok(k) => key = Some(k),
                    Err(e) => {
                        failure = Some(anyhow::Error::new(e).context(
                            "the log's texts are encrypted (served with --prediction-log-encrypt)",
                        ));
                        return;
                    }
                }
            }
            match p.plain_text(key.as_ref()) {
                Ok(text) => {
                    if texts.insert(p.request_id.clone(), text).is_none() {
                        order.push(p.request_id);
                    }
                }
                Err(e) => {
                    failure = Some(anyhow::anyhow!("prediction {}: {e}", p.request_id));
                }
            }
        }
        LogRecord::Feedback(f) => {
            labels.insert(f.request_id, f.label);
        }
    })
    .with_context(|| format!("reading the prediction log {}", args.log.display()))?;
    if let Some(e) = failure {
        return Err(e.context(format!("reading the prediction log {}", args.log.display())));
    }
    let (mut rows, mut without_text, mut unlogged) = (0u64, 0u64, 0u64);
    let mut out = Vec::new();
    for id in &order {
        let Some(label) = labels.get(id) else {
            continue;
        };
        match texts.get(id) {
            Some(Some(text)) => {
                serde_json::to_writer(
                    &mut out,
                    &serde_json::json!({"text": text, "label": label}),
                )?;
                out.push(b'\n');
                rows += 1;
            }
            _ => without_text += 1,
        }
    }
    for id in labels.keys() {
        if !texts.contains_key(id) {
            unlogged += 1;
        }
    }
    if rows == 0 && without_text > 0 {
        anyhow::bail!(
            "{without_text} predictions got feedback, but the log holds no texts: serve with --prediction-log-text to export a dataset"
        );
    }
    let tmp = args.output.with_extension("jsonl.tmp");
    let mut f =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(&out)?;
    f.sync_all()?;
    std::fs::rename(&tmp, &args.output)
        .with_context(|| format!("moving the dataset to {}", args.output.display()))?;
    if ctx.json {
        print_json(&serde_json::json!({
            "output": args.output,
            "rows": rows,
            "feedback_without_text": without_text,
            "feedback_without_prediction": unlogged,
        }))?;
    } else {
        ctx.info(format!(
            "{rows} labelled rows written to {} ({without_text} with feedback but no logged text, {unlogged} feedback for predictions not in the log)",
            args.output.display()
        ));
    }
    Ok(Outcome::Ok)
}
