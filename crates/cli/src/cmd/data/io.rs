//! `taxon data stats` and `taxon data import`: dataset files in, statistics or a seeded
//! train/test split out. [`ReadFlags`] holds the read options that every command reading a
//! dataset file shares (`#[command(flatten)]` it).

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, ValueEnum};
use taxon_core::DatasetStats;
use taxon_dataset::stats::merge_columns;
use taxon_dataset::{
    DatasetReader, Format, OnError, ReadError, ReadOptions, SplitSummary, StatsBuilder,
};

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

/// A dataset file format, as named on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Jsonl,
    Csv,
    Tsv,
    Parquet,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Csv => Format::Csv,
            FormatArg::Tsv => Format::Tsv,
            FormatArg::Parquet => Format::Parquet,
        }
    }
}

/// What to do with a row that cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnErrorArg {
    /// Stop at the first bad row, naming it (path:line).
    Fail,
    /// Skip bad rows, count them and report the count.
    Skip,
}

impl From<OnErrorArg> for OnError {
    fn from(o: OnErrorArg) -> OnError {
        match o {
            OnErrorArg::Fail => OnError::Fail,
            OnErrorArg::Skip => OnError::Skip,
        }
    }
}

/// How to read dataset files: format, field names, bad-row policy.
#[derive(Clone, Debug, Args)]
pub struct ReadFlags {
    /// File format (default: from the extension: .jsonl/.ndjson/.json, .csv, .tsv, .parquet).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Field (JSON key, CSV/TSV header, Parquet column) holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Field holding the label.
    #[arg(long, default_value = "label")]
    pub label_field: String,
    /// Accept rows without a label (otherwise a missing label is a bad row).
    #[arg(long)]
    pub allow_unlabelled: bool,
    /// What to do with a bad row (malformed, invalid UTF-8, missing field, wrong type).
    #[arg(long, value_enum, default_value = "fail")]
    pub on_error: OnErrorArg,
}

impl ReadFlags {
    /// The library options these flags stand for.
    pub fn to_options(&self) -> ReadOptions {
        ReadOptions {
            format: self.format.map(Format::from),
            text_field: self.text_field.clone(),
            label_field: self.label_field.clone(),
            label_required: !self.allow_unlabelled,
            on_error: self.on_error.into(),
            ..ReadOptions::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Dataset files (read as one dataset).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub read: ReadFlags,
}

/// Prints the count (and, unless quiet, the first errors) of skipped rows on stderr.
fn report_skipped(ctx: &Ctx, skipped: u64, samples: &[String]) {
    if skipped == 0 {
        return;
    }
    eprintln!("skipped {skipped} rows that could not be read (--on-error skip)");
    if !ctx.quiet {
        for s in samples {
            eprintln!("  {s}");
        }
    }
}

pub fn stats(args: StatsArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let opts = args.read.to_options();
    let mut files = Vec::with_capacity(args.files.len());
    let mut total_bytes = 0;
    for path in &args.files {
        let format = match opts.format {
            Some(f) => f,
            None => Format::from_path(path)
                .ok_or_else(|| ReadError::UnknownFormat { path: path.clone() })?,
        };
        let len = std::fs::metadata(path)
            .map_err(|e| ReadError::Io {
                path: path.clone(),
                source: e,
            })?
            .len();
        total_bytes += len;
        files.push((path.clone(), format));
    }

    let bar = ctx.bytes_bar(total_bytes, "reading");
    let mut builder = StatsBuilder::new();
    let mut columns = Vec::new();
    let mut skipped = 0;
    let mut samples = Vec::new();
    let mut done_bytes = 0;
    for (path, format) in &files {
        let mut reader = DatasetReader::open_as(path, *format, &opts)?;
        merge_columns(&mut columns, reader.columns());
        while let Some(batch) = reader.next_batch()? {
            for record in &batch {
                builder.add(record);
            }
            bar.set_position(done_bytes + reader.bytes_read());
        }
        done_bytes += std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        bar.set_position(done_bytes);
        skipped += reader.skipped();
        samples.extend(reader.skipped_samples().iter().map(|e| e.to_string()));
    }
    bar.finish_and_clear();
    let stats = builder.finish(skipped);
    report_skipped(ctx, skipped, &samples);

    if ctx.json {
        print_json(&stats)?;
    } else {
        print_stats(&args.files, &columns, &stats);
    }
    Ok(Outcome::Ok)
}

fn print_stats(files: &[PathBuf], columns: &[String], s: &DatasetStats) {
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    println!("{}: {} rows", names.join(", "), s.rows);
    println!("columns: {}", columns.join(", "));
    if !s.label_counts.is_empty() {
        let shares = s.label_shares();
        let mut t = table(["label", "rows", "share"]);
        for (label, count) in &s.label_counts {
            let share = shares.get(label).copied().unwrap_or(0.0);
            t.add_row(vec![
                label.clone(),
                count.to_string(),
                format!("{:.1}%", share * 100.0),
            ]);
        }
        println!("{t}");
    }
    let labelled: u64 = s.label_counts.values().sum();
    if labelled < s.rows {
        println!("unlabelled rows: {}", s.rows - labelled);
    }
    let q = &s.text_length_chars;
    println!(
        "text length (chars): min {} | p25 {} | p50 {} | p75 {} | p95 {} | p99 {} | max {} | mean {:.1}",
        q.min, q.p25, q.p50, q.p75, q.p95, q.p99, q.max, q.mean
    );
    println!("vocabulary: {} distinct words", s.vocabulary_size);
    println!(
        "duplicates: {:.2}% of rows repeat an earlier text",
        s.duplicate_rate * 100.0
    );
    if s.skipped_rows > 0 {
        println!("skipped rows: {}", s.skipped_rows);
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Folder with one sub-folder per label holding text files (`ROOT/<label>/<file>`).
    pub root: PathBuf,
    /// Output folder for train.jsonl and test.jsonl.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Share of each label's files that goes to test (rounded per label).
    #[arg(long, default_value_t = 0.2)]
    pub test_ratio: f64,
    /// Seed of the per-label shuffle (ChaCha8); the same seed gives byte-identical files.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

pub fn import(args: ImportArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let summary =
        taxon_dataset::import_label_folders(&args.root, &args.out, args.test_ratio, args.seed)
            .with_context(|| format!("importing {}", args.root.display()))?;
    if summary.lossy_files > 0 {
        eprintln!(
            "warning: {} files held invalid UTF-8 (replaced by U+FFFD)",
            summary.lossy_files
        );
        if !ctx.quiet {
            for p in &summary.lossy_examples {
                eprintln!("  {}", p.display());
            }
        }
    }
    if summary.empty_files > 0 {
        ctx.info(format!("{} empty files were skipped", summary.empty_files));
    }
    if ctx.json {
        print_json(&summary)?;
    } else {
        print_split(&summary);
    }
    Ok(Outcome::Ok)
}

fn print_split(s: &SplitSummary) {
    let mut t = table(["label", "train", "test", "total"]);
    for (label, c) in &s.labels {
        t.add_row(vec![
            label.clone(),
            c.train.to_string(),
            c.test.to_string(),
            (c.train + c.test).to_string(),
        ]);
    }
    t.add_row(vec![
        "(all)".to_string(),
        s.train_rows.to_string(),
        s.test_rows.to_string(),
        (s.train_rows + s.test_rows).to_string(),
    ]);
    println!("{t}");
    println!(
        "wrote {} ({} rows) and {} ({} rows); test ratio {}, seed {}",
        s.train_path.display(),
        s.train_rows,
        s.test_path.display(),
        s.test_rows,
        s.test_ratio,
        s.seed
    );
}
