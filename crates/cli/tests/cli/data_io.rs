//! `taxon data stats` and `taxon data import` end to end: output, exit codes, error locations.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;

fn taxon() -> Command {
    Command::cargo_bin("taxon").unwrap()
}

fn jsonl(dir: &Path, name: &str, lines: &[&str]) -> std::path::PathBuf {
    let p = dir.join(name);
    fs::write(&p, lines.join("\n") + "\n").unwrap();
    p
}

#[test]
fn stats_json_reports_rows_labels_lengths_and_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let p = jsonl(
        dir.path(),
        "d.jsonl",
        &[
            r#"{"text":"Hello world","label":"a"}"#,
            r#"{"text":"hello   world ","label":"b"}"#,
            r#"{"text":"Hello world","label":"a"}"#,
            r#"{"text":"xyz","label":"a"}"#,
        ],
    );
    let out = taxon()
        .args(["--json", "data", "stats"])
        .arg(&p)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["rows"], 4);
    assert_eq!(v["label_counts"]["a"], 3);
    assert_eq!(v["label_counts"]["b"], 1);
    assert_eq!(v["vocabulary_size"], 3);
    assert_eq!(v["duplicate_rate"], 0.25);
    assert_eq!(v["text_length_chars"]["min"], 3);
    assert_eq!(v["text_length_chars"]["max"], 14);
    assert_eq!(v["skipped_rows"], 0);
}

#[test]
fn stats_table_for_people() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    fs::write(
        &p,
        "id,body,topic\n1,first text,sport\n2,second text,tech\n3,third,sport\n",
    )
    .unwrap();
    taxon()
        .args([
            "-q",
            "data",
            "stats",
            "--text-field",
            "body",
            "--label-field",
            "topic",
        ])
        .arg(&p)
        .assert()
        .success()
        .stdout(contains("3 rows"))
        .stdout(contains("columns: id, body, topic"))
        .stdout(contains("sport"))
        .stdout(contains("66.7%"))
        .stdout(contains("vocabulary: 4 distinct words"));
}

#[test]
fn stats_bad_row_fails_with_its_location() {
    let dir = tempfile::tempdir().unwrap();
    let p = jsonl(
        dir.path(),
        "bad.jsonl",
        &[
            r#"{"text":"ok","label":"a"}"#,
            r#"{"text":"ok","label":3.5}"#,
        ],
    );
    taxon()
        .args(["data", "stats"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(contains(format!(
            "{}:2: field \"label\": expected a string or an integer, found number 3.5",
            p.display()
        )));
}

#[test]
fn stats_skip_counts_bad_rows_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let p = jsonl(
        dir.path(),
        "bad.jsonl",
        &[
            r#"{"text":"ok","label":"a"}"#,
            "{broken",
            r#"{"label":"a"}"#,
        ],
    );
    let assert = taxon()
        .args(["--json", "data", "stats", "--on-error", "skip"])
        .arg(&p)
        .assert()
        .success()
        .stderr(contains("skipped 2 rows"))
        .stderr(contains(format!(
            "{}:3: missing field \"text\"",
            p.display()
        )));
    let v: Value = serde_json::from_slice(&assert.get_output().stdout).unwrap();
    assert_eq!(v["rows"], 1);
    assert_eq!(v["skipped_rows"], 2);
}

#[test]
fn stats_unknown_extension_asks_for_format() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.txt");
    fs::write(&p, "text\tlabel\nhi\tx\n").unwrap();
    taxon()
        .args(["data", "stats"])
        .arg(&p)
        .assert()
        .code(2)
        .stderr(contains("pass --format"));
    taxon()
        .args(["--json", "data", "stats", "--format", "tsv"])
        .arg(&p)
        .assert()
        .success()
        .stdout(contains("\"rows\": 1"));
}

fn corpus(root: &Path) {
    for (label, n) in [("business", 10), ("sport", 5)] {
        let d = root.join(label);
        fs::create_dir_all(&d).unwrap();
        for i in 0..n {
            fs::write(
                d.join(format!("{i:03}.txt")),
                format!("{label} article {i}\n"),
            )
            .unwrap();
        }
    }
}

#[test]
fn import_is_stratified_and_byte_identical_across_runs() {
    let src = tempfile::tempdir().unwrap();
    corpus(src.path());
    let out = tempfile::tempdir().unwrap();
    let (o1, o2) = (out.path().join("one"), out.path().join("two"));
    let mut summaries = Vec::new();
    for o in [&o1, &o2] {
        let a = taxon()
            .args(["--json", "data", "import"])
            .arg(src.path())
            .arg("--out")
            .arg(o)
            .args(["--test-ratio", "0.2", "--seed", "42"])
            .assert()
            .success();
        summaries.push(serde_json::from_slice::<Value>(&a.get_output().stdout).unwrap());
    }
    assert_eq!(summaries[0]["labels"]["business"]["test"], 2);
    assert_eq!(summaries[0]["labels"]["sport"]["test"], 1);
    assert_eq!(summaries[0]["train_rows"], 12);
    for f in ["train.jsonl", "test.jsonl"] {
        assert_eq!(fs::read(o1.join(f)).unwrap(), fs::read(o2.join(f)).unwrap());
    }
    let first = fs::read_to_string(o1.join("train.jsonl")).unwrap();
    let row: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    assert_eq!(row["label"], "business");
    // The import output is readable by `data stats`.
    taxon()
        .args(["--json", "data", "stats"])
        .arg(o1.join("test.jsonl"))
        .assert()
        .success()
        .stdout(contains("\"rows\": 3"));
}

#[test]
fn import_table_and_bad_ratio() {
    let src = tempfile::tempdir().unwrap();
    corpus(src.path());
    let out = tempfile::tempdir().unwrap();
    taxon()
        .args(["data", "import"])
        .arg(src.path())
        .arg("--out")
        .arg(out.path())
        .assert()
        .success()
        .stdout(contains("business"))
        .stdout(contains("(all)"));
    taxon()
        .args(["data", "import"])
        .arg(src.path())
        .arg("--out")
        .arg(out.path())
        .args(["--test-ratio", "2"])
        .assert()
        .code(2)
        .stderr(contains("expected a number between 0 and 1"));
}
