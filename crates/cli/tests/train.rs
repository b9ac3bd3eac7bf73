//! `taxon train` and `taxon eval` end to end through the binary.

use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;

fn taxon() -> Command {
    Command::cargo_bin("taxon").unwrap()
}

/// Two topics with disjoint keywords and shared filler, deterministic.
fn write_data(path: &Path, n_per_class: usize, offset: usize) {
    let topics = [
        ("sport", ["goal", "match", "striker", "league"]),
        ("business", ["market", "shares", "profit", "bank"]),
    ];
    let filler = ["the", "a", "said", "after", "new", "on"];
    let mut out = String::new();
    for i in 0..n_per_class {
        for (label, words) in &topics {
            let k = i + offset;
            let text = format!(
                "{} {} {} {} {}",
                filler[k % 6],
                words[k % 4],
                filler[(k / 6) % 6],
                words[(k / 4) % 4],
                filler[(k + 3) % 6]
            );
            out.push_str(&serde_json::json!({"text": text, "label": label}).to_string());
            out.push('\n');
        }
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn train_then_eval_reports_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test, model) = (
        dir.path().join("train.jsonl"),
        dir.path().join("test.jsonl"),
        dir.path().join("model"),
    );
    write_data(&train, 60, 0);
    write_data(&test, 20, 7);
    taxon()
        .args(["-q", "train", "--model-type", "linear", "--data"])
        .arg(&train)
        .arg("--output")
        .arg(&model)
        .args(["--epochs", "10", "--threads", "1", "--seed", "3"])
        .assert()
        .success()
        .stdout(contains("validation accuracy"));
    for f in ["model.json", "model.safetensors", "metrics.json"] {
        assert!(model.join(f).is_file(), "{f} missing");
    }
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["epochs"].as_array().unwrap().len(), 10);
    assert_eq!(metrics["validation_examples"], 12);
    assert_eq!(metrics["config"]["seed"], 3);

    let out = taxon()
        .args(["--json", "eval"])
        .arg(&model)
        .arg(&test)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert!(v["accuracy"].as_f64().unwrap() >= 0.9, "{v}");
    assert!(v["macro_f1"].as_f64().unwrap() >= 0.9, "{v}");
    assert_eq!(v["per_class"].as_array().unwrap().len(), 2);
    let cm = v["confusion_matrix"].as_array().unwrap();
    let total: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(total, 40);

    taxon()
        .arg("eval")
        .arg(&model)
        .arg(&test)
        .assert()
        .success()
        .stdout(contains("accuracy").and(contains("business")));
}

use predicates::prelude::PredicateBooleanExt;

#[test]
fn config_file_with_unknown_key_fails_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("train.yaml");
    std::fs::write(&cfg, "model_type: linear\nepochs: 2\nlearnig_rate: 0.1\n").unwrap();
    taxon()
        .args(["train", "--config"])
        .arg(&cfg)
        .assert()
        .code(2)
        .stderr(contains("learnig_rate").and(contains("train.yaml")));
}

#[test]
fn config_keys_are_used_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.jsonl");
    write_data(&train, 20, 0);
    let model = dir.path().join("m");
    let cfg = dir.path().join("train.yaml");
    std::fs::write(
        &cfg,
        format!(
            "model_type: linear\nepochs: 2\nthreads: 1\nmodel_config:\n  dim: 8\n  buckets: 1000\ndata: {}\noutput: {}\n",
            train.display(),
            model.display()
        ),
    )
    .unwrap();
    taxon()
        .args(["-q", "train", "--config"])
        .arg(&cfg)
        .args(["--epochs", "3"])
        .assert()
        .success();
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(m["epochs"].as_array().unwrap().len(), 3);
    assert_eq!(m["config"]["model_config"]["dim"], 8);
}

#[test]
fn unknown_model_type_and_tampered_folder_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.jsonl");
    write_data(&train, 20, 0);
    taxon()
        .args(["train", "--model-type", "transformer9", "--data"])
        .arg(&train)
        .args(["--output", "x"])
        .assert()
        .code(2)
        .stderr(contains("model_type").and(contains("transformer9")));

    let model = dir.path().join("m");
    taxon()
        .args(["-q", "train", "--epochs", "1", "--data"])
        .arg(&train)
        .arg("--output")
        .arg(&model)
        .assert()
        .success();
    let json = model.join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::write(&json, text.replace("\"linear\"", "\"lstm2\"")).unwrap();
    taxon()
        .arg("eval")
        .arg(&model)
        .arg(&train)
        .assert()
        .code(2)
        .stderr(
            contains("model.json")
                .and(contains("model_type"))
                .and(contains("lstm2")),
        );
}

#[test]
fn missing_label_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.jsonl");
    std::fs::write(
        &train,
        "{\"text\":\"a\",\"label\":\"x\"}\n{\"text\":\"b\"}\n",
    )
    .unwrap();
    taxon()
        .args(["train", "--data"])
        .arg(&train)
        .args(["--output"])
        .arg(dir.path().join("m"))
        .assert()
        .code(2)
        .stderr(contains("train.jsonl:2").and(contains("label")));
}
