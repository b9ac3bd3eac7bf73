//! `taxon monitor`: the reference profile written by `train` and rebuilt by `monitor profile`,
//! and `monitor drift` (verdict, exit codes, JSON, HTML report).

use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn taxon_in(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("taxon").unwrap();
    c.current_dir(dir).env_remove("TAXON_JSON");
    c
}

const SPORT: &[&str] = &[
    "striker", "goal", "league", "match", "coach", "season", "cup",
];
const BUSINESS: &[&str] = &[
    "bank", "shares", "profit", "market", "economy", "firm", "sales",
];
const OTHER: &[&str] = &[
    "quantum", "lattice", "enzyme", "galaxy", "photon", "isotope", "genome",
];

/// `n` rows of 4-9 words drawn (deterministically) from the sport and business words, sport
/// every `sport_every` rows.
fn write_rows(path: &Path, n: usize, seed: usize, sport_every: usize, words: Option<&[&str]>) {
    let mut s = String::new();
    for i in 0..n {
        let k = i + seed * 7919;
        let (label, pool) = if i % sport_every == 0 {
            ("sport", SPORT)
        } else {
            ("business", BUSINESS)
        };
        let pool = words.unwrap_or(pool);
        let len = 4 + (k * 31 + 7) % 6;
        let text: Vec<&str> = (0..len)
            .map(|j| pool[(k * 13 + j * 5 + j * j) % pool.len()])
            .collect();
        s.push_str(&serde_json::json!({"text": text.join(" "), "label": label}).to_string());
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

/// A linear model of fastText's SGD solver (smooth scores on this tiny synthetic vocabulary,
/// where the SVMs separate some texts with near certainty) trained on 120 rows.
fn trained(dir: &Path) -> PathBuf {
    write_rows(&dir.join("train.jsonl"), 120, 1, 2, None);
    let model = dir.join("model");
    taxon_in(dir)
        .args(["-q", "train", "--data", "train.jsonl", "--output", "model"])
        .args(["--solver", "sgd", "--epochs", "3", "--threads", "1"])
        .args(["--checkpoint-every", "0"])
        .assert()
        .success();
    model
}

fn drift_json(dir: &Path, current: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = taxon_in(dir)
        .args([
            "-q",
            "--json",
            "monitor",
            "drift",
            "--reference",
            "model",
            "--current",
            current,
        ])
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), v)
}

fn feature<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap()
}

#[test]
fn train_writes_a_profile_listed_in_model_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained(dir.path());
    let bytes = std::fs::read(model.join("profile.json")).unwrap();
    let desc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    let entry = desc["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "profile.json")
        .unwrap();
    assert_eq!(entry["bytes"], bytes.len());
    let profile: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    // 10% of 120 rows held out for validation: fastText's sgd never sees them.
    assert_eq!(profile["rows"], 12);
    for f in [
        "tokens",
        "unknown_share",
        "confidence",
        "score:sport",
        "score:business",
    ] {
        assert_eq!(profile["numeric"][f]["count"], 12, "{f}");
    }
    // The svm default refits on all 120 rows: its profile is cross-fitted over all of them.
    taxon_in(dir.path())
        .args(["-q", "train", "--data", "train.jsonl", "--output", "svm"])
        .args(["--checkpoint-every", "0"])
        .assert()
        .success();
    let svm: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("svm/profile.json")).unwrap())
            .unwrap();
    assert_eq!(svm["rows"], 120);
    assert!(
        svm["source"]
            .as_str()
            .unwrap()
            .starts_with("cross-fitted: 120 texts"),
        "{}",
        svm["source"]
    );
    assert_eq!(svm["numeric"]["confidence"]["count"], 120);
    // The model still loads (its files, the profile included, match model.json).
    write_rows(&dir.path().join("x.jsonl"), 5, 3, 2, None);
    taxon_in(dir.path())
        .args(["-q", "predict", "model", "x.jsonl"])
        .assert()
        .success();
}

#[test]
fn drift_is_exit_0_on_like_data_and_1_on_another_domain() {
    let dir = tempfile::tempdir().unwrap();
    trained(dir.path());
    write_rows(&dir.path().join("heldout.jsonl"), 400, 2, 2, None);
    let out = taxon_in(dir.path())
        .args([
            "-q",
            "--json",
            "monitor",
            "profile",
            "model",
            "heldout.jsonl",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(p["rows"], 400);

    write_rows(&dir.path().join("same.jsonl"), 300, 3, 2, None);
    let (code, v) = drift_json(dir.path(), "same.jsonl", &[]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["drift"], false);
    assert_eq!(v["rows"], 300);
    for f in v["features"].as_array().unwrap() {
        for key in ["name", "statistic", "value", "threshold", "drift"] {
            assert!(f.get(key).is_some(), "{key} missing in {f}");
        }
    }

    write_rows(&dir.path().join("other.jsonl"), 300, 4, 2, Some(OTHER));
    let (code, v) = drift_json(dir.path(), "other.jsonl", &["--report", "r.html"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["drift"], true);
    let unk = feature(&v, "unknown_share");
    assert_eq!(unk["drift"], true, "{unk}");
    assert!(unk["value"].as_f64().unwrap() > 1.0);
    let html = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"));
    assert!(html.contains("unknown_share"));

    // Label shift: sport in 3 of 4 rows instead of 1 of 2.
    let mut s = String::new();
    for i in 0..300 {
        let pool = if i % 4 == 3 { BUSINESS } else { SPORT };
        let text: Vec<&str> = (0..6)
            .map(|j| pool[(i * 13 + j * 5 + j * j) % pool.len()])
            .collect();
        s.push_str(&serde_json::json!({"text": text.join(" ")}).to_string());
        s.push('\n');
    }
    std::fs::write(dir.path().join("shift.jsonl"), s).unwrap();
    let (code, v) = drift_json(dir.path(), "shift.jsonl", &[]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(feature(&v, "predicted_label")["drift"], true, "{v:#}");
}

#[test]
fn thresholds_file_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    trained(dir.path());
    write_rows(&dir.path().join("other.jsonl"), 200, 4, 2, Some(OTHER));
    std::fs::write(
        dir.path().join("t.yaml"),
        "chi_square_p: 0.0\nfeatures:\n  unknown_share: 1000\n  tokens: 1000\n  confidence: 1000\n  score:sport: 1000\n  score:business: 1000\n",
    )
    .unwrap();
    let (code, v) = drift_json(dir.path(), "other.jsonl", &["--thresholds", "t.yaml"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(feature(&v, "unknown_share")["threshold"], 1000.0);

    std::fs::write(dir.path().join("bad.yaml"), "wasserstien: 0.1\n").unwrap();
    let out = taxon_in(dir.path())
        .args([
            "monitor",
            "drift",
            "--reference",
            "model",
            "--current",
            "other.jsonl",
            "--thresholds",
            "bad.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml"));

    // A tampered profile is refused (md5 in model.json), exit 2.
    let p = dir.path().join("model/profile.json");
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"rows\":12", "\"rows\":13");
    std::fs::write(&p, text).unwrap();
    let out = taxon_in(dir.path())
        .args([
            "monitor",
            "drift",
            "--reference",
            "model",
            "--current",
            "other.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("profile.json"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
