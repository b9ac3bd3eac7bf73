//! `taxon train`: train a model from a YAML config and/or flags; writes the model folder
//! (model.json, weights) and metrics.json.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::ProgressBar;
use taxon_models::linear::{EpochReport, TrainObserver};
use taxon_train::{Overrides, TrainConfig};

use crate::ctx::{Ctx, Outcome};
use crate::output::print_json;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training config (YAML); flags below override its keys.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model type to train (`linear`).
    #[arg(long)]
    pub model_type: Option<String>,
    /// Training data: JSONL, CSV/TSV or Parquet with `text` and `label` fields.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Validation data; default: a seeded, stratified 10% of --data.
    #[arg(long)]
    pub validation: Option<PathBuf>,
    /// Share of --data held out for validation when --validation is absent (0: none).
    #[arg(long)]
    pub validation_ratio: Option<f64>,
    /// Output folder for the model.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Passes over the training data (linear default: 25).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Initial learning rate (linear: SGD, decayed linearly to 0; default 1.0).
    #[arg(long)]
    pub learning_rate: Option<f32>,
    /// Seed of the validation split, initialisation and shuffling.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (default: every core). `--threads 1` is bit-reproducible.
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    pub track: super::runs::TrackArgs,
}

/// Drives the progress bar from the training threads.
struct BarObserver {
    bar: ProgressBar,
    ctx: Ctx,
}

impl TrainObserver for BarObserver {
    fn on_docs(&self, docs: u64, mean_loss: f32) {
        self.bar.inc(docs);
        self.bar.set_message(format!("train loss {mean_loss:.4}"));
    }

    fn on_epoch(&self, r: &EpochReport) {
        if self.ctx.quiet {
            return;
        }
        let val = match (r.validation_accuracy, r.validation_loss) {
            (Some(a), Some(l)) => format!("  val acc {:.2}%  val loss {l:.4}", a * 100.0),
            _ => String::new(),
        };
        let line = format!(
            "epoch {:>3}/{}  loss {:.4}{val}  lr {:.4}  {:.0} tokens/s",
            r.epoch, r.epochs, r.train_loss, r.learning_rate, r.tokens_per_sec
        );
        self.bar.suspend(|| eprintln!("{line}"));
    }
}

pub fn run(args: TrainArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let base = match &args.config {
        Some(p) => TrainConfig::from_file(p)?,
        None => TrainConfig::default(),
    };
    let cfg = base.with_overrides(Overrides {
        model_type: args.model_type,
        learning_rate: args.learning_rate,
        epochs: args.epochs,
        seed: args.seed,
        data: args.data,
        validation: args.validation,
        validation_ratio: args.validation_ratio,
        output: args.output,
        threads: args.threads,
    });
    cfg.check()?;
    let tracking = super::runs::TrainTracking::start(&cfg, &args.track, ctx);
    // Total for the bar: examples x epochs, estimated from the data's line count.
    let data = cfg.data.clone().unwrap_or_default();
    let lines = std::fs::read(&data)
        .map(|b| b.iter().filter(|&&c| c == b'\n').count() as u64)
        .unwrap_or(0);
    let holdout = match (&cfg.validation, cfg.validation_ratio) {
        (Some(_), _) => 1.0,
        (None, r) => 1.0 - r.unwrap_or(taxon_train::config::DEFAULT_VALIDATION_RATIO),
    };
    let epochs = cfg.epochs.unwrap_or(taxon_train::driver::LINEAR_EPOCHS) as u64;
    let total = (lines as f64 * holdout) as u64 * epochs;
    let observer = tracking.observe(BarObserver {
        bar: ctx.items_bar(total, "training"),
        ctx: ctx.clone(),
    });
    let summary = taxon_train::train(&cfg, &observer)
        .with_context(|| format!("training on {}", data.display()))
        .inspect_err(|e| tracking.fail(e))?;
    observer.bar.finish_and_clear();
    tracking.finish(&summary);
    if ctx.json {
        print_json(&summary)?;
    } else {
        let acc = summary
            .validation
            .as_ref()
            .map(|m| {
                format!(
                    ", validation accuracy {:.2}% macro-F1 {:.4}",
                    m.accuracy * 100.0,
                    m.macro_f1
                )
            })
            .unwrap_or_default();
        println!(
            "trained {} on {} examples in {:.2}s{acc} ({} examples, {})",
            summary.model_type,
            summary.train_examples,
            summary.train_seconds,
            summary.validation_examples,
            summary.validation_source
        );
        println!("model written to {}", summary.output.display());
    }
    Ok(Outcome::Ok)
}
