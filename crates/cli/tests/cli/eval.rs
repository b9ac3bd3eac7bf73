//! `taxon eval` end to end through the binary: the JSON document, calibration with a fitted
//! temperature, `temperature.json`, and the HTML report.

use std::path::Path;

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;

/// The binary, recording runs in `root`'s own store rather than the working directory's.
fn taxon_in(root: &Path) -> Command {
    let mut c = Command::cargo_bin("taxon").unwrap();
    c.env("TAXON_RUNS_DB", root.join("runs.db"));
    c
}

/// Three topics with mostly disjoint keywords, one label that needs escaping, and a share of
/// ambiguous texts (words of two topics) so the model is not perfect; deterministic.
fn write_data(path: &Path, n_per_class: usize, offset: usize) {
    let topics = [
        ("sport", ["goal", "match", "striker", "league"]),
        ("business", ["market", "shares", "profit", "bank"]),
        (
            "<script>x</script>",
            ["vote", "minister", "party", "election"],
        ),
    ];
    let filler = ["the", "a", "said", "after", "new", "on"];
    let mut out = String::new();
    for i in 0..n_per_class {
        for (t, (label, words)) in topics.iter().enumerate() {
            let k = i + offset;
            let other = topics[(t + 1) % 3].1;
            let text = if k % 5 == 0 {
                format!("{} {} {}", filler[k % 6], words[k % 4], other[(k / 4) % 4])
            } else {
                format!(
                    "{} {} {} {} {}",
                    filler[k % 6],
                    words[k % 4],
                    filler[(k / 6) % 6],
                    words[(k / 4) % 4],
                    filler[(k + 3) % 6]
                )
            };
            out.push_str(&serde_json::json!({"text": text, "label": label}).to_string());
            out.push('\n');
        }
    }
    std::fs::write(path, out).unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    model: std::path::PathBuf,
    val: std::path::PathBuf,
    test: std::path::PathBuf,
    root: std::path::PathBuf,
}

fn trained() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let (train, val, test, model) = (
        root.join("train.jsonl"),
        root.join("val.jsonl"),
        root.join("test.jsonl"),
        root.join("model"),
    );
    write_data(&train, 60, 0);
    write_data(&val, 20, 100);
    write_data(&test, 20, 7);
    taxon_in(&root)
        .args(["-q", "train", "--model-type", "linear", "--data"])
        .arg(&train)
        .arg("--output")
        .arg(&model)
        .args(["--epochs", "8", "--threads", "1", "--seed", "5"])
        .assert()
        .success();
    Fixture {
        _dir: dir,
        model,
        val,
        test,
        root,
    }
}

fn eval_json(f: &Fixture, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = taxon_in(&f.root)
        .args(["--json", "eval"])
        .args(args)
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

#[test]
fn eval_json_has_metrics_and_calibration_keys() {
    let f = trained();
    let v = eval_json(&f, &[f.model.as_os_str(), f.test.as_os_str()]);
    for key in [
        "accuracy",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "ece",
        "reliability",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    assert!(
        v.get("temperature").is_none(),
        "no temperature without calibration"
    );
    let bins = v["reliability"].as_array().unwrap();
    assert_eq!(bins.len(), 15);
    let counted: u64 = bins.iter().map(|b| b["count"].as_u64().unwrap()).sum();
    assert_eq!(counted, 60);
    let ece = v["ece"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&ece), "{ece}");
    assert_eq!(v["per_class"].as_array().unwrap().len(), 3);
    let total: u64 = v["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(total, 60);
}

#[test]
fn calibrate_on_fits_a_temperature_and_saves_it() {
    let f = trained();
    let v = eval_json(
        &f,
        &[
            f.model.as_os_str(),
            f.test.as_os_str(),
            "--calibrate-on".as_ref(),
            f.val.as_os_str(),
            "--save-temperature".as_ref(),
        ],
    );
    let t = v["temperature"].as_f64().expect("temperature");
    assert!(t > 0.0 && t.is_finite());
    let cal = &v["calibrated"];
    assert!(cal["ece"].as_f64().is_some());
    let fit = &cal["fit"];
    assert_eq!(fit["examples"], 60);
    assert!(fit["nll_after"].as_f64().unwrap() <= fit["nll_before"].as_f64().unwrap() + 1e-12);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(f.model.join("temperature.json")).unwrap()).unwrap();
    assert!((saved["temperature"].as_f64().unwrap() - t).abs() < 1e-12);
    assert!(saved["fitted_on"].as_str().unwrap().ends_with("val.jsonl"));

    // The saved temperature is applied on the next evaluation, and the model still loads.
    let again = eval_json(&f, &[f.model.as_os_str(), f.test.as_os_str()]);
    assert!((again["temperature"].as_f64().unwrap() - t).abs() < 1e-12);
    assert!(
        again["calibrated"]["source"]
            .as_str()
            .unwrap()
            .ends_with("temperature.json")
    );
    assert_eq!(again["accuracy"], v["accuracy"]);
}

#[test]
fn report_is_written_with_plots_counts_and_escaped_labels() {
    let f = trained();
    let report = f.root.join("report.html");
    let v = eval_json(
        &f,
        &[
            f.model.as_os_str(),
            f.test.as_os_str(),
            "--report".as_ref(),
            report.as_os_str(),
            "--calibrate-on".as_ref(),
            f.val.as_os_str(),
        ],
    );
    let html = std::fs::read_to_string(&report).unwrap();
    // heatmap, loss curve, validation curve, reliability before and after temperature
    assert_eq!(html.matches("<svg").count(), 5);
    assert!(
        !html.contains("<script"),
        "an unescaped label made a script tag"
    );
    assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(html.contains("train loss"));
    for row in v["confusion_matrix"].as_array().unwrap() {
        for c in row.as_array().unwrap() {
            assert!(html.contains(&format!(">{}</text>", c.as_u64().unwrap())));
        }
    }
}

#[test]
fn human_output_shows_calibration() {
    let f = trained();
    taxon_in(&f.root)
        .arg("eval")
        .arg(&f.model)
        .arg(&f.test)
        .arg("--calibrate-on")
        .arg(&f.val)
        .assert()
        .success()
        .stdout(
            contains("ECE")
                .and(contains("temperature"))
                .and(contains("business")),
        );
}

#[test]
fn save_temperature_needs_calibration_data() {
    let f = trained();
    taxon_in(&f.root)
        .arg("eval")
        .arg(&f.model)
        .arg(&f.test)
        .arg("--save-temperature")
        .assert()
        .code(2)
        .stderr(contains("--calibrate-on"));
    assert!(!f.model.join("temperature.json").exists());
}

#[test]
fn bad_calibration_file_is_an_error_at_its_line() {
    let f = trained();
    let bad = f.root.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"text\":\"goal\",\"label\":\"sport\"}\n{\"text\":\n",
    )
    .unwrap();
    taxon_in(&f.root)
        .arg("eval")
        .arg(&f.model)
        .arg(&f.test)
        .arg("--calibrate-on")
        .arg(&bad)
        .assert()
        .code(2)
        .stderr(contains("bad.jsonl:2"));
    let unknown = f.root.join("unknown.jsonl");
    std::fs::write(&unknown, "{\"text\":\"goal\",\"label\":\"weather\"}\n").unwrap();
    taxon_in(&f.root)
        .arg("eval")
        .arg(&f.model)
        .arg(&f.test)
        .arg("--calibrate-on")
        .arg(&unknown)
        .assert()
        .code(2)
        .stderr(contains("unknown.jsonl").and(contains("label the model knows")));
}

#[test]
fn report_into_missing_folder_is_an_error_naming_it() {
    let f = trained();
    taxon_in(&f.root)
        .arg("eval")
        .arg(&f.model)
        .arg(&f.test)
        .arg("--report")
        .arg(f.root.join("nope/r.html"))
        .assert()
        .code(2)
        .stderr(contains("nope"));
}
