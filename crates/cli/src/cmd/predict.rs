//! `taxon predict MODEL_DIR FILE`: batch scoring as a stream. Reads FILE (JSONL, CSV/TSV or
//! Parquet; labels optional) in batches of `--batch-size` rows, scores each batch over
//! `--threads` threads and writes one JSON line per input row, in input order:
//! `{"label": ..., "scores": {label: p, ...}}` (plus `"text"` with `--include-text`). Memory is
//! bounded by one batch, whatever the file's size.
//!
//! FILE and `--output` may be `s3://bucket/key` URLs (fetched into, and sent from, a temporary
//! file: see [`crate::s3file`]), and `--shard I/N` scores only the rows whose index (from 0,
//! in input order) is I modulo N, so N processes (an Indexed Job's pods) score one large file
//! in parallel: shard I's line j is the prediction of input row `j * N + I`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use taxon_core::model::{ModelError, TextClassifier};
use taxon_dataset::{DatasetReader, ReadOptions};

use crate::ctx::{Ctx, Outcome};
use crate::s3file::S3Object;

/// `--shard I/N`: this process scores the rows whose index is I modulo N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    fn holds(&self, row: u64) -> bool {
        row % self.count == self.index
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?}: expected I/N with 0 <= I < N (for example 0/4)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: u64 = i.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model folder (with model.json).
    pub model: PathBuf,
    /// Texts to score: JSONL, CSV/TSV or Parquet with a text field (a label field is ignored);
    /// a path or an `s3://bucket/key` URL (endpoint and credentials from `AWS_*` env).
    pub file: PathBuf,
    /// Write the predictions here (JSONL) instead of stdout, atomically: a path or an
    /// `s3://bucket/key` URL.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Score only the rows whose index (from 0) is I modulo N, in input order: N runs with
    /// I = 0..N-1 together score every row once (an Indexed Job's `$JOB_COMPLETION_INDEX/N`).
    #[arg(long, value_name = "I/N")]
    pub shard: Option<Shard>,
    /// Rows read and scored at a time (memory is bounded by one batch).
    #[arg(long, default_value_t = 4096)]
    pub batch_size: usize,
    /// Prediction threads (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Field holding the text (JSONL key, CSV/TSV header, Parquet column).
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Copy each input text into its output line as `"text"`.
    #[arg(long)]
    pub include_text: bool,
}

/// Scores `texts` with `model` over up to `threads` threads, keeping their order; the first
/// model error stops the scoring.
fn score(
    model: &dyn TextClassifier,
    texts: &[&str],
    threads: usize,
) -> Result<Vec<Vec<f32>>, ModelError> {
    let threads = threads.clamp(1, texts.len().max(1));
    if threads == 1 {
        return model.predict_batch(texts);
    }
    let chunk = texts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(chunk)
            .map(|part| s.spawn(move || model.predict_batch(part)))
            .collect();
        let mut out = Vec::with_capacity(texts.len());
        for h in handles {
            // A panicking model is a bug: it goes on as a panic, never as missing rows.
            out.extend(
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?,
            );
        }
        Ok(out)
    })
}

/// One output line: label, scores in the model's label order, optional text.
fn write_line(
    out: &mut dyn Write,
    labels: &[String],
    probs: &[f32],
    text: Option<&str>,
) -> std::io::Result<()> {
    let best = probs
        .iter()
        .enumerate()
        .fold(0, |b, (i, &p)| if p > probs[b] { i } else { b });
    let label = labels.get(best).map(String::as_str).unwrap_or_default();
    let mut line = String::with_capacity(32 + 24 * labels.len());
    line.push_str("{\"label\":");
    line.push_str(&serde_json::to_string(label).unwrap_or_default());
    line.push_str(",\"scores\":{");
    for (i, (l, p)) in labels.iter().zip(probs).enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&serde_json::to_string(l).unwrap_or_default());
        line.push(':');
        line.push_str(&serde_json::to_string(p).unwrap_or_default());
    }
    line.push('}');
    if let Some(t) = text {
        line.push_str(",\"text\":");
        line.push_str(&serde_json::to_string(t).unwrap_or_default());
    }
    line.push_str("}\n");
    out.write_all(line.as_bytes())
}

pub fn run(args: PredictArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let threads = args
        .threads
        .unwrap_or_else(taxon_train::driver::default_threads);
    let s3_in = S3Object::parse(&args.file).transpose()?;
    let s3_out = match &args.output {
        Some(o) => S3Object::parse(o).transpose()?,
        None => None,
    };
    let model = taxon_models::load(&args.model)
        .with_context(|| format!("loading the model in {}", args.model.display()))?;

    // S3 objects go through a temporary folder ($TMPDIR): the input is fetched whole before
    // scoring starts, the output is sent once it is complete.
    let staging = if s3_in.is_some() || s3_out.is_some() {
        Some(tempfile::tempdir().context("creating a temporary folder for S3 transfers")?)
    } else {
        None
    };
    let input = match (&s3_in, &staging) {
        (Some(obj), Some(dir)) => {
            let local = dir.path().join(obj.file_name());
            obj.download(&local)?;
            local
        }
        _ => args.file.clone(),
    };
    let output = match (&s3_out, &staging, &args.output) {
        (Some(_), Some(dir), _) => Some(dir.path().join("predictions.jsonl")),
        (_, _, o) => o.clone(),
    };

    let rows = score_file(
        &args,
        model.as_ref(),
        &input,
        output.as_deref(),
        threads,
        ctx,
    )
    .with_context(|| format!("predicting {}", args.file.display()))?;
    match (&s3_out, &output, &args.output) {
        (Some(obj), Some(local), Some(url)) => {
            obj.upload(local)?;
            ctx.info(format!("{rows} predictions written to {}", url.display()));
        }
        (None, Some(_), Some(o)) => {
            ctx.info(format!("{rows} predictions written to {}", o.display()));
        }
        _ => {}
    }
    Ok(Outcome::Ok)
}

/// Scores the local file `input` into `output` (stdout when `None`, else atomically through a
/// temporary file beside it); returns the number of predictions written.
fn score_file(
    args: &PredictArgs,
    model: &dyn TextClassifier,
    input: &Path,
    output: Option<&Path>,
    threads: usize,
    ctx: &Ctx,
) -> anyhow::Result<u64> {
    let opts = ReadOptions {
        text_field: args.text_field.clone(),
        label_required: false,
        batch_size: args.batch_size,
        ..ReadOptions::default()
    };
    let mut reader = DatasetReader::open(input, &opts)?;
    let size = std::fs::metadata(input).map(|m| m.len()).unwrap_or(0);
    let bar = ctx.bytes_bar(size, "predicting");

    // Output: stdout, or a temporary file beside OUT renamed into place at the end.
    let tmp = output.map(tmp_path);
    let mut out: Box<dyn Write> = match &tmp {
        Some(t) => Box::new(BufWriter::new(
            File::create(t).with_context(|| format!("creating {}", t.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let labels = model.labels().to_vec();
    let mut read = 0u64;
    let mut rows = 0u64;
    let result = (|| -> anyhow::Result<()> {
        while let Some(batch) = reader.next_batch()? {
            let first = read;
            read += batch.len() as u64;
            let texts: Vec<&str> = batch
                .iter()
                .enumerate()
                .filter(|(i, _)| args.shard.is_none_or(|s| s.holds(first + *i as u64)))
                .map(|(_, r)| r.text.as_str())
                .collect();
            if !texts.is_empty() {
                let probs = score(model, &texts, threads)
                    .with_context(|| format!("scoring input rows {}..={}", first + 1, read))?;
                for (t, p) in texts.iter().zip(&probs) {
                    write_line(&mut out, &labels, p, args.include_text.then_some(*t))?;
                }
            }
            rows += texts.len() as u64;
            bar.set_position(reader.bytes_read());
        }
        out.flush()?;
        Ok(())
    })();
    drop(out);
    bar.finish_and_clear();
    if let Err(e) = result {
        if let Some(t) = &tmp {
            let _ = std::fs::remove_file(t);
        }
        return Err(e);
    }
    if let (Some(t), Some(o)) = (&tmp, output) {
        std::fs::rename(t, o).with_context(|| format!("moving predictions to {}", o.display()))?;
    }
    Ok(rows)
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    out.with_file_name(name)
}
