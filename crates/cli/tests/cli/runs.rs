//! `taxon runs list | show | compare` over runs recorded by `taxon train` and `taxon eval`:
//! the store round trip through the binary, id prefixes, compare marks, data versions from a
//! `.dvc` pointer, failed runs, and a killed training process shown as `killed`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::tools::{taxon, taxon_json};
use serde_json::Value;

/// A small two-topic dataset with `n` rows.
fn write_data(path: &Path, n: usize) {
    let words = [
        ["goal", "match", "team", "score", "win", "league"],
        ["phone", "chip", "software", "data", "cloud", "server"],
    ];
    let mut s = String::new();
    let mut x: u64 = 7;
    for i in 0..n {
        let l = i % 2;
        let text: Vec<&str> = (0..8)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                words[l][(x >> 33) as usize % 6]
            })
            .collect();
        let label = ["sport", "tech"][l];
        s.push_str(&format!(
            "{{\"text\":\"{}\",\"label\":\"{label}\"}}\n",
            text.join(" ")
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// Trains linear's SGD solver (it has epochs to record) for `epochs` epochs.
fn train(dir: &Path, out: &str, epochs: &str) {
    taxon(dir)
        .args([
            "train",
            "--solver",
            "sgd",
            "--data",
            "train.jsonl",
            "--output",
            out,
            "--threads",
            "1",
        ])
        .args(["--epochs", epochs])
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("TAXON_PUSHGATEWAY")
        .env_remove("TAXON_RUNS_DB")
        .assert()
        .success();
}

fn runs(dir: &Path) -> Vec<Value> {
    taxon_json(dir, &["runs", "list"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn train_and_eval_are_recorded_listed_shown_and_compared() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(&dir.join("train.jsonl"), 200);
    // The data is tracked: its version id comes from the pointer.
    std::fs::write(
        dir.join("train.jsonl.dvc"),
        "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 1\n  hash: md5\n  path: train.jsonl\n",
    )
    .unwrap();
    train(dir, "m1", "3");
    train(dir, "m2", "4");
    assert!(dir.join(".taxon/runs.db").is_file());
    let list = runs(dir);
    assert_eq!(list.len(), 2);
    let (newest, oldest) = (&list[0], &list[1]);
    for r in &list {
        assert_eq!(r["status"], "finished");
        assert_eq!(r["model_type"], "linear");
        assert_eq!(r["data_version"], "0123456789abcdef0123456789abcdef");
        assert!(r["metrics"]["validation_accuracy"].as_f64().unwrap() > 0.5);
    }
    let id1 = oldest["id"].as_str().unwrap().to_string();
    let id2 = newest["id"].as_str().unwrap().to_string();

    // show by a prefix: params, epoch history with steps, stages, artifacts, versions, machine.
    let show = taxon_json(dir, &["runs", "show", &id1[..6]]);
    assert_eq!(show["id"], id1.as_str());
    assert_eq!(show["params"]["epochs"], "3");
    assert_eq!(show["params"]["model_config.dim"], "100");
    let steps: Vec<u64> = show["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["key"] == "train_loss")
        .map(|p| p["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [1, 2, 3]);
    let stages: Vec<&str> = show["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["load data", "train", "validate+save"]);
    assert!(show["stages"][1]["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    let model_json = std::fs::read(dir.join("m1/model.json")).unwrap();
    let art = show["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "model/model.json")
        .expect("model.json artifact");
    assert_eq!(art["size"].as_u64().unwrap(), model_json.len() as u64);
    assert_eq!(art["md5"].as_str().unwrap().len(), 32);
    assert!(show["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(!show["code"]["taxon_version"].as_str().unwrap().is_empty());

    // eval adds its metrics, report and stage to the run that trained the model.
    taxon(dir)
        .args(["eval", "m1", "train.jsonl"])
        .env_remove("MLFLOW_TRACKING_URI")
        .assert()
        .success();
    let show = taxon_json(dir, &["runs", "show", &id1]);
    assert!(show["metrics"]["eval.train.accuracy"].as_f64().unwrap() > 0.5);
    assert_eq!(
        show["stages"].as_array().unwrap().last().unwrap()["name"],
        "evaluate"
    );
    assert!(
        show["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["name"] == "eval/train.json")
    );
    assert_eq!(
        runs(dir).len(),
        2,
        "eval of a tracked model makes no new run"
    );

    // compare: differing params are marked, equal ones are not.
    let cmp = taxon_json(dir, &["runs", "compare", &id1[..8], &id2[..8]]);
    let row = |key: &str| -> Value {
        cmp["params"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .cloned()
            .unwrap_or_else(|| panic!("no param row {key}: {cmp}"))
    };
    assert_eq!(row("epochs")["differs"], true);
    assert_eq!(row("epochs")["values"], serde_json::json!(["3", "4"]));
    assert_eq!(row("seed")["differs"], false);
    let text = taxon(dir)
        .args(["runs", "compare", &id1, &id2])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&text.stdout);
    let epochs_line = out.lines().find(|l| l.contains(" epochs ")).unwrap();
    assert!(epochs_line.trim_start().starts_with('*'), "{out}");
    let seed_line = out.lines().find(|l| l.contains(" seed ")).unwrap();
    assert!(!seed_line.trim_start().starts_with('*'), "{out}");

    // The table lists both runs by short id.
    let list = taxon(dir).args(["runs", "list"]).output().unwrap();
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(out.contains(&id1[..8]) && out.contains(&id2[..8]), "{out}");
}

#[test]
fn unknown_and_ambiguous_ids_are_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(&dir.join("train.jsonl"), 60);
    train(dir, "m", "1");
    let out = taxon(dir)
        .args(["runs", "show", "ffffffffff"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no run with id"));
    // The empty prefix matches everything: refused.
    let out = taxon(dir).args(["runs", "show", ""]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_training_that_fails_is_recorded_as_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("train.jsonl"),
        "{\"text\":\"a\",\"label\":\"x\"}\nnot json\n",
    )
    .unwrap();
    taxon(dir)
        .args(["train", "--data", "train.jsonl", "--output", "m"])
        .env_remove("MLFLOW_TRACKING_URI")
        .assert()
        .code(2);
    let list = runs(dir);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "failed");
    let show = taxon_json(dir, &["runs", "show", list[0]["id"].as_str().unwrap()]);
    assert!(
        show["error"].as_str().unwrap().contains("train.jsonl"),
        "{show}"
    );
}

#[test]
fn a_killed_training_process_shows_as_killed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(&dir.join("train.jsonl"), 20_000);
    let bin = assert_cmd::cargo::cargo_bin("taxon");
    let mut child = std::process::Command::new(bin)
        .current_dir(dir)
        .args(["-q", "train", "--data", "train.jsonl", "--output", "m"])
        .args(["--epochs", "500", "--threads", "1"])
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("TAXON_RUNS_DB")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen_running = false;
    while Instant::now() < deadline {
        if dir.join(".taxon/runs.db").exists()
            && runs(dir).first().is_some_and(|r| r["status"] == "running")
        {
            seen_running = true;
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended too soon"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(seen_running, "the run never showed as running");
    let list = runs(dir);
    assert_eq!(list[0]["status"], "killed");
    let text = taxon(dir).args(["runs", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&text.stdout).contains("killed"));
}
