//! The binary: exit codes, usage errors and JSON output.

use std::process::{Command, Output};

use crate::server;

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_taxon-loadgen"))
        .args(args)
        .output()
        .expect("the taxon-loadgen binary runs")
}

fn texts_file(dir: &tempfile::TempDir) -> String {
    let path = dir.path().join("texts.txt");
    let lines: Vec<String> = (0..10_000).map(|i| format!("text {i}")).collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn bad_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let texts = texts_file(&dir);
    let out = loadgen(&["--url", "https://127.0.0.1:1/x", "--texts", &texts]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad --url") && stderr.contains("use http"),
        "{stderr}"
    );
}

#[test]
fn missing_texts_file_is_a_usage_error() {
    let out = loadgen(&[
        "--url",
        "http://127.0.0.1:1/x",
        "--texts",
        "/nonexistent/texts.txt",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/texts.txt"), "{stderr}");
}

#[test]
fn bad_flag_values_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let texts = texts_file(&dir);
    for (flag, value) in [
        ("--duration", "ten"),
        ("--header", "nocolon"),
        ("--track-field", "a..b"),
    ] {
        let out = loadgen(&[
            "--url",
            "http://127.0.0.1:1/x",
            "--texts",
            &texts,
            flag,
            value,
        ]);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
    }
    let out = loadgen(&[
        "--url",
        "http://127.0.0.1:1/x",
        "--texts",
        &texts,
        "--concurrency",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--concurrency must be at least 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_over_the_limit_exit_1_and_json_has_the_counts() {
    let (addr, _served) = server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let texts = texts_file(&dir);
    let url = format!("http://{addr}/v1/predict");
    let out = tokio::task::spawn_blocking(move || {
        loadgen(&[
            "--url",
            &url,
            "--texts",
            &texts,
            "-c",
            "4",
            "-d",
            "500ms",
            "--json",
            "--max-failures",
            "0",
            "--track-field",
            "model.version",
            "-H",
            "X-Test: 1",
        ])
    })
    .await
    .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["failed"], 1);
    assert_eq!(report["statuses"]["500"], 1);
    let requests = report["requests"].as_u64().unwrap();
    let sum = ["ok", "rejected", "failed"]
        .iter()
        .map(|k| report[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(sum, requests);
    assert_eq!(report["tracked_field"], "model.version");
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than --max-failures 0"));
}
