//! `taxon model`: operations on a trained model folder. `taxon model optimize MODEL --output OUT
//! [--int8] [--prune AMOUNT] [--data TEST]` writes an int8 and/or pruned copy of a bert model
//! (a normal model folder: it loads, evaluates, serves and registers like any other) and, with
//! labelled data, measures size, latency and accuracy before and after into OUT/optimize.json,
//! which `taxon eval --report` shows.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{ArgGroup, Args, Subcommand};
use serde::Serialize;
use taxon_core::model::{ModelDescription, TextClassifier};
use taxon_eval::optimize::{
    self as measure, BATCH, BATCHES, ModelMeasure, OPTIMIZE_JSON, OptimizeReport,
    SYNTHETIC_SAMPLES, SYNTHETIC_TEXTS, synthetic_texts,
};
use taxon_models::bert::optimize::PruneStats;
use taxon_models::bert::{self, BertModel, OptimizeOptions, WEIGHTS};

use crate::ctx::{Ctx, Outcome};
use crate::output::{human_bytes, print_json, table};

#[derive(Debug, Subcommand)]
pub enum ModelCmd {
    /// Make a bert model smaller and faster for inference: int8 quantization of the encoder's
    /// dense layers (AVX-512 VNNI, AVX2 or portable kernels, whichever this CPU runs) and/or
    /// global magnitude pruning. Writes a normal model folder to --output; with --data,
    /// evaluates before and after (file size, latency at batch 1 and 32, accuracy, macro-F1)
    /// and records that in OUT/optimize.json. With --int8 it first times the f32 and int8
    /// models on this machine (on --data's texts, or synthetic ones) and writes nothing when
    /// int8 is slower, unless --allow-slower. Exit codes: 0 done, 1 the accuracy drop exceeded
    /// --max-accuracy-drop, 2 an error (int8 slower included).
    Optimize(OptimizeArgs),
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("what").required(true).multiple(true).args(["int8", "prune"])))]
pub struct OptimizeArgs {
    /// A fine-tuned bert model folder (with model.json). linear and lstm models are not
    /// supported.
    pub model: PathBuf,
    /// Folder for the optimized model (created; must not be MODEL).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Quantize the encoder's dense layers (Q, K, V, attention output, FFN) to int8 with one
    /// scale per output channel; activations are quantized per row at run time.
    #[arg(long)]
    pub int8: bool,
    /// Zero this fraction (0 <= AMOUNT < 1) of the encoder's dense weights, those with the
    /// smallest magnitude across all layers together (global L1 pruning).
    #[arg(long, value_name = "AMOUNT", value_parser = parse_fraction)]
    pub prune: Option<f64>,
    /// Labelled data (JSONL, CSV/TSV or Parquet with `text` and `label`) to measure accuracy,
    /// macro-F1 and latency on, before and after.
    #[arg(long, value_name = "TEST")]
    pub data: Option<PathBuf>,
    /// Threads for the measurements (1 gives per-core latencies; candle's f32 matmul also
    /// follows RAYON_NUM_THREADS).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub threads: u64,
    /// Texts scored one at a time for the batch-1 latency (spread over the data).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub latency_samples: u64,
    /// Fail (exit 1) when accuracy drops by more than this many percentage points (needs
    /// --data); the optimized model is written anyway.
    #[arg(long, value_name = "POINTS", requires = "data")]
    pub max_accuracy_drop: Option<f64>,
    /// Write the int8 model even when it is slower than the f32 one on this machine (e.g. to
    /// serve it on a faster one). Without it, `--int8` refuses, naming the kernels it timed.
    #[arg(long, requires = "int8")]
    pub allow_slower: bool,
}

fn parse_fraction(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number (expected a fraction like 0.3)"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{v} is not a fraction in [0, 1) of the weights to zero"
        ))
    }
}

pub fn run(cmd: ModelCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        ModelCmd::Optimize(a) => optimize(a, ctx),
    }
}

/// The JSON answer of `taxon model optimize --json`: the report plus where things went.
#[derive(Serialize)]
struct Answer<'a> {
    output: &'a Path,
    #[serde(flatten)]
    report: &'a OptimizeReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    prune_stats: Option<PruneStats>,
}

fn optimize(args: OptimizeArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let desc = ModelDescription::read(&args.model)
        .with_context(|| format!("reading the model folder {}", args.model.display()))?;
    if desc.model_type != bert::MODEL_TYPE {
        bail!(
            "{}: model type {:?}: `taxon model optimize` works on bert models only (int8 \
             quantization and pruning of linear and lstm models are not implemented)",
            args.model.display(),
            desc.model_type
        );
    }
    if same_folder(&args.model, &args.output) {
        bail!(
            "--output {} is the model folder itself: choose a new folder",
            args.output.display()
        );
    }
    let threads = usize::try_from(args.threads).unwrap_or(1);
    let opts = OptimizeOptions {
        int8: args.int8,
        prune: args.prune.unwrap_or(0.0),
    };
    let rows = match &args.data {
        Some(d) => Some(
            taxon_dataset::read_labelled(d).with_context(|| format!("reading {}", d.display()))?,
        ),
        None => None,
    };
    bert::optimize::with_threads(threads, || -> anyhow::Result<Outcome> {
        let model = BertModel::load(&args.model)
            .with_context(|| format!("loading {}", args.model.display()))?;
        let (optimized, stats) = model
            .optimize(&opts)
            .with_context(|| format!("optimizing {}", args.model.display()))?;
        // Speed before anything is written: an int8 model slower than the f32 one on this
        // machine is refused (the f32 matmul can beat an int8 kernel the CPU lacks the
        // instructions for).
        let (mut before, mut after) = (ModelMeasure::default(), ModelMeasure::default());
        let mut latency_samples = None;
        if args.int8 || rows.is_some() {
            let synthetic;
            let (texts, samples): (Vec<&str>, u64) = match &rows {
                Some(rows) => (
                    rows.iter().map(|r| r.0.as_str()).collect(),
                    args.latency_samples,
                ),
                None => {
                    synthetic = synthetic_texts(SYNTHETIC_TEXTS);
                    let t = synthetic.iter().map(String::as_str).collect();
                    (t, args.latency_samples.min(SYNTHETIC_SAMPLES))
                }
            };
            latencies(
                [&model, &optimized],
                [&mut before, &mut after],
                &texts,
                samples,
                ctx,
            )
            .context("timing the models")?;
            latency_samples = Some(samples.min(texts.len() as u64));
        }
        if args.int8 {
            check_speed(&before, &after, &args.output, args.allow_slower, ctx)?;
        }
        optimized
            .save(&args.output)
            .with_context(|| format!("saving the optimized model to {}", args.output.display()))?;
        // Measure the folder as written, loaded back like any model.
        let optimized = BertModel::load(&args.output)
            .with_context(|| format!("loading the optimized model {}", args.output.display()))?;
        let sized = |dir: &Path, m: &ModelMeasure| -> anyhow::Result<ModelMeasure> {
            Ok(ModelMeasure {
                latency_ms_batch1: m.latency_ms_batch1,
                ms_per_seq_batch32: m.ms_per_seq_batch32,
                ..measure::sizes(dir, WEIGHTS)?
            })
        };
        let mut before = sized(&args.model, &before)?;
        let mut after = sized(&args.output, &after)?;
        if let (Some(rows), Some(data)) = (&rows, &args.data) {
            quality(&model, &args.model, rows, "before", &mut before, ctx).with_context(|| {
                format!("evaluating {} on {}", args.model.display(), data.display())
            })?;
            quality(&optimized, &args.output, rows, "after", &mut after, ctx).with_context(
                || format!("evaluating {} on {}", args.output.display(), data.display()),
            )?;
        }
        let report = OptimizeReport {
            source: args.model.clone(),
            int8: args.int8,
            prune: opts.prune,
            sparsity: optimized.dense_sparsity(),
            data: args.data.clone(),
            examples: rows.as_ref().map(|r| r.len() as u64),
            latency_samples,
            threads,
            kernel: if args.int8 {
                bert::optimize::int8_kernel().to_string()
            } else {
                "f32".into()
            },
            before,
            after,
        };
        let path = report
            .write(&args.output)
            .with_context(|| format!("writing {OPTIMIZE_JSON}"))?;
        ctx.info(format!(
            "wrote {} and {}",
            args.output.display(),
            path.display()
        ));
        let drop = match (report.before.accuracy, report.after.accuracy) {
            (Some(b), Some(a)) => Some((b - a) * 100.0),
            _ => None,
        };
        if ctx.json {
            print_json(&Answer {
                output: &args.output,
                report: &report,
                prune_stats: stats,
            })?;
        } else {
            print_table(&report, &args.output, stats.as_ref());
        }
        match (args.max_accuracy_drop, drop) {
            (Some(max), Some(d)) if d > max => {
                eprintln!("accuracy dropped by {d:.2} points, more than --max-accuracy-drop {max}");
                Ok(Outcome::CheckFailed)
            }
            _ => Ok(Outcome::Ok),
        }
    })
    .context("starting the measurement threads")?
}

/// Whether `a` and `b` name the same existing folder.
fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Accuracy and macro-F1 on the whole file, with a progress bar.
fn quality(
    model: &BertModel,
    dir: &Path,
    rows: &[(String, String)],
    label: &str,
    into: &mut ModelMeasure,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let bar = ctx.items_bar(rows.len() as u64, &format!("evaluating {label}"));
    let progress = |n: u64, _total: u64| bar.inc(n);
    measure::quality(model, dir, rows, into, Some(&progress))?;
    bar.finish_and_clear();
    Ok(())
}

/// [`measure::latencies`] of both models, with a progress bar.
fn latencies(
    models: [&BertModel; 2],
    into: [&mut ModelMeasure; 2],
    texts: &[&str],
    samples: u64,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let bar = ctx.items_bar(0, "timing");
    let progress = |n: u64, total: u64| {
        bar.set_length(total);
        bar.inc(n);
    };
    let models = models.map(|m| m as &dyn TextClassifier);
    measure::latencies(models, into, texts, samples, &progress)?;
    bar.finish_and_clear();
    Ok(())
}

/// Refuses (an error naming the kernels) an int8 model slower at batch 32 than the f32 one,
/// unless `allow_slower`, which writes it with a warning; says the speed-up otherwise.
fn check_speed(
    f32: &ModelMeasure,
    int8: &ModelMeasure,
    output: &Path,
    allow_slower: bool,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let (Some(f), Some(q)) = (f32.ms_per_seq_batch32, int8.ms_per_seq_batch32) else {
        return Ok(());
    };
    let kernels = taxon_kernels::paths();
    if q <= f {
        ctx.info(format!(
            "int8 is {:.2}x as fast as f32 at batch 32 on this machine: {q:.2} vs {f:.2} ms \
             per text, kernels {kernels}",
            f / q
        ));
        return Ok(());
    }
    let what = format!(
        "the int8 model is slower than the f32 one on this machine: {q:.2} vs {f:.2} ms per \
         text at batch 32, with kernels {kernels}"
    );
    if allow_slower {
        eprintln!("warning: {what}; writing it anyway (--allow-slower)");
        return Ok(());
    }
    bail!(
        "{what}; {} not written (--allow-slower writes it anyway, e.g. to serve on a CPU with \
         a faster int8 kernel)",
        output.display()
    )
}

fn print_table(r: &OptimizeReport, output: &Path, stats: Option<&PruneStats>) {
    let what = match (r.int8, r.prune > 0.0) {
        (true, true) => format!("int8 + pruned {}", r.prune),
        (true, false) => "int8".to_string(),
        _ => format!("pruned {}", r.prune),
    };
    println!(
        "{} -> {} ({what}; dense-weight sparsity {:.1}%; kernel {})",
        r.source.display(),
        output.display(),
        r.sparsity * 100.0,
        r.kernel
    );
    if let Some(s) = stats {
        println!(
            "pruned {} of {} dense weights (|w| <= {:.3e})",
            s.zeroed, s.total, s.threshold
        );
    }
    let (b, a) = (&r.before, &r.after);
    let mut t = table(["", "before", "after", "change"]);
    let ratio = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}x", x / y)
        } else {
            "-".into()
        }
    };
    t.add_row(vec![
        "size".to_string(),
        human_bytes(b.size_bytes),
        human_bytes(a.size_bytes),
        format!(
            "{} smaller",
            ratio(b.size_bytes as f64, a.size_bytes as f64)
        ),
    ]);
    t.add_row(vec![
        "weights file".to_string(),
        human_bytes(b.weights_bytes),
        human_bytes(a.weights_bytes),
        format!(
            "{} smaller",
            ratio(b.weights_bytes as f64, a.weights_bytes as f64)
        ),
    ]);
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".to_string(), f);
    if let (Some(x), Some(y)) = (b.latency_ms_batch1, a.latency_ms_batch1) {
        t.add_row(vec![
            "latency batch 1 (ms, median)".to_string(),
            format!("{x:.2}"),
            format!("{y:.2}"),
            format!("{} faster", ratio(x, y)),
        ]);
    }
    if let (Some(x), Some(y)) = (b.ms_per_seq_batch32, a.ms_per_seq_batch32) {
        t.add_row(vec![
            "ms per text, batch 32".to_string(),
            format!("{x:.2}"),
            format!("{y:.2}"),
            format!("{} faster", ratio(x, y)),
        ]);
    }
    if b.accuracy.is_some() {
        t.add_row(vec![
            "accuracy".to_string(),
            opt(b.accuracy, &|v| format!("{:.2}%", v * 100.0)),
            opt(a.accuracy, &|v| format!("{:.2}%", v * 100.0)),
            match (b.accuracy, a.accuracy) {
                (Some(x), Some(y)) => format!("{:+.2} points", (y - x) * 100.0),
                _ => "-".into(),
            },
        ]);
        t.add_row(vec![
            "macro-F1".to_string(),
            opt(b.macro_f1, &|v| format!("{v:.4}")),
            opt(a.macro_f1, &|v| format!("{v:.4}")),
            match (b.macro_f1, a.macro_f1) {
                (Some(x), Some(y)) => format!("{:+.4}", y - x),
                _ => "-".into(),
            },
        ]);
    }
    println!("{t}");
    if let (Some(d), Some(n)) = (&r.data, r.examples) {
        println!(
            "accuracy on all {n} texts of {}; latency over {} texts one at a time and up to \
             {} texts in batches of {BATCH}, the two models alternating, {} thread(s)",
            d.display(),
            r.latency_samples.unwrap_or(0),
            BATCH * BATCHES,
            r.threads,
        );
    } else if let Some(k) = r.latency_samples {
        println!(
            "latency over {k} synthetic texts one at a time and {SYNTHETIC_TEXTS} in batches of \
             {BATCH} (no --data), the two models alternating, {} thread(s)",
            r.threads,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(ms: f64) -> ModelMeasure {
        ModelMeasure {
            ms_per_seq_batch32: Some(ms),
            ..ModelMeasure::default()
        }
    }

    #[test]
    fn a_slower_int8_model_is_refused_naming_the_kernels_unless_allowed() {
        let ctx = Ctx::new(false, true);
        let out = Path::new("opt");
        let err = check_speed(&timed(10.0), &timed(12.5), out, false, &ctx).unwrap_err();
        let msg = err.to_string();
        for part in [
            "12.50 vs 10.00",
            "int8=",
            "fused=",
            "opt not written",
            "--allow-slower",
        ] {
            assert!(msg.contains(part), "{part:?} missing from {msg}");
        }
        check_speed(&timed(10.0), &timed(12.5), out, true, &ctx).unwrap();
        check_speed(&timed(10.0), &timed(4.0), out, false, &ctx).unwrap();
        check_speed(&timed(10.0), &timed(10.0), out, false, &ctx).unwrap();
        // Nothing timed (pruning only): nothing to check.
        check_speed(&ModelMeasure::default(), &timed(99.0), out, false, &ctx).unwrap();
    }
}
