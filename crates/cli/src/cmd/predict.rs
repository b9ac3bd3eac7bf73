//! `taxon predict MODEL_DIR FILE`: batch scoring as a stream. Reads FILE (JSONL, CSV/TSV or
//! Parquet; labels optional) in batches of `--batch-size` rows, scores each batch over
//! `--threads` threads and writes one JSON line per input row, in input order:
//! `{"label": ..., "scores": {label: p, ...}}` (plus `"text"` with `--include-text`). Memory is
//! bounded by one batch, whatever the file's size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use taxon_core::model::{ModelError, TextClassifier};
use taxon_dataset::{DatasetReader, ReadOptions};

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// Model folder (with model.json).
    pub model: PathBuf,
    /// Texts to score: JSONL, CSV/TSV or Parquet with a text field (a label field is ignored).
    pub file: PathBuf,
    /// Write the predictions here (JSONL) instead of stdout; written atomically.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
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
    let model = taxon_models::load(&args.model)
        .with_context(|| format!("loading the model in {}", args.model.display()))?;
    let opts = ReadOptions {
        text_field: args.text_field.clone(),
        label_required: false,
        batch_size: args.batch_size,
        ..ReadOptions::default()
    };
    let mut reader = DatasetReader::open(&args.file, &opts)?;
    let size = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
    let bar = ctx.bytes_bar(size, "predicting");

    // Output: stdout, or a temporary file beside OUT renamed into place at the end.
    let tmp = args.output.as_deref().map(tmp_path);
    let mut out: Box<dyn Write> = match &tmp {
        Some(t) => Box::new(BufWriter::new(
            File::create(t).with_context(|| format!("creating {}", t.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let labels = model.labels().to_vec();
    let mut rows = 0u64;
    let result = (|| -> anyhow::Result<()> {
        while let Some(batch) = reader.next_batch()? {
            let texts: Vec<&str> = batch.iter().map(|r| r.text.as_str()).collect();
            let probs = score(model.as_ref(), &texts, threads).with_context(|| {
                format!("scoring rows {}..={}", rows + 1, rows + texts.len() as u64)
            })?;
            for (t, p) in texts.iter().zip(&probs) {
                write_line(&mut out, &labels, p, args.include_text.then_some(*t))?;
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
        return Err(e.context(format!("predicting {}", args.file.display())));
    }
    if let (Some(t), Some(o)) = (&tmp, &args.output) {
        std::fs::rename(t, o).with_context(|| format!("moving predictions to {}", o.display()))?;
        ctx.info(format!("{rows} predictions written to {}", o.display()));
    }
    Ok(Outcome::Ok)
}

fn tmp_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp-{}", std::process::id()));
    out.with_file_name(name)
}
