//! `taxon train`: train a model from a YAML config and/or flags; writes the model folder
//! (model.json, weights) and metrics.json.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use indicatif::ProgressBar;
use taxon_models::training::{EpochReport, TrainObserver};
use taxon_train::{ConfigFile, ConfigKeys, ModelType, RunOptions, TrainConfig};

use crate::ctx::{Ctx, Outcome};
use crate::output::print_json;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Training config (YAML); flags below override its keys.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model type to train: linear (default), lstm or bert.
    #[arg(long)]
    pub model_type: Option<ModelType>,
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
    /// Passes over the training data (default: the model type's own).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Initial (linear: SGD, decayed linearly to 0) or peak (lstm, bert: AdamW) learning rate
    /// (default: the model type's own).
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
    /// Linear warmup steps for models trained with AdamW (linear ignores it).
    #[arg(long)]
    pub warmup_steps: Option<u64>,
    /// Examples per optimizer step for mini-batch models (linear ignores it).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Tokens kept per text (linear: model_config.max_tokens; bert: word pieces with [CLS]
    /// and [SEP], default 128).
    #[arg(long)]
    pub max_len: Option<u64>,
    /// bert: the Hugging Face checkpoint folder to fine-tune (config.json, tokenizer.json,
    /// model.safetensors; BERT or DistilBERT).
    #[arg(long, value_name = "DIR")]
    pub model_path: Option<PathBuf>,
    /// bert: pooling of the encoder's last states: mean (default), cls, or pooler (the [CLS]
    /// state through the checkpoint's pre-trained pooler dense + tanh, as transformers does).
    #[arg(long)]
    pub pooling: Option<taxon_models::bert::Pooling>,
    /// bert: freeze the embeddings and the first N encoder layers (default 0: train all).
    #[arg(long, value_name = "N")]
    pub freeze_layers: Option<usize>,
    /// bert: tokens kept of long texts: head (default, as transformers truncates) or
    /// head-tail (the first quarter of the budget, at most 128, and the end).
    #[arg(long)]
    pub truncation: Option<taxon_models::bert::Truncation>,
    /// linear: how the weights are learned: svm (default: TF-IDF + one calibrated linear SVM
    /// per label, solved to convergence) or sgd (fastText: embeddings + softmax, --epochs
    /// passes of SGD at --learning-rate).
    #[arg(long)]
    pub solver: Option<taxon_models::linear::Solver>,
    /// Early stopping: stop after N epochs without improvement of --monitor on validation
    /// data, and keep the best epoch's weights.
    #[arg(long, value_name = "N")]
    pub patience: Option<usize>,
    /// Validation metric for early stopping and the best epoch: macro_f1 or accuracy.
    #[arg(long)]
    pub monitor: Option<taxon_train::Monitor>,
    /// Write a checkpoint every N epochs in OUTPUT/checkpoints (default 1; 0: only the best
    /// epoch's under early stopping).
    #[arg(long, value_name = "N")]
    pub checkpoint_every: Option<usize>,
    /// Expectation suite (YAML) the training data must pass; failing data is refused.
    #[arg(long)]
    pub expectations: Option<PathBuf>,
    /// Continue a stopped run from the latest checkpoint in the output folder (same config).
    #[arg(long)]
    pub resume: bool,
    /// Stop after N epochs in total as if killed, leaving only checkpoints (for tests).
    #[arg(long, hide = true, value_name = "N")]
    pub stop_after_epochs: Option<usize>,
}

/// Drives the progress bars: bytes while the data is read (from the reader's position), then
/// examples while the model trains (from the training threads).
struct BarObserver {
    read: ProgressBar,
    bar: ProgressBar,
    ctx: Ctx,
}

impl TrainObserver for BarObserver {
    fn on_read(&self, path: &Path, bytes: u64, total: u64) {
        if self.read.length() != Some(total) {
            self.read.set_length(total);
            self.read.set_message(format!("reading {}", path.display()));
        }
        self.read.set_position(bytes);
    }

    fn on_start(&self, examples: u64, epochs: u64) {
        self.read.finish_and_clear();
        self.bar.set_length(examples * epochs);
        self.bar.reset();
    }

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
    let file = args.config.as_deref().map(ConfigFile::read).transpose()?;
    let flags = ConfigKeys {
        model_type: args.model_type,
        model_config: None,
        learning_rate: args.learning_rate,
        epochs: args.epochs,
        seed: args.seed,
        data: args.data,
        validation: args.validation,
        validation_ratio: args.validation_ratio,
        output: args.output,
        threads: args.threads,
        warmup_steps: args.warmup_steps,
        batch_size: args.batch_size,
        max_len: args.max_len,
        early_stopping_patience: args.patience,
        monitor: args.monitor,
        checkpoint_every: args.checkpoint_every,
        expectations: args.expectations,
        model_path: args.model_path,
        pooling: args.pooling,
        freeze_layers: args.freeze_layers,
        truncation: args.truncation,
        solver: args.solver,
    };
    let cfg = TrainConfig::resolve(file.as_ref(), &flags)?;
    let tracking = super::runs::TrainTracking::start(&cfg, &args.track, ctx);
    let run = RunOptions {
        resume: args.resume,
        stop_after_epochs: args.stop_after_epochs,
    };
    let data = cfg.data.clone();
    let observer = tracking.observe(BarObserver {
        read: ctx.bytes_bar(0, "reading"),
        bar: ctx.items_bar(0, "training"),
        ctx: ctx.clone(),
    });
    let summary = taxon_train::train_with(&cfg, &run, &observer)
        .with_context(|| format!("training on {}", data.display()))
        .inspect_err(|e| tracking.fail(e))?;
    observer.read.finish_and_clear();
    observer.bar.finish_and_clear();
    tracking.finish(&summary);
    for w in &summary.warnings {
        ctx.info(format!("warning: {w}"));
    }
    if !summary.complete {
        ctx.info(format!(
            "stopped after epoch {} as asked; continue with --resume (checkpoints in {})",
            summary.epochs.len(),
            taxon_train::checkpoint::checkpoints_dir(&summary.output).display()
        ));
    }
    if let Some(from) = summary.resumed_from_epoch {
        ctx.info(format!("resumed from the checkpoint of epoch {from}"));
    }
    if summary.stopped_early {
        ctx.info(format!(
            "early stopping after epoch {}: keeping epoch {}",
            summary.epochs.len(),
            summary.model_epoch
        ));
    }
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
        if summary.complete {
            println!(
                "model written to {} (reference profile for the monitor in {:.2}s)",
                summary.output.display(),
                summary.profile_seconds
            );
        }
    }
    Ok(Outcome::Ok)
}
