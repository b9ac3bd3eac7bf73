//! `taxon registry` through the binary, over real trained models: register runs, move aliases
//! through the promotion gate (a worse model is refused with exit 1, `--force` records why),
//! read the history and `--at`, pull and load a version, refuse tampered artifacts and cache
//! files, survive a register killed between upload and commit, and keep artifacts on S3 (moto).

use std::path::{Path, PathBuf};

use crate::common::tools::{Moto, objects_under};
use assert_cmd::Command;
use serde_json::Value;

/// `taxon` in `dir` with a clean registry/tracking environment and a known user.
fn taxon(dir: &Path) -> Command {
    let mut c = crate::common::tools::taxon(dir);
    c.env("TAXON_USER", "alice")
        .env_remove("TAXON_RUNS_DB")
        .env_remove("TAXON_REGISTRY_DB")
        .env_remove("TAXON_REGISTRY_ARTIFACTS")
        .env_remove("TAXON_REGISTRY_TEST_ABORT_AFTER_UPLOAD")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("TAXON_PUSHGATEWAY");
    c
}

/// `taxon --json ARGS`, asserting success; the parsed output.
fn json(dir: &Path, args: &[&str]) -> Value {
    let out = taxon(dir).arg("--json").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "taxon {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `taxon ARGS`: exit code, stdout, stderr.
fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = taxon(dir).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A two-topic dataset of `n` rows; `flip` swaps the labels (a model trained on it is wrong
/// on every test row).
fn write_data(path: &Path, n: usize, seed: u64, flip: bool) {
    let words = [
        ["goal", "match", "team", "score", "win", "league"],
        ["phone", "chip", "software", "data", "cloud", "server"],
    ];
    let mut s = String::new();
    let mut x = seed;
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
        let label = ["sport", "tech"][if flip { 1 - l } else { l }];
        s.push_str(&format!(
            "{{\"text\":\"{}\",\"label\":\"{label}\"}}\n",
            text.join(" ")
        ));
    }
    std::fs::write(path, s).unwrap();
}

/// A project with train, test and label-flipped data.
fn project() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    write_data(&tmp.path().join("train.jsonl"), 200, 7, false);
    write_data(&tmp.path().join("flipped.jsonl"), 200, 7, true);
    write_data(&tmp.path().join("test.jsonl"), 60, 99, false);
    tmp
}

/// Trains a small linear model on `data` into `out` (a tracked run), then evaluates it on
/// test.jsonl (adding `eval.test.*` to the run).
fn train_and_eval(dir: &Path, data: &str, out: &str) {
    taxon(dir)
        .args(["train", "--data", data, "--output", out])
        .args(["--threads", "1", "--epochs", "5"])
        .assert()
        .success();
    taxon(dir)
        .args(["eval", out, "test.jsonl", "--threads", "1"])
        .assert()
        .success();
}

/// The version's largest file (the weights).
fn weights_file(version: &Value) -> (String, String) {
    let f = version["files"]
        .as_array()
        .unwrap()
        .iter()
        .max_by_key(|f| f["bytes"].as_u64().unwrap())
        .unwrap();
    (
        f["name"].as_str().unwrap().to_string(),
        f["md5"].as_str().unwrap().to_string(),
    )
}

fn object_path(artifacts: &Path, md5: &str) -> PathBuf {
    artifacts.join("files/md5").join(&md5[..2]).join(&md5[2..])
}

#[test]
fn register_promote_through_the_gate_read_history_and_pull() {
    let tmp = project();
    let dir = tmp.path();
    train_and_eval(dir, "train.jsonl", "good");
    let (code, out, err) = run(dir, &["registry", "register", "latest"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("registered default v1 (run "), "{out}");
    assert!(
        out.contains(" files, ") && out.trim_end().ends_with("B)"),
        "{out}"
    );

    train_and_eval(dir, "flipped.jsonl", "bad");
    let v2 = json(
        dir,
        &["registry", "register", "latest", "--description", "flipped"],
    );
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["created_by"], "alice");
    assert_eq!(v2["description"], "flipped");
    assert_eq!(v2["labels"], serde_json::json!(["sport", "tech"]));

    let list = json(dir, &["registry", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let f1 = |v: &Value| v["metrics"]["eval.test.macro_f1"].as_f64().unwrap();
    assert!(f1(&list[0]) > 0.9 && f1(&list[1]) < 0.5, "{list:?}");

    // Any alias; the first production version has nothing to beat.
    assert_eq!(
        run(dir, &["registry", "alias", "set", "production", "1"]).0,
        Some(0)
    );
    assert_eq!(
        run(dir, &["registry", "alias", "set", "staging", "v2"]).0,
        Some(0)
    );

    // The worse model is refused: exit 1, naming both versions, the metric and --force.
    let (code, _, err) = run(dir, &["registry", "alias", "set", "production", "staging"]);
    assert_eq!(code, Some(1), "{err}");
    for part in ["v2", "v1", "eval.test.macro_f1", "--force"] {
        assert!(err.contains(part), "{part} missing: {err}");
    }
    let aliases = json(dir, &["registry", "alias", "list"]);
    assert_eq!(aliases["default"]["production"], 1, "unchanged: {aliases}");

    let (code, out, err) = run(
        dir,
        &["registry", "alias", "set", "production", "2", "--force"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("v1 -> v2") && out.contains("forced past the gate"),
        "{out}"
    );
    let (_, out, _) = run(dir, &["registry", "alias", "set", "production", "2"]);
    assert!(
        out.contains("already points at v2; nothing changed"),
        "{out}"
    );

    let hist = json(dir, &["registry", "history", "--alias", "production"]);
    let hist = hist.as_array().unwrap();
    assert_eq!(hist.len(), 2, "{hist:?}");
    assert_eq!(hist[0]["to_version"], 1);
    assert_eq!(hist[1]["from_version"], 1);
    assert_eq!(hist[1]["to_version"], 2);
    assert_eq!(hist[1]["forced"], true);
    assert_eq!(hist[1]["actor"], "alice");
    let at = |t: &str| {
        let (code, out, err) = run(
            dir,
            &["registry", "history", "--alias", "production", "--at", t],
        );
        assert_eq!(code, Some(0), "{err}");
        out.trim().to_string()
    };
    assert_eq!(at(hist[0]["at"].as_str().unwrap()), "v1");
    assert_eq!(at(hist[1]["at"].as_str().unwrap()), "v2");
    assert_eq!(at("2000-01-01 00:00"), "none");

    let show = json(dir, &["registry", "show", "default:production"]);
    assert_eq!(show["version"], 2);
    assert_eq!(
        show["aliases"],
        serde_json::json!(["production", "staging"])
    );
    let (_, text, _) = run(dir, &["registry", "show", "default:v1"]);
    assert!(
        text.starts_with("default v1") && text.contains("model.json"),
        "{text}"
    );

    // Pull v1 into a folder: the same files as trained, and it loads and scores.
    let (code, out, err) = run(
        dir,
        &["registry", "pull", "default:1", "--output", "pulled"],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "pulled");
    for f in ["model.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(dir.join("pulled").join(f)).unwrap(),
            std::fs::read(dir.join("good").join(f)).unwrap(),
            "{f}"
        );
    }
    let eval = json(dir, &["eval", "pulled", "test.jsonl", "--threads", "1"]);
    assert!(eval["accuracy"].as_f64().unwrap() > 0.9, "{eval}");
    let (code, _, err) = run(
        dir,
        &["registry", "pull", "default:1", "--output", "pulled"],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn tampered_artifacts_and_cache_files_are_refused_naming_the_file() {
    let tmp = project();
    let dir = tmp.path();
    train_and_eval(dir, "train.jsonl", "m");
    let v = json(dir, &["registry", "register", "latest"]);
    let (file, md5) = weights_file(&v);

    let pulled = json(dir, &["registry", "pull"]);
    let cache = dir.join(".taxon/registry/cache/default/1");
    assert_eq!(
        PathBuf::from(pulled["folder"].as_str().unwrap())
            .canonicalize()
            .unwrap(),
        cache.canonicalize().unwrap()
    );

    // A changed cache file is refused; the error names the file and the folder to delete.
    std::fs::write(cache.join(&file), b"edited").unwrap();
    let (code, _, err) = run(dir, &["registry", "pull", "default:latest"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&file) && err.contains("Delete the folder"),
        "{err}"
    );

    // A changed object in the artifact store is refused on download, naming the file and the
    // recorded md5; no cache folder is left.
    std::fs::remove_dir_all(&cache).unwrap();
    let object = object_path(&dir.join(".taxon/registry/artifacts"), &md5);
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let (code, _, err) = run(dir, &["registry", "pull"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(&format!("file {file}")) && err.contains(&md5),
        "{err}"
    );
    assert!(err.contains("refusing to load"), "{err}");
    assert!(!cache.exists());
}

#[test]
fn a_register_killed_after_upload_leaves_no_version() {
    let tmp = project();
    let dir = tmp.path();
    train_and_eval(dir, "train.jsonl", "m");
    let out = taxon(dir)
        .args(["registry", "register", "latest"])
        .env("TAXON_REGISTRY_TEST_ABORT_AFTER_UPLOAD", "1")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the hook must kill the process");
    assert_eq!(json(dir, &["registry", "list"]), serde_json::json!([]));
    let artifacts = dir.join(".taxon/registry/artifacts");
    let uploaded = objects_under(&artifacts).len();
    assert!(uploaded >= 2, "the files were uploaded before the kill");

    // The next register reuses the objects and gets version 1; a second one is refused.
    let v = json(dir, &["registry", "register", "latest"]);
    assert_eq!(v["version"], 1);
    assert_eq!(objects_under(&artifacts).len(), uploaded);
    let (code, _, err) = run(dir, &["registry", "register", "latest"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("already registered as default v1"), "{err}");
}

#[test]
fn artifacts_can_live_in_an_s3_bucket() {
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let tmp = project();
    let dir = tmp.path();
    train_and_eval(dir, "train.jsonl", "m");
    let url = "s3://models/team/registry";
    let v = taxon(dir)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .args([
            "--json",
            "registry",
            "register",
            "latest",
            "--artifacts",
            url,
        ])
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    let (_, md5) = weights_file(&v);
    let key = format!("team/registry/files/md5/{}/{}", &md5[..2], &md5[2..]);
    assert!(
        moto.keys("models").contains(&key),
        "{:?}",
        moto.keys("models")
    );
    assert!(!dir.join(".taxon/registry/artifacts").exists());

    // Pull through the env variable; the folder loads.
    taxon(dir)
        .env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("TAXON_REGISTRY_ARTIFACTS", url)
        .args(["registry", "pull", "--output", "from-s3"])
        .assert()
        .success();
    let eval = json(dir, &["eval", "from-s3", "test.jsonl", "--threads", "1"]);
    assert!(eval["accuracy"].as_f64().unwrap() > 0.9, "{eval}");
}
