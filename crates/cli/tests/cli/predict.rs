//! `taxon predict`: streamed batch scoring, one JSON line per input row in input order.

use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;

fn taxon() -> Command {
    Command::cargo_bin("taxon").unwrap()
}

/// `taxon` run inside `dir`, so nothing a run records lands in the source tree.
fn taxon_in(dir: &Path) -> Command {
    let mut c = taxon();
    c.current_dir(dir);
    c
}

const SPORT: &str = "the striker scored a goal in the league match";
const BUSINESS: &str = "the bank said shares and profit rose on the market";

/// Trains a small two-label model (sport, business) into `dir/model`.
fn trained_model(dir: &Path) -> std::path::PathBuf {
    let data = dir.join("train.jsonl");
    let mut text = String::new();
    for i in 0..30 {
        for (label, t) in [("sport", SPORT), ("business", BUSINESS)] {
            let row = serde_json::json!({"text": format!("{t} {i}"), "label": label});
            text.push_str(&format!("{row}\n"));
        }
    }
    std::fs::write(&data, text).unwrap();
    let model = dir.join("model");
    taxon_in(dir)
        .args(["-q", "train", "--data"])
        .arg(&data)
        .arg("--output")
        .arg(&model)
        .args(["--epochs", "5", "--threads", "1"])
        .assert()
        .success();
    model
}

fn lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Sport, business alternating, `n` rows, as (text, expected label).
fn inputs(n: usize) -> Vec<(String, &'static str)> {
    (0..n)
        .map(|i| {
            if i % 3 == 0 {
                (format!("{BUSINESS} {i}"), "business")
            } else {
                (format!("{SPORT} {i}"), "sport")
            }
        })
        .collect()
}

fn check_predictions(out: &[serde_json::Value], expected: &[(String, &str)], with_text: bool) {
    assert_eq!(out.len(), expected.len());
    for (o, (text, label)) in out.iter().zip(expected) {
        assert_eq!(o["label"], *label, "{o}");
        let scores = o["scores"].as_object().unwrap();
        // Every label of the model, in its order (business, sport), summing to 1.
        assert_eq!(
            scores.keys().collect::<Vec<_>>(),
            vec!["business", "sport"],
            "{o}"
        );
        let sum: f64 = scores.values().map(|v| v.as_f64().unwrap()).sum();
        assert!((sum - 1.0).abs() < 1e-4, "{o}");
        if with_text {
            assert_eq!(o["text"], text.as_str());
        } else {
            assert!(o.get("text").is_none());
        }
    }
}

#[test]
fn jsonl_in_batches_keeps_order_and_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let rows = inputs(25);
    let file = dir.path().join("in.jsonl");
    // Labels are optional: half the rows have none.
    let text: String = rows
        .iter()
        .enumerate()
        .map(|(i, (t, l))| {
            if i % 2 == 0 {
                format!("{}\n", serde_json::json!({"text": t}))
            } else {
                format!("{}\n", serde_json::json!({"text": t, "label": l}))
            }
        })
        .collect();
    std::fs::write(&file, text).unwrap();

    let small = taxon_in(dir.path())
        .args(["predict", "--batch-size", "4", "--threads", "2"])
        .arg(&model)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        small.status.success(),
        "{}",
        String::from_utf8_lossy(&small.stderr)
    );
    check_predictions(&lines(&small.stdout), &rows, false);
    // The batch size and thread count do not change the output.
    let big = taxon_in(dir.path())
        .args(["predict", "--threads", "1"])
        .arg(&model)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(big.stdout, small.stdout);

    let out = dir.path().join("pred.jsonl");
    taxon_in(dir.path())
        .args(["predict", "--include-text", "-o"])
        .arg(&out)
        .arg(&model)
        .arg(&file)
        .assert()
        .success()
        .stdout("");
    check_predictions(&lines(&std::fs::read(&out).unwrap()), &rows, true);
}

#[test]
fn csv_input_without_labels() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let rows = inputs(7);
    let file = dir.path().join("in.csv");
    let mut text = String::from("id,body\n");
    for (i, (t, _)) in rows.iter().enumerate() {
        text.push_str(&format!("{i},\"{t}\"\n"));
    }
    std::fs::write(&file, text).unwrap();
    let o = taxon_in(dir.path())
        .args(["predict", "--text-field", "body", "--include-text"])
        .arg(&model)
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    check_predictions(&lines(&o.stdout), &rows, true);
}

#[test]
fn a_bad_row_is_an_error_at_its_line_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let file = dir.path().join("in.jsonl");
    std::fs::write(&file, format!("{{\"text\":\"{SPORT}\"}}\n{{\"txt\":1}}\n")).unwrap();
    let out = dir.path().join("pred.jsonl");
    taxon_in(dir.path())
        .args(["predict", "-o"])
        .arg(&out)
        .arg(&model)
        .arg(&file)
        .assert()
        .code(2)
        .stderr(contains("in.jsonl:2"));
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty());
}
