//! Helpers for integration tests of the `bert` model type through the binary: a synthetic
//! two-label task (sport vs money words among filler) and a tiny random BERT checkpoint whose
//! vocabulary covers it.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use taxon_models::bert::RandomCheckpoint;

pub const SPORT: [&str; 6] = ["goal", "match", "team", "coach", "league", "striker"];
pub const MONEY: [&str; 6] = ["bank", "market", "shares", "profit", "bond", "rates"];
pub const FILLER: [&str; 6] = ["the", "a", "of", "on", "said", "today"];

/// `taxon` run inside `dir`, recording runs there.
pub fn taxon_in(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("taxon").unwrap();
    c.current_dir(dir).env("TAXON_RUNS_DB", dir.join("runs.db"));
    c
}

/// Labelled JSONL: sport texts hold sport words, business texts money words, with filler.
pub fn write_data(path: &Path, n: usize, seed: usize) {
    let mut out = String::new();
    for i in 0..n {
        let (label, key) = if i % 2 == 0 {
            ("sport", &SPORT)
        } else {
            ("business", &MONEY)
        };
        let len = 2 + (i * 5 + seed) % 7;
        let words: Vec<&str> = (0..len)
            .map(|j| {
                if (i + j + seed) % 2 == 0 {
                    key[(i * 7 + j + seed) % 6]
                } else {
                    FILLER[(i + j * 5 + seed) % 6]
                }
            })
            .collect();
        let text = format!("{} {}", words.join(" "), key[i % 6]);
        out.push_str(&serde_json::json!({"text": text, "label": label}).to_string());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// Writes a tiny random BERT checkpoint covering the task's words to `dir/tiny-bert`.
pub fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let words: Vec<&str> = SPORT.iter().chain(&MONEY).chain(&FILLER).copied().collect();
    let ck = dir.join("tiny-bert");
    RandomCheckpoint::tiny(&words).write(&ck).unwrap();
    ck
}

/// `taxon predict MODEL DATA --threads 1` in `dir`: the JSON line of every row.
pub fn predict_rows(dir: &Path, model: &str, data: &str) -> Vec<serde_json::Value> {
    let out = taxon_in(dir)
        .args(["-q", "predict", model, data, "--threads", "1"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
