//! `taxon monitor`: the monitor stage from the command line. `profile` builds a model
//! folder's reference profile from held-out data; `drift` compares current data (a dataset
//! file run through the model) with that reference, feature by feature, and exits 1 on drift.

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
    /// model.
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
    }
}

/// The profile of `model` on the dataset file `data`.
fn profile_of_file(
    model_dir: &Path,
    data: &Path,
    text_field: &str,
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
    let p = source::profile_file(model.as_ref(), data, &opts, &mut |b| bar.set_position(b))
        .with_context(|| format!("profiling {} with {}", data.display(), model_dir.display()));
    bar.finish_and_clear();
    p
}

fn profile(args: ProfileArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let p = profile_of_file(&args.model, &args.data, &args.text_field, ctx)?;
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
    let current = profile_of_file(&args.reference, &args.current, &args.text_field, ctx)?;
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
