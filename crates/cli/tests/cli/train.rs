//! `taxon train` and `taxon eval` end to end through the binary.

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
    taxon_in(dir.path())
        .args(["-q", "train", "--model-type", "linear", "--data"])
        .arg(&train)
        .arg("--output")
        .arg(&model)
        .args(["--threads", "1", "--seed", "3"])
        .assert()
        .success()
        .stdout(contains("validation accuracy"));
    for f in ["model.json", "model.safetensors", "metrics.json"] {
        assert!(model.join(f).is_file(), "{f} missing");
    }
    // The default solver (svm) fits in one epoch and leaves no checkpoint copy of the model.
    assert!(!model.join("checkpoints/epoch-0001").exists());
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["epochs"].as_array().unwrap().len(), 1);
    assert_eq!(metrics["config"]["model_config"]["solver"], "svm");
    assert_eq!(metrics["validation_examples"], 12);
    assert_eq!(metrics["config"]["seed"], 3);

    let out = taxon_in(dir.path())
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

    taxon_in(dir.path())
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
    taxon_in(dir.path())
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
            "model_type: linear\nepochs: 2\nthreads: 1\nmodel_config:\n  solver: sgd\n  dim: 8\n  buckets: 1000\ndata: {}\noutput: {}\n",
            train.display(),
            model.display()
        ),
    )
    .unwrap();
    taxon_in(dir.path())
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
    taxon_in(dir.path())
        .args(["train", "--model-type", "transformer9", "--data"])
        .arg(&train)
        .args(["--output", "x"])
        .assert()
        .code(2)
        .stderr(contains("model_type").and(contains("transformer9")));

    // A flag of another model type is refused, naming it and whose it is.
    taxon_in(dir.path())
        .args(["train", "--pooling", "cls", "--data"])
        .arg(&train)
        .args(["--output", "x"])
        .assert()
        .code(2)
        .stderr(contains("--pooling is a bert option").and(contains("model_type linear")));

    let model = dir.path().join("m");
    taxon_in(dir.path())
        .args(["-q", "train", "--epochs", "1", "--data"])
        .arg(&train)
        .arg("--output")
        .arg(&model)
        .assert()
        .success();
    let json = model.join("model.json");
    let text = std::fs::read_to_string(&json).unwrap();
    std::fs::write(&json, text.replace("\"linear\"", "\"lstm2\"")).unwrap();
    taxon_in(dir.path())
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
    taxon_in(dir.path())
        .args(["train", "--data"])
        .arg(&train)
        .args(["--output"])
        .arg(dir.path().join("m"))
        .assert()
        .code(2)
        .stderr(contains("train.jsonl:2").and(contains("label")));
}

// ---- checkpoints, resume, early stopping, expectations, reproducibility ----

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&read(path)).unwrap()
}

/// `taxon -q train` of linear's SGD solver (it has epochs to checkpoint and resume) on `data`
/// into `out` with one thread, seed 5, `epochs` epochs, small model.
fn train_cmd(data: &Path, out: &Path, epochs: usize) -> Command {
    let mut c = taxon_in(out.parent().unwrap_or(Path::new(".")));
    c.args(["-q", "train", "--solver", "sgd", "--data"])
        .arg(data)
        .arg("--output")
        .arg(out)
        .args(["--threads", "1", "--seed", "5", "--epochs"])
        .arg(epochs.to_string())
        .args(["--learning-rate", "0.5"]);
    c
}

#[test]
fn resume_after_a_stop_ends_with_the_same_model_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data, 40, 0);
    let out = dir.path().join("m");

    train_cmd(&data, &out, 4).assert().success();
    let metrics = read(&out.join("metrics.json"));
    let weights = read(&out.join("model.safetensors"));
    std::fs::remove_dir_all(&out).unwrap();

    train_cmd(&data, &out, 4)
        .args(["--stop-after-epochs", "2"])
        .assert()
        .success();
    assert!(
        !out.join("model.json").exists(),
        "a stopped run writes no model"
    );
    assert!(!out.join("metrics.json").exists());
    let latest = std::fs::read_to_string(out.join("checkpoints/LATEST")).unwrap();
    assert_eq!(latest.trim(), "epoch-0002");
    let state = json(&out.join("checkpoints/epoch-0002/state.json"));
    assert_eq!(state["epoch"], 2);
    assert_eq!(state["epochs"].as_array().unwrap().len(), 2);
    assert!(state["trainer"]["tokens_done"].as_u64().unwrap() > 0);

    taxon_in(dir.path())
        .args(["train", "--solver", "sgd", "--data"])
        .arg(&data)
        .arg("--output")
        .arg(&out)
        .args(["--threads", "1", "--seed", "5", "--epochs", "4"])
        .args(["--learning-rate", "0.5", "--resume"])
        .assert()
        .success()
        .stderr(contains("resumed from the checkpoint of epoch 2"));
    assert_eq!(read(&out.join("model.safetensors")), weights);
    assert_eq!(
        String::from_utf8(read(&out.join("metrics.json"))).unwrap(),
        String::from_utf8(metrics).unwrap()
    );
}

#[test]
fn resume_with_a_different_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data, 20, 0);
    let out = dir.path().join("m");
    // Nothing to resume from yet.
    train_cmd(&data, &out, 3)
        .arg("--resume")
        .assert()
        .code(2)
        .stderr(contains("no checkpoint"));
    train_cmd(&data, &out, 3)
        .args(["--stop-after-epochs", "1"])
        .assert()
        .success();
    taxon_in(dir.path())
        .args(["train", "--data"])
        .arg(&data)
        .arg("--output")
        .arg(&out)
        .args(["--threads", "1", "--seed", "5", "--epochs", "3"])
        .args(["--learning-rate", "0.25", "--resume"])
        .assert()
        .code(2)
        .stderr(
            contains("`learning_rate`")
                .and(contains("0.5"))
                .and(contains("0.25"))
                .and(contains("state.json")),
        );
    // Changed data is refused too.
    write_data(&data, 21, 0);
    train_cmd(&data, &out, 3)
        .arg("--resume")
        .assert()
        .code(2)
        .stderr(contains("`data`"));
}

#[test]
fn same_config_and_data_with_one_thread_give_identical_metrics_json() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data, 30, 0);
    let out = dir.path().join("m");
    train_cmd(&data, &out, 3).assert().success();
    let first = read(&out.join("metrics.json"));
    let weights = read(&out.join("model.safetensors"));
    std::fs::remove_dir_all(&out).unwrap();
    train_cmd(&data, &out, 3).assert().success();
    assert_eq!(read(&out.join("metrics.json")), first);
    assert_eq!(read(&out.join("model.safetensors")), weights);
    let m = json(&out.join("metrics.json"));
    assert!(m.get("train_seconds").is_none(), "timings stay out: {m}");
    assert!(m["epochs"][0].get("seconds").is_none());
}

#[test]
fn early_stopping_keeps_the_best_epochs_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (data, val) = (dir.path().join("train.jsonl"), dir.path().join("val.jsonl"));
    write_data(&data, 40, 0);
    write_data(&val, 10, 5);
    let out = dir.path().join("m");
    train_cmd(&data, &out, 30)
        .arg("--validation")
        .arg(&val)
        .args(["--patience", "2", "--monitor", "accuracy"])
        .assert()
        .success();
    let m = json(&out.join("metrics.json"));
    let accs: Vec<f64> = m["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["validation_accuracy"].as_f64().unwrap())
        .collect();
    let best = m["best_epoch"].as_u64().unwrap() as usize;
    let max = accs.iter().cloned().fold(f64::MIN, f64::max);
    // The best epoch is the first to reach the maximum, and training stopped 2 epochs later.
    assert_eq!(
        accs.iter().position(|&a| a == max).unwrap() + 1,
        best,
        "{accs:?}"
    );
    assert_eq!(m["stopped_early"], true);
    assert_eq!(accs.len(), best + 2, "{accs:?}");
    assert_eq!(m["model_epoch"].as_u64().unwrap() as usize, best);
    assert_eq!(m["config"]["monitor"], "accuracy");
    // The model folder holds the best epoch's weights, not the last epoch's.
    let ck = out.join("checkpoints");
    let best_w = read(&ck.join(format!("epoch-{best:04}/model.safetensors")));
    let last_w = read(&ck.join(format!("epoch-{:04}/model.safetensors", best + 2)));
    assert_eq!(read(&out.join("model.safetensors")), best_w);
    assert_ne!(best_w, last_w);
    // And it scores the validation file as the best epoch did.
    let out_json = taxon_in(dir.path())
        .args(["--json", "eval"])
        .arg(&out)
        .arg(&val)
        .output()
        .unwrap();
    let e: serde_json::Value = serde_json::from_slice(&out_json.stdout).unwrap();
    assert!((e["accuracy"].as_f64().unwrap() - max).abs() < 1e-12, "{e}");
}

#[test]
fn training_refuses_data_that_fails_its_expectations() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data, 20, 0);
    let suite = dir.path().join("suite.yaml");
    std::fs::write(
        &suite,
        "expectations:\n\
         - expectation_type: expect_column_values_to_be_in_set\n  \
           kwargs: {column: label, value_set: [sport, politics]}\n\
         - expectation_type: expect_table_row_count_to_be_between\n  \
           kwargs: {min_value: 10, max_value: 1000}\n",
    )
    .unwrap();
    let out = dir.path().join("m");
    train_cmd(&data, &out, 2)
        .arg("--expectations")
        .arg(&suite)
        .assert()
        .code(2)
        .stderr(
            contains("expect_column_values_to_be_in_set")
                .and(contains("1 of 2 expectations"))
                .and(contains("suite.yaml"))
                .and(contains("expect_table_row_count_to_be_between").not()),
        );
    assert!(!out.join("model.json").exists());
    // The same suite with the right label set lets training go on.
    let text = std::fs::read_to_string(&suite)
        .unwrap()
        .replace("politics", "business");
    std::fs::write(&suite, text).unwrap();
    train_cmd(&data, &out, 2)
        .arg("--expectations")
        .arg(&suite)
        .assert()
        .success();
}

#[test]
fn bad_training_options_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data, 10, 0);
    let out = dir.path().join("m");
    train_cmd(&data, &out, 2)
        .args(["--monitor", "f2"])
        .assert()
        .code(2)
        .stderr(contains("f2"));
    train_cmd(&data, &out, 2)
        .args(["--patience", "2", "--validation-ratio", "0"])
        .assert()
        .code(2)
        .stderr(contains("early_stopping_patience"));
    train_cmd(&data, &out, 2)
        .args(["--batch-size", "0"])
        .assert()
        .code(2)
        .stderr(contains("batch_size"));
    // A key linear does not use is a warning, not an error.
    let o = taxon_in(dir.path())
        .args(["train", "--data"])
        .arg(&data)
        .arg("--output")
        .arg(&out)
        .args(["--epochs", "1", "--warmup-steps", "100"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("`warmup_steps` ignored"));
    let m = json(&out.join("metrics.json"));
    assert!(m["warnings"][0].as_str().unwrap().contains("warmup_steps"));
}

#[test]
fn a_versioned_dataset_records_its_version_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("train.jsonl");
    write_data(&data, 20, 0);
    taxon_in(dir.path())
        .args(["-q", "data", "init"])
        .current_dir(dir.path())
        .assert()
        .success();
    taxon_in(dir.path())
        .args(["-q", "data", "add", "train.jsonl"])
        .current_dir(dir.path())
        .assert()
        .success();
    let pointer = std::fs::read_to_string(dir.path().join("train.jsonl.dvc")).unwrap();
    taxon_in(dir.path())
        .args([
            "-q",
            "train",
            "--data",
            "train.jsonl",
            "--output",
            "m",
            "--epochs",
            "1",
        ])
        .current_dir(dir.path())
        .assert()
        .success();
    let m = json(&dir.path().join("m/metrics.json"));
    let id = m["data_version"].as_str().unwrap();
    assert_eq!(id.len(), 32, "{id}");
    assert!(pointer.contains(&format!("md5: {id}")), "{pointer}");
    assert_eq!(recorded_data_version(dir.path()), m["data_version"]);

    // A file inside a tracked folder: the folder's version id (its `.dir` hash), in
    // metrics.json and in the run store alike.
    let folder = dir.path().join("bbc");
    std::fs::create_dir(&folder).unwrap();
    write_data(&folder.join("train.jsonl"), 20, 3);
    taxon_in(dir.path())
        .args(["-q", "data", "add", "bbc"])
        .assert()
        .success();
    taxon_in(dir.path())
        .args(["-q", "train", "--data", "bbc/train.jsonl", "--output", "m2"])
        .args(["--epochs", "1"])
        .assert()
        .success();
    let m = json(&dir.path().join("m2/metrics.json"));
    let id = m["data_version"].as_str().unwrap();
    assert!(id.ends_with(".dir"), "{id}");
    let pointer = std::fs::read_to_string(dir.path().join("bbc.dvc")).unwrap();
    assert!(pointer.contains(&format!("md5: {id}")), "{pointer}");
    assert_eq!(recorded_data_version(dir.path()), m["data_version"]);
}

/// The data version the run store recorded for the newest run in `dir`.
fn recorded_data_version(dir: &Path) -> serde_json::Value {
    let out = taxon_in(dir)
        .args(["--json", "runs", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    runs[0]["data_version"].clone()
}
