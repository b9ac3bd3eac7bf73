//! Speed of the bert encoder on CPU: inference at batch 32 and batch 1 (ms per sequence) and
//! fine-tuning (forward + backward + AdamW, sequences per second), medians over repeats.
//!
//! Run (release, one thread, a fine-tuned model folder and a JSONL file of `{"text": ..}` rows):
//!
//! ```text
//! cargo run --release -p taxon-models --example bert_speed -- \
//!     ~/.cache/taxon/bench-bert/model_e1_t2_head-tail_128_s0 \
//!     ~/.cache/taxon/bench-linear/data/bbc/test.jsonl [--threads 1] [--reps 3] [--only infer|train]
//! ```
//!
//! Set `CANDLE_NUM_THREADS=1` with `--threads 1`: candle sizes its own worker pool for
//! elementwise ops (and splits matmuls) by that variable, not by the rayon pool the model runs
//! in, so without it a "one thread" run still spins up one worker per core.
//!
//! For a profile: `perf record -g` on the built binary
//! (`$CARGO_TARGET_DIR/release/examples/bert_speed`) with the same arguments.

use std::path::PathBuf;
use std::time::Instant;

use taxon_core::model::TextClassifier;
use taxon_models::bert::{BertModel, BertTrainer};
use taxon_models::training::{AdamWOptions, Trainable};

/// CPU seconds (user + system) this process has used so far: under other load on the machine
/// a steadier measure than wall time (Linux only; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with ')'): utime and stime are the 12th and
    // 13th, in clock ticks of 1/100 s.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

/// Wall and CPU milliseconds of `f`.
fn timed(f: impl FnOnce()) -> (f64, f64) {
    let (t, c) = (Instant::now(), cpu_seconds());
    f();
    (t.elapsed().as_secs_f64() * 1e3, (cpu_seconds() - c) * 1e3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let positional: Vec<&String> = args
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--")))
        .map(|(_, a)| a)
        .collect();
    let [model_dir, data] = positional[..] else {
        return Err(
            "usage: bert_speed MODEL_DIR DATA.jsonl [--threads N] [--reps R] \
                    [--only infer|train]"
                .into(),
        );
    };
    let threads: usize = flag("--threads").map_or(Ok(1), |s| s.parse())?;
    let reps: usize = flag("--reps").map_or(Ok(3), |s| s.parse())?;
    let only = flag("--only").unwrap_or_default();
    let texts: Vec<String> = std::fs::read_to_string(data)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| -> Result<String, Box<dyn std::error::Error>> {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["text"].as_str().ok_or("row without a text")?.to_string())
        })
        .collect::<Result<_, _>>()?;
    if texts.len() < 32 {
        return Err(format!("{data}: need at least 32 rows, found {}", texts.len()).into());
    }
    // test.jsonl is sorted by label: take every k-th row for a mix.
    let step = texts.len() / 32;
    let sample: Vec<&str> = (0..32).map(|i| texts[i * step].as_str()).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    let model = BertModel::load(&PathBuf::from(model_dir))?;
    let tokens: usize = sample
        .iter()
        .map(|t| model.token_ids(t).map(|ids| ids.len()))
        .sum::<Result<_, _>>()?;
    println!(
        "model {model_dir}, {threads} thread(s), {reps} reps, batch of 32 with {:.1} tokens/text",
        tokens as f64 / 32.0
    );
    if only.is_empty() || only == "infer" {
        let predict = |texts: &[&str]| {
            let probs = model.predict_batch(texts).unwrap_or_else(|e| {
                eprintln!("prediction failed: {e}");
                std::process::exit(2)
            });
            drop(std::hint::black_box(probs));
        };
        pool.install(|| {
            predict(&sample[..2]); // warm-up
            let b32: Vec<(f64, f64)> = (0..reps).map(|_| timed(|| predict(&sample))).collect();
            // Batch 1: the first 8 texts one at a time per repeat.
            let b1: Vec<(f64, f64)> = (0..reps)
                .map(|_| {
                    timed(|| {
                        for t in sample.chunks(1).take(8) {
                            predict(t);
                        }
                    })
                })
                .collect();
            let per = |v: &[(f64, f64)], n: f64| {
                (
                    median(v.iter().map(|x| x.0 / n).collect()),
                    median(v.iter().map(|x| x.1 / n).collect()),
                )
            };
            let (w32, c32) = per(&b32, 32.0);
            let (w1, c1) = per(&b1, 8.0);
            println!("infer batch 32: {w32:.2} ms/seq wall, {c32:.2} ms/seq cpu (medians)");
            println!("infer batch 1:  {w1:.2} ms/seq wall, {c1:.2} ms/seq cpu (medians)");
        });
    }
    if only.is_empty() || only == "train" {
        let labels: Vec<String> = (0..4).map(|i| format!("l{i}")).collect();
        let rows: Vec<(&str, usize)> = sample
            .iter()
            .enumerate()
            .map(|(i, t)| (*t, i % 4))
            .collect();
        let opts = AdamWOptions {
            learning_rate: 5e-5,
            epochs: reps + 1,
            batch_size: 16,
            threads,
            ..AdamWOptions::default()
        };
        let base = model.config().base_model.clone();
        let base = if base.is_empty() || !PathBuf::from(&base).exists() {
            model_dir.clone()
        } else {
            base
        };
        let mut trainer = BertTrainer::new(
            &PathBuf::from(&base),
            model.config(),
            &opts,
            &labels,
            &rows,
            &[],
        )?;
        let mut rates = Vec::new();
        for epoch in 0..=reps {
            let (wall, cpu) = timed(|| {
                trainer.train_epoch(&()).map(drop).unwrap_or_else(|e| {
                    eprintln!("training failed: {e}");
                    std::process::exit(2)
                })
            });
            if epoch > 0 {
                // The first epoch warms up.
                rates.push((
                    rows.len() as f64 * 1e3 / wall,
                    rows.len() as f64 * 1e3 / cpu,
                ));
            }
        }
        println!(
            "train (batch 16, fwd+bwd+AdamW): {:.2} seq/s wall, {:.2} seq/s cpu (medians)",
            median(rates.iter().map(|r| r.0).collect()),
            median(rates.iter().map(|r| r.1).collect()),
        );
    }
    Ok(())
}
