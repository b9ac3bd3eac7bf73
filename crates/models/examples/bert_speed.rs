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
//! For a profile: `perf record -g` on the built binary
//! (`$CARGO_TARGET_DIR/release/examples/bert_speed`) with the same arguments.

use std::path::PathBuf;
use std::time::Instant;

use taxon_core::model::TextClassifier;
use taxon_models::bert::{BertModel, BertTrainer};
use taxon_models::lstm::AdamWOptions;

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
    let tokens: usize = sample.iter().map(|t| model.encode(t).len()).sum();
    println!(
        "model {model_dir}, {threads} thread(s), {reps} reps, batch of 32 with {:.1} tokens/text",
        tokens as f64 / 32.0
    );
    if only.is_empty() || only == "infer" {
        pool.install(|| {
            model.predict_batch(&sample[..2]); // warm-up
            let b32: Vec<f64> = (0..reps)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(model.predict_batch(&sample));
                    t.elapsed().as_secs_f64() * 1e3 / 32.0
                })
                .collect();
            let b1: Vec<f64> = (0..reps.max(8))
                .map(|i| {
                    let t = Instant::now();
                    std::hint::black_box(model.predict_batch(&sample[i % 32..i % 32 + 1]));
                    t.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            println!(
                "infer batch 32: {:.2} ms/seq (median; runs {:?})",
                median(b32.clone()),
                b32.iter().map(|x| format!("{x:.1}")).collect::<Vec<_>>()
            );
            println!("infer batch 1:  {:.2} ms/seq (median)", median(b1));
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
            let t = Instant::now();
            trainer.run_epoch(&())?;
            let rate = rows.len() as f64 / t.elapsed().as_secs_f64();
            if epoch > 0 {
                rates.push(rate); // the first epoch warms up
            }
        }
        println!(
            "train (batch 16, fwd+bwd+AdamW): {:.2} seq/s (median; runs {:?})",
            median(rates.clone()),
            rates.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>()
        );
    }
    Ok(())
}
