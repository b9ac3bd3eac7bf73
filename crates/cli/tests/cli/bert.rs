//! The `bert` model type through the binary: the issue's training one-liner on a tiny randomly
//! initialised BERT checkpoint the test writes, then `taxon eval` and `taxon predict` on the
//! result; a missing `--model-path` and a checkpoint that disagrees with its config are clear
//! errors.

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

use crate::common::tiny_bert::*;

#[test]
fn training_one_liner_then_eval_and_predict() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = tiny_checkpoint(d);
    write_data(&d.join("train.jsonl"), 160, 0);
    write_data(&d.join("test.jsonl"), 40, 3);
    taxon_in(d)
        .args(["-q", "train", "--model-type", "bert", "--model-path"])
        .arg(&ck)
        .args([
            "--data",
            "train.jsonl",
            "--max-len",
            "24",
            "--epochs",
            "5",
            "--learning-rate",
            "3e-3",
            "--batch-size",
            "16",
            "--threads",
            "1",
            "--pooling",
            "mean",
            "--truncation",
            "head-tail",
            "--output",
            "out",
        ])
        .assert()
        .success();
    let desc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/model.json")).unwrap()).unwrap();
    assert_eq!(desc["model_type"], "bert");
    assert_eq!(desc["params"]["max_len"], 24);
    assert_eq!(
        desc["params"]["truncation"], "head-tail",
        "the flag, not the default"
    );
    assert_eq!(desc["params"]["freeze_layers"], 0);
    assert_eq!(desc["labels"], serde_json::json!(["business", "sport"]));
    assert!(d.join("out/metrics.json").is_file());

    let out = taxon_in(d)
        .args([
            "-q",
            "eval",
            "out",
            "test.jsonl",
            "--json",
            "--threads",
            "1",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let acc = report["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.9, "test accuracy {acc}: {report}");

    let rows = predict_rows(d, "out", "test.jsonl");
    assert_eq!(rows.len(), 40);
    let right = rows
        .iter()
        .enumerate()
        .filter(|(i, r)| r["label"] == if i % 2 == 0 { "sport" } else { "business" })
        .count();
    assert!(right >= 36, "{right} of 40 right");

    // The reference profile projects the pooled embeddings of the 16 validation texts.
    let profile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/profile.json")).unwrap())
            .unwrap();
    assert_eq!(
        profile["projection"]["dims"], 32,
        "the tiny model's hidden size"
    );
    assert_eq!(
        profile["projection"]["components"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    for i in 0..4 {
        assert_eq!(
            profile["numeric"][format!("embedding:{i}")]["count"],
            16,
            "{i}"
        );
    }
    // Offline drift projects the current texts the same way: like data stays close, texts of
    // filler words alone move the embedding.
    let drift = |file: &str| -> serde_json::Value {
        let out = taxon_in(d)
            .args([
                "--json",
                "monitor",
                "drift",
                "--reference",
                "out",
                "--current",
                file,
            ])
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let value = |report: &serde_json::Value, name: &str| -> f64 {
        report["features"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {report}"))["value"]
            .as_f64()
            .unwrap()
    };
    let like = drift("test.jsonl");
    let filler: String = (0..40)
        .map(|i| {
            let text = format!(
                "{} {} {}",
                FILLER[i % 6],
                FILLER[(i + 1) % 6],
                FILLER[(i + 3) % 6]
            );
            serde_json::json!({ "text": text }).to_string() + "\n"
        })
        .collect();
    std::fs::write(d.join("filler.jsonl"), filler).unwrap();
    let moved = drift("filler.jsonl");
    assert_eq!(moved["drift"], true, "{moved}");
    let most = |r: &serde_json::Value| {
        (0..4)
            .map(|i| value(r, &format!("embedding:{i}")))
            .fold(0.0, f64::max)
    };
    assert!(most(&moved) > 2.0 * most(&like), "{like} vs {moved}");
}

#[test]
fn missing_model_path_and_bad_checkpoint_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_data(&d.join("train.jsonl"), 20, 0);
    taxon_in(d)
        .args([
            "-q",
            "train",
            "--model-type",
            "bert",
            "--data",
            "train.jsonl",
        ])
        .args(["--output", "out"])
        .assert()
        .failure()
        .stderr(contains("model_path").and(contains("--model-path")));

    let ck = tiny_checkpoint(d);
    taxon_in(d)
        .args(["-q", "train", "--model-type", "bert", "--model-path"])
        .arg(&ck)
        .args([
            "--data",
            "train.jsonl",
            "--output",
            "out",
            "--pooling",
            "max",
        ])
        .assert()
        .code(2)
        .stderr(contains("max").and(contains("mean, cls, pooler")));

    let cfg_path = ck.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["vocab_size"] = 99.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    taxon_in(d)
        .args(["-q", "train", "--model-type", "bert", "--model-path"])
        .arg(&ck)
        .args(["--data", "train.jsonl", "--output", "out", "--epochs", "1"])
        .assert()
        .failure()
        .stderr(
            contains("model.safetensors")
                .and(contains("embeddings.word_embeddings.weight"))
                .and(contains("vocab_size")),
        );
}

#[test]
fn a_stopped_bert_run_resumes_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = tiny_checkpoint(d);
    write_data(&d.join("train.jsonl"), 60, 0);
    let train = |extra: &[&str]| {
        let mut c = taxon_in(d);
        c.args([
            "-q",
            "--json",
            "train",
            "--model-type",
            "bert",
            "--model-path",
        ])
        .arg(&ck)
        .args(["--data", "train.jsonl", "--output", "out", "--epochs", "2"])
        .args(["--max-len", "16", "--freeze-layers", "1", "--threads", "1"])
        .args(extra);
        c
    };
    train(&["--stop-after-epochs", "1"]).assert().success();
    assert!(!d.join("out/model.json").exists());
    let out = train(&["--resume"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let summary: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(summary["resumed_from_epoch"], 1, "{summary}");
    assert_eq!(summary["epochs"].as_array().unwrap().len(), 2, "{summary}");
    let desc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("out/model.json")).unwrap()).unwrap();
    assert_eq!(desc["params"]["freeze_layers"], 1);
}

/// Kills the server on drop, so a failed assertion leaves no process behind.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_loads_a_fine_tuned_bert_and_predicts() {
    use std::io::{BufRead, BufReader, Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ck = tiny_checkpoint(d);
    write_data(&d.join("train.jsonl"), 120, 0);
    taxon_in(d)
        .args(["-q", "train", "--model-type", "bert", "--model-path"])
        .arg(&ck)
        .args(["--data", "train.jsonl", "--output", "out", "--epochs", "5"])
        .args([
            "--learning-rate",
            "3e-3",
            "--max-len",
            "24",
            "--threads",
            "1",
        ])
        .assert()
        .success();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("taxon"))
        .current_dir(d)
        .env_remove("TAXON_JWT_SECRET")
        .args(["serve", "--model", "out", "--port", "0", "--threads", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let server = Killed(child);
    let mut port = None;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if let Some(url) = line.strip_prefix("listening on http://") {
            port = url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
            break;
        }
    }
    let port = port.expect("no listening line");
    let body = r#"{"text":"the striker and the coach of the team"}"#;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    drop(server);
    let (head, json) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{answer}");
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(v["label"], "sport", "{v}");
    let sum: f64 = v["scores"]
        .as_object()
        .unwrap()
        .values()
        .map(|x| x.as_f64().unwrap())
        .sum();
    assert!((sum - 1.0).abs() < 1e-4, "{v}");
}
