//! `taxon eval MODEL_DIR DATA`: accuracy, macro-F1, per-class precision/recall/F1 and the
//! confusion matrix of a model on labelled data.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model folder (with model.json).
    pub model: PathBuf,
    /// Labelled data (JSONL with `text` and `label`).
    pub data: PathBuf,
    /// Prediction threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
}

pub fn run(args: EvalArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let tracking = super::runs::EvalTracking::start();
    let threads = args
        .threads
        .unwrap_or_else(taxon_train::driver::default_threads);
    let report = taxon_train::evaluate(&args.model, &args.data, threads).with_context(|| {
        format!(
            "evaluating {} on {}",
            args.model.display(),
            args.data.display()
        )
    })?;
    tracking.finish(&args.model, &args.data, &report, ctx);
    if ctx.json {
        print_json(&report)?;
        return Ok(Outcome::Ok);
    }
    let m = &report.metrics;
    println!(
        "{} examples: accuracy {:.2}%, macro-F1 {:.4} ({:.0} docs/s on {} threads)",
        m.examples,
        m.accuracy * 100.0,
        m.macro_f1,
        report.docs_per_sec,
        report.threads
    );
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
    Ok(Outcome::Ok)
}
