//! `taxon eval MODEL_DIR DATA`: accuracy, macro-F1, per-class precision/recall/F1, the
//! confusion matrix and calibration (ECE, optional temperature scaling) of a model on labelled
//! data; `--report` writes a self-contained HTML report with plots.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use taxon_eval::EvalOptions;
use taxon_eval::calibration::{ECE_BINS, TEMPERATURE_JSON, TemperatureFile};
use taxon_eval::report;

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model folder (with model.json).
    pub model: PathBuf,
    /// Labelled data (JSONL, CSV/TSV or Parquet with `text` and `label`).
    pub data: PathBuf,
    /// Prediction threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write a self-contained HTML report (confusion matrix, training curves, reliability
    /// diagram, per-class table) to this file.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Fit a temperature on this labelled validation file (not the evaluated data) and report
    /// the ECE of DATA before and after scaling. Without it, a temperature.json in the model
    /// folder is applied when present.
    #[arg(long, value_name = "VAL")]
    pub calibrate_on: Option<PathBuf>,
    /// Write the fitted temperature to MODEL/temperature.json (the server will apply it to
    /// its probabilities; evaluation already does).
    #[arg(long, requires = "calibrate_on")]
    pub save_temperature: bool,
    /// Equal-width confidence bins of the expected calibration error.
    #[arg(long, default_value_t = ECE_BINS as u64, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub bins: u64,
}

pub fn run(args: EvalArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let tracking = super::runs::EvalTracking::start();
    let threads = args
        .threads
        .unwrap_or_else(taxon_train::driver::default_threads)
        .max(1);
    let bar = ctx.items_bar(0, "predicting");
    let progress = |n: u64, total: u64| {
        bar.set_length(total);
        bar.inc(n);
    };
    let opts = EvalOptions {
        threads,
        bins: usize::try_from(args.bins).unwrap_or(ECE_BINS),
        calibrate_on: args.calibrate_on.clone(),
        progress: Some(&progress),
    };
    let model = taxon_models::load(&args.model)
        .with_context(|| format!("loading {}", args.model.display()))?;
    let eval = taxon_eval::evaluate(model.as_ref(), &args.model, &args.data, &opts).with_context(
        || {
            format!(
                "evaluating {} on {}",
                args.model.display(),
                args.data.display()
            )
        },
    )?;
    bar.finish_and_clear();
    for w in &eval.warnings {
        ctx.info(format!("warning: {w}"));
    }
    if args.save_temperature {
        let fit = eval
            .calibrated
            .as_ref()
            .and_then(|c| c.fit.as_ref())
            .context("no temperature was fitted")?;
        let val = args.calibrate_on.clone().unwrap_or_default();
        let path = TemperatureFile::new(fit, &val)
            .write(&args.model)
            .with_context(|| format!("saving {TEMPERATURE_JSON}"))?;
        ctx.info(format!("wrote {}", path.display()));
    }
    if let Some(path) = &args.report {
        report::html::write(&eval, path).context("writing the HTML report")?;
        ctx.info(format!("wrote {}", path.display()));
    }
    tracking.finish(&args.model, &args.data, &eval, ctx);
    if ctx.json {
        print_json(&eval)?;
        return Ok(Outcome::Ok);
    }
    let m = &eval.metrics;
    println!(
        "{} examples: accuracy {:.2}%, macro-F1 {:.4} ({:.0} docs/s on {} threads)",
        m.examples,
        m.accuracy * 100.0,
        m.macro_f1,
        eval.docs_per_sec,
        eval.threads
    );
    if eval.unknown_label_examples > 0 {
        println!(
            "{} examples have a label the model does not know (counted as errors)",
            eval.unknown_label_examples
        );
    }
    let mut t = table(["label", "precision", "recall", "f1", "support"]);
    for c in &m.per_class {
        t.add_row(vec![
            c.label.clone(),
            format!("{:.4}", c.precision),
            format!("{:.4}", c.recall),
            format!("{:.4}", c.f1),
            c.support.to_string(),
        ]);
    }
    println!("{t}");
    let mut header = vec!["true \\ predicted".to_string()];
    header.extend(m.labels.iter().cloned());
    let mut cm = table(header);
    for (label, row) in m.labels.iter().zip(&m.confusion_matrix) {
        let mut cells = vec![label.clone()];
        cells.extend(row.iter().map(u64::to_string));
        cm.add_row(cells);
    }
    println!("{cm}");
    println!(
        "calibration ({} bins): ECE {:.4}, MCE {:.4}, NLL {:.4}",
        eval.reliability.len(),
        eval.ece,
        eval.mce,
        eval.nll
    );
    if let (Some(t), Some(c)) = (eval.temperature, &eval.calibrated) {
        println!(
            "temperature {t:.4} (from {}): ECE {:.4} -> {:.4}, NLL {:.4} -> {:.4}",
            c.source, eval.ece, c.ece, eval.nll, c.nll
        );
    }
    Ok(Outcome::Ok)
}
