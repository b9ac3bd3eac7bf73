//! `taxon model optimize` through the binary: a tiny BERT fine-tuned by `taxon train` is
//! quantized to int8 and pruned; the optimized folder loads, predicts and evaluates like any
//! model, optimize.json holds the before/after numbers and the eval report shows them; bad
//! usage and non-bert models are clear errors (exit 2); --max-accuracy-drop fails with exit 1;
//! an int8 model slower than the f32 one is refused unless --allow-slower.

use std::path::Path;

use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

use crate::common::tiny_bert::*;

/// A tiny BERT fine-tuned on the synthetic task into `dir/out`.
fn trained(dir: &Path) {
    tiny_checkpoint(dir);
    write_data(&dir.join("train.jsonl"), 160, 0);
    write_data(&dir.join("test.jsonl"), 40, 3);
    taxon_in(dir)
        .args([
            "-q",
            "train",
            "--model-type",
            "bert",
            "--model-path",
            "tiny-bert",
        ])
        .args(["--data", "train.jsonl", "--max-len", "24", "--epochs", "5"])
        .args([
            "--learning-rate",
            "3e-3",
            "--batch-size",
            "16",
            "--threads",
            "1",
        ])
        .args(["--output", "out"])
        .assert()
        .success();
}

fn json_of(out: &[u8]) -> serde_json::Value {
    serde_json::from_slice(out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(out)))
}

#[test]
fn optimized_model_loads_predicts_and_reports_before_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    let out = taxon_in(d)
        .args([
            "-q", "model", "optimize", "out", "--output", "opt", "--int8",
        ])
        // The tiny model may well run faster in f32: the speed check has its own test.
        .arg("--allow-slower")
        .args([
            "--prune",
            "0.3",
            "--data",
            "test.jsonl",
            "--latency-samples",
            "4",
        ])
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let answer = json_of(&out);
    assert_eq!(answer["int8"], true);
    assert_eq!(answer["prune"], 0.3);
    assert_eq!(answer["examples"], 40);
    let (before, after) = (&answer["before"], &answer["after"]);
    for m in [before, after] {
        for k in [
            "latency_ms_batch1",
            "ms_per_seq_batch32",
            "accuracy",
            "macro_f1",
        ] {
            assert!(m[k].as_f64().is_some_and(|v| v > 0.0), "{k}: {answer}");
        }
    }
    assert!(after["weights_bytes"].as_u64() < before["weights_bytes"].as_u64());
    let acc = after["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.85, "int8 + pruned accuracy {acc}: {answer}");
    assert!(answer["prune_stats"]["zeroed"].as_u64().unwrap() > 0);

    // optimize.json holds the same numbers; model.json records what was done.
    let file: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("opt/optimize.json")).unwrap())
            .unwrap();
    assert_eq!(file["after"], answer["after"]);
    let desc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("opt/model.json")).unwrap()).unwrap();
    assert_eq!(desc["model_type"], "bert");
    assert_eq!(desc["params"]["quantization"], "int8");
    assert_eq!(desc["params"]["pruned"], 0.3);

    // The folder predicts like any model.
    let rows = predict_rows(d, "opt", "test.jsonl");
    assert_eq!(rows.len(), 40);

    // The eval report shows the optimization.
    let out = taxon_in(d)
        .args([
            "-q",
            "eval",
            "opt",
            "test.jsonl",
            "--threads",
            "1",
            "--json",
        ])
        .args(["--report", "report.html"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let eval = json_of(&out);
    assert_eq!(eval["optimization"]["after"], answer["after"]);
    let html = std::fs::read_to_string(d.join("report.html")).unwrap();
    assert!(html.contains("<h2>Optimization</h2>") && html.contains("int8 + pruned 0.3"));

    // Prune only, no data: sizes only, the weights file stays f32.
    let out = taxon_in(d)
        .args([
            "-q", "model", "optimize", "out", "-o", "pruned", "--prune", "0.5", "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let answer = json_of(&out);
    assert_eq!(answer["int8"], false);
    assert!(answer["after"]["accuracy"].is_null());
    assert!((answer["sparsity"].as_f64().unwrap() - 0.5).abs() < 1e-3);

    // An accuracy gate that cannot pass: exit 1, the model is written anyway.
    taxon_in(d)
        .args(["-q", "model", "optimize", "out", "-o", "gated", "--int8"])
        .args([
            "--data",
            "test.jsonl",
            "--latency-samples",
            "1",
            "--allow-slower",
        ])
        .arg("--max-accuracy-drop=-100")
        .assert()
        .code(1)
        .stderr(contains("--max-accuracy-drop"));
    assert!(d.join("gated/model.json").is_file());

    // An int8 model cannot be optimized again.
    taxon_in(d)
        .args(["-q", "model", "optimize", "opt", "-o", "twice", "--int8"])
        .assert()
        .code(2)
        .stderr(contains("already int8"));
}

#[test]
fn int8_slower_than_f32_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    trained(d);
    // Timed on synthetic texts (no --data). Whichever way the timing goes on this machine, the
    // answer must match it: written with the speed-up said, or refused with nothing written.
    let out = taxon_in(d)
        .args(["model", "optimize", "out", "-o", "checked", "--int8"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => {
            assert!(d.join("checked/model.json").is_file());
            assert!(stderr.contains("as fast as f32"), "{stderr}");
            let report: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(d.join("checked/optimize.json")).unwrap(),
            )
            .unwrap();
            let (f, q) = (
                report["before"]["ms_per_seq_batch32"].as_f64().unwrap(),
                report["after"]["ms_per_seq_batch32"].as_f64().unwrap(),
            );
            assert!(q <= f, "written although int8 took {q} ms vs {f}");
        }
        Some(2) => {
            assert!(stderr.contains("slower than the f32 one"), "{stderr}");
            assert!(
                stderr.contains("int8=") && stderr.contains("--allow-slower"),
                "{stderr}"
            );
            assert!(
                !d.join("checked").exists(),
                "a refused model must not be written"
            );
        }
        other => panic!("exit {other:?}: {stderr}"),
    }
    // --allow-slower always writes, and needs --int8.
    taxon_in(d)
        .args(["-q", "model", "optimize", "out", "-o", "allowed", "--int8"])
        .arg("--allow-slower")
        .assert()
        .success();
    assert!(d.join("allowed/model.json").is_file());
    taxon_in(d)
        .args([
            "-q", "model", "optimize", "out", "-o", "x", "--prune", "0.1",
        ])
        .arg("--allow-slower")
        .assert()
        .code(2)
        .stderr(contains("--int8"));
}

#[test]
fn an_unknown_or_unsupported_kernel_level_is_an_error_up_front() {
    let dir = tempfile::tempdir().unwrap();
    taxon_in(dir.path())
        .args(["model", "optimize", "missing", "-o", "x", "--int8"])
        .env("TAXON_KERNELS", "avx1024")
        .assert()
        .code(2)
        .stderr(contains("TAXON_KERNELS=\"avx1024\"").and(contains("portable")));
    // `portable` runs on every CPU: the command gets as far as the missing folder.
    taxon_in(dir.path())
        .args(["model", "optimize", "missing", "-o", "x", "--int8"])
        .env("TAXON_KERNELS", "portable")
        .assert()
        .code(2)
        .stderr(contains("missing"));
}

#[test]
fn bad_usage_and_non_bert_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("lin")).unwrap();
    std::fs::write(
        d.join("lin/model.json"),
        r#"{"format_version":1,"model_type":"linear","labels":["a","b"],"params":{},
            "input":{"max_tokens":null,"lowercase":true},"files":[],"created_by":"test"}"#,
    )
    .unwrap();
    taxon_in(d)
        .args(["model", "optimize", "lin", "-o", "x"])
        .assert()
        .code(2)
        .stderr(contains("--int8").and(contains("--prune")));
    taxon_in(d)
        .args(["model", "optimize", "lin", "-o", "x", "--prune", "1.5"])
        .assert()
        .code(2)
        .stderr(contains("fraction"));
    taxon_in(d)
        .args(["model", "optimize", "lin", "-o", "x", "--int8"])
        .assert()
        .code(2)
        .stderr(contains("bert models only").and(contains("linear")));
    taxon_in(d)
        .args(["model", "optimize", "missing", "-o", "x", "--int8"])
        .assert()
        .code(2)
        .stderr(contains("missing"));
    taxon_in(d)
        .args(["model", "optimize", "--help"])
        .assert()
        .success()
        .stdout(contains("int8").and(contains("--max-accuracy-drop")));
}
