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

/// Writes `n` rows of [`inputs`] as JSONL (no labels) to `path`.
fn write_inputs(path: &Path, n: usize) {
    let text: String = inputs(n)
        .iter()
        .map(|(t, _)| format!("{}\n", serde_json::json!({ "text": t })))
        .collect();
    std::fs::write(path, text).unwrap();
}

/// Interleaves the shards' outputs back into input order: shard `i`'s line `j` is the
/// prediction of input row `j * N + i`. Panics when a shard has a line too many or too few.
fn merge_shards(shards: &[String]) -> Vec<String> {
    let n = shards.len();
    let lines: Vec<Vec<&str>> = shards.iter().map(|s| s.lines().collect()).collect();
    let total: usize = lines.iter().map(Vec::len).sum();
    let merged: Vec<String> = (0..total)
        .map(|row| {
            lines[row % n]
                .get(row / n)
                .unwrap_or_else(|| panic!("shard {} has no line for row {row}", row % n))
                .to_string()
        })
        .collect();
    merged
}

#[test]
fn shards_together_equal_the_unsharded_output_row_for_row() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let file = dir.path().join("in.jsonl");
    write_inputs(&file, 23);
    let whole = taxon_in(dir.path())
        .args(["predict", "--include-text", "--threads", "1"])
        .arg(&model)
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        whole.status.success(),
        "{}",
        String::from_utf8_lossy(&whole.stderr)
    );
    let whole: Vec<String> = String::from_utf8(whole.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(whole.len(), 23);

    // 23 rows split 1, 3 (uneven) and 30 (more shards than rows: some are empty) ways, with a
    // batch size that does not divide the shard count, so shards cut across batches.
    for n in [1usize, 3, 30] {
        let shards: Vec<String> = (0..n)
            .map(|i| {
                let out = dir.path().join(format!("shard-{i}-of-{n}.jsonl"));
                taxon_in(dir.path())
                    .args(["predict", "--include-text", "--batch-size", "4", "--shard"])
                    .arg(format!("{i}/{n}"))
                    .arg("-o")
                    .arg(&out)
                    .arg(&model)
                    .arg(&file)
                    .assert()
                    .success();
                std::fs::read_to_string(&out).unwrap()
            })
            .collect();
        assert_eq!(merge_shards(&shards), whole, "{n} shards");
    }
}

#[test]
fn a_shard_outside_its_count_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("in.jsonl");
    write_inputs(&file, 2);
    for bad in ["3/3", "1/0", "-1/2", "two/4", "1"] {
        taxon_in(dir.path())
            .args(["predict", "no-model"])
            .arg(&file)
            .arg(format!("--shard={bad}"))
            .assert()
            .code(2)
            .stderr(contains("expected I/N"));
    }
}

/// An Indexed Job's pods in miniature: the input and every shard's output are `s3://` objects
/// on a real S3-compatible server (moto), and the shards merge into the local unsharded output.
#[test]
fn sharded_predictions_from_and_to_s3() {
    let Some(moto) = crate::common::tools::Moto::start() else {
        return;
    };
    moto.create_bucket("batch");
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model(dir.path());
    let file = dir.path().join("in.jsonl");
    write_inputs(&file, 11);
    moto.put_object("batch", "corpus/in.jsonl", &std::fs::read(&file).unwrap());
    let s3 = |args: &[&str]| {
        let mut c = taxon_in(dir.path());
        c.env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .args(["predict", "--include-text"])
            .arg(&model)
            .args(args);
        c
    };
    let whole = taxon_in(dir.path())
        .args(["predict", "--include-text"])
        .arg(&model)
        .arg(&file)
        .output()
        .unwrap();
    let whole: Vec<String> = String::from_utf8(whole.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(whole.len(), 11);

    let shards: Vec<String> = (0..2)
        .map(|i| {
            let out = format!("s3://batch/scores/part-{i}.jsonl");
            s3(&[
                "s3://batch/corpus/in.jsonl",
                "--shard",
                &format!("{i}/2"),
                "-o",
                &out,
            ])
            .assert()
            .success();
            moto.get_object("batch", &format!("scores/part-{i}.jsonl"))
                .unwrap_or_else(|| panic!("{out} was not written"))
        })
        .collect();
    assert_eq!(merge_shards(&shards), whole);

    // A missing input object is an error that names it, and writes nothing.
    s3(&[
        "s3://batch/corpus/missing.jsonl",
        "-o",
        "s3://batch/scores/none.jsonl",
    ])
    .assert()
    .code(2)
    .stderr(contains("s3://batch/corpus/missing.jsonl"));
    assert!(moto.get_object("batch", "scores/none.jsonl").is_none());
}
