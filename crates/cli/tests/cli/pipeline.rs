//! `taxon pipeline` against the real `dvc` 3: a pipeline taxon ran is up to date for `dvc
//! status` and one `dvc repro` ran is up to date for taxon; only what changed re-runs; a failed
//! or killed stage is not recorded and the next run redoes it; one run at a time; and the
//! standard pipeline of `taxon pipeline init` runs end to end on label folders.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::tools::{require_tool, taxon, taxon_json};

fn dvc(bin: &Path, dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(bin)
        .current_dir(dir)
        .args(args)
        .env("DVC_NO_ANALYTICS", "1")
        .output()
        .expect("run dvc")
}

/// `dvc status --json` as JSON (an empty object: everything up to date).
fn dvc_status(bin: &Path, dir: &Path) -> serde_json::Value {
    let out = dvc(bin, dir, &["status", "--json"]);
    assert!(
        out.status.success(),
        "dvc status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("dvc status --json")
}

/// A DVC repository (`taxon data init`) with a pipeline of three stages, a `foreach` and
/// params; every command appends its stage name to `runs.log` so tests see what ran.
fn repo() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    taxon(d).args(["data", "init"]).assert().success();
    std::fs::create_dir_all(d.join("data")).unwrap();
    std::fs::write(d.join("data/raw.csv"), "a,1\nb,2\n").unwrap();
    std::fs::write(
        d.join("params.yaml"),
        "prep:\n  split: 0.2\n  seed: 3\ntrain:\n  epochs: 5\n  lr: 0.1\nsets: [x, y]\n",
    )
    .unwrap();
    std::fs::write(
        d.join("dvc.yaml"),
        r#"stages:
  prep:
    cmd: echo prep >> runs.log && mkdir -p out && cp data/raw.csv out/x.csv && echo ${prep.seed} > out/seed
    deps:
    - data/raw.csv
    params:
    - prep.split
    outs:
    - out
  train:
    cmd:
    - echo train >> runs.log
    - "cat out/x.csv > model.txt && printf '{\"acc\": 0.9}' > metrics.json"
    deps:
    - out
    params:
    - train
    outs:
    - model.txt
    metrics:
    - metrics.json:
        cache: false
  each:
    foreach: ${sets}
    do:
      cmd: echo each-${item} >> runs.log && echo ${item} > each_${item}.txt
      outs:
      - each_${item}.txt
"#,
    )
    .unwrap();
    tmp
}

fn runs(dir: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(dir.join("runs.log")).unwrap_or_default();
    let lines = log.lines().map(str::to_string).collect();
    std::fs::remove_file(dir.join("runs.log")).ok();
    lines
}

#[test]
fn taxon_and_dvc_agree_on_what_is_up_to_date_both_ways() {
    let Some(dvc_bin) = require_tool("dvc") else {
        return;
    };
    let tmp = repo();
    let d = tmp.path();
    taxon(d).args(["pipeline", "status"]).assert().code(1);
    let report = taxon_json(d, &["pipeline", "run"]);
    assert_eq!(report["stages"].as_array().unwrap().len(), 4);
    assert_eq!(runs(d), ["prep", "train", "each-x", "each-y"]);
    // taxon -> dvc: the lock and the cache taxon wrote are what dvc expects.
    assert_eq!(dvc_status(&dvc_bin, d), serde_json::json!({}));
    let lock: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(d.join("dvc.lock")).unwrap()).unwrap();
    let out_md5 = lock["stages"]["prep"]["outs"][0]["md5"].as_str().unwrap();
    assert!(out_md5.ends_with(".dir"), "{out_md5}");
    let obj = d
        .join(".dvc/cache/files/md5")
        .join(&out_md5[..2])
        .join(&out_md5[2..]);
    assert!(obj.is_file(), "the folder's manifest is in the DVC cache");
    assert_eq!(
        lock["stages"]["train"]["params"]["params.yaml"]["train"]["epochs"],
        serde_yaml_ng::Value::from(5)
    );

    // Nothing changed: nothing runs.
    taxon(d).args(["pipeline", "status"]).assert().success();
    taxon(d).args(["pipeline", "run"]).assert().success();
    assert!(runs(d).is_empty());

    // A parameter changes: both see it; the dry run says why; dvc repro brings it up to date
    // and taxon agrees.
    let params = std::fs::read_to_string(d.join("params.yaml")).unwrap();
    std::fs::write(
        d.join("params.yaml"),
        params.replace("split: 0.2", "split: 0.3"),
    )
    .unwrap();
    let st = dvc_status(&dvc_bin, d);
    assert!(st.get("prep").is_some(), "dvc sees the change: {st}");
    let dry = taxon_json(d, &["pipeline", "run", "--dry-run"]);
    let stages = dry["stages"].as_array().unwrap();
    let prep = stages.iter().find(|s| s["stage"] == "prep").unwrap();
    assert_eq!(prep["action"], "would_run");
    assert_eq!(prep["reasons"][0]["kind"], "param_modified");
    assert_eq!(prep["reasons"][0]["key"], "prep.split");
    let train = stages.iter().find(|s| s["stage"] == "train").unwrap();
    assert_eq!(train["reasons"][0]["kind"], "upstream");
    assert!(runs(d).is_empty(), "a dry run runs nothing");
    let out = dvc(&dvc_bin, d, &["repro", "-q"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    runs(d);
    taxon(d).args(["pipeline", "status"]).assert().success();
    taxon(d).args(["pipeline", "run"]).assert().success();
    assert!(runs(d).is_empty(), "what dvc ran is up to date for taxon");

    // A dependency changes: the stages downstream of it run, the others do not.
    std::fs::write(d.join("data/raw.csv"), "a,1\nb,2\nc,3\n").unwrap();
    taxon(d).args(["pipeline", "run"]).assert().success();
    assert_eq!(runs(d), ["prep", "train"]);
    assert_eq!(dvc_status(&dvc_bin, d), serde_json::json!({}));

    // One target: it and its upstream only; a foreach group by its name.
    taxon(d)
        .args(["pipeline", "run", "--force", "each"])
        .assert()
        .success();
    assert_eq!(runs(d), ["each-x", "each-y"]);

    // A deleted output is noticed and rebuilt.
    std::fs::remove_file(d.join("model.txt")).unwrap();
    let st = taxon_json_code(d, &["pipeline", "status"], 1);
    assert_eq!(st["up_to_date"], false);
    taxon(d).args(["pipeline", "run"]).assert().success();
    assert_eq!(runs(d), ["train"]);
}

/// `taxon --json ARGS` with an expected exit code.
fn taxon_json_code(dir: &Path, args: &[&str], code: i32) -> serde_json::Value {
    let out = taxon(dir).arg("--json").args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn a_failed_stage_stops_the_run_is_not_recorded_and_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    taxon(d).args(["data", "init"]).assert().success();
    std::fs::write(
        d.join("dvc.yaml"),
        "stages:\n  a:\n    cmd: echo a >> runs.log && echo a > a.txt\n    outs: [a.txt]\n  b:\n    cmd: echo b >> runs.log && test -f ok && cp a.txt b.txt || exit 3\n    deps: [a.txt]\n    outs: [b.txt]\n  c:\n    cmd: echo c >> runs.log && cp b.txt c.txt\n    deps: [b.txt]\n    outs: [c.txt]\n",
    )
    .unwrap();
    let out = taxon(d).args(["pipeline", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stage `b` failed")
            && err.contains("exited with code 3")
            && err.contains("test -f ok"),
        "{err}"
    );
    assert_eq!(runs(d), ["a", "b"], "c never started");
    let lock = std::fs::read_to_string(d.join("dvc.lock")).unwrap();
    assert!(lock.contains("  a:") && !lock.contains("  b:"), "{lock}");

    std::fs::write(d.join("ok"), "").unwrap();
    taxon(d).args(["pipeline", "run"]).assert().success();
    assert_eq!(runs(d), ["b", "c"], "a is up to date, b is redone");
}

#[test]
fn a_killed_run_leaves_no_record_of_its_stage_and_releases_the_lock() {
    use std::os::unix::process::CommandExt;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    taxon(d).args(["data", "init"]).assert().success();
    std::fs::write(
        d.join("dvc.yaml"),
        "stages:\n  slow:\n    cmd: echo partial > out.txt && touch started && sleep 30 && echo done >> out.txt\n    outs: [out.txt]\n",
    )
    .unwrap();
    let bin = assert_cmd::cargo::cargo_bin("taxon");
    let mut child = std::process::Command::new(&bin)
        .current_dir(d)
        .args(["--quiet", "pipeline", "run"])
        .process_group(0)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !d.join("started").exists() {
        assert!(Instant::now() < deadline, "the stage never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    // A second run while the first holds the lock is refused at once.
    let out = taxon(d).args(["pipeline", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another `taxon pipeline` run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A retraining is refused up front too, before it touches any data.
    std::fs::write(
        d.join("train.jsonl"),
        "{\"text\": \"a\", \"label\": \"x\"}\n",
    )
    .unwrap();
    let out = taxon(d)
        .args([
            "pipeline",
            "retrain",
            "--log",
            "log",
            "--into",
            "train.jsonl",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("another `taxon pipeline` run"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(d.join("train.jsonl")).unwrap(),
        "{\"text\": \"a\", \"label\": \"x\"}\n"
    );
    assert!(!d.join(".taxon/retrains.jsonl").exists());
    // kill -9 the whole group: taxon and the stage's shell (a group of its own, so nothing
    // else is hit).
    let group = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
    rustix::process::kill_process_group(group, rustix::process::Signal::KILL).unwrap();
    child.wait().unwrap();
    assert!(
        !d.join("dvc.lock").exists(),
        "nothing recorded for a killed stage"
    );
    std::fs::write(
        d.join("dvc.yaml"),
        "stages:\n  slow:\n    cmd: echo whole > out.txt\n    outs: [out.txt]\n",
    )
    .unwrap();
    taxon(d).args(["pipeline", "run"]).assert().success();
    assert_eq!(
        std::fs::read_to_string(d.join("out.txt")).unwrap(),
        "whole\n"
    );
    taxon(d).args(["pipeline", "status"]).assert().success();
}

#[test]
fn errors_in_the_pipeline_file_name_the_file_line_stage_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    taxon(d).args(["data", "init"]).assert().success();
    std::fs::write(d.join("dvc.yaml"), "stages:\n  a:\n    cmd: [x\n").unwrap();
    let out = taxon(d).args(["pipeline", "status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dvc.yaml:4"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        d.join("dvc.yaml"),
        "stages:\n  a:\n    cmd: echo ${train.nope}\n",
    )
    .unwrap();
    std::fs::write(d.join("params.yaml"), "train: {epochs: 1}\n").unwrap();
    let out = taxon(d).args(["pipeline", "run"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stages.a") && err.contains("train.nope"),
        "{err}"
    );
    std::fs::write(
        d.join("dvc.yaml"),
        "stages:\n  a:\n    cmd: x\n    deps: [b.txt]\n    outs: [a.txt]\n  b:\n    cmd: y\n    deps: [a.txt]\n    outs: [b.txt]\n",
    )
    .unwrap();
    let out = taxon(d).args(["pipeline", "dag"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cycle"));
}

/// `n` short texts per label whose words say the label, in `root/<label>/<i>.txt`.
fn label_folders(root: &Path, n: usize) {
    let words = [
        ("sports", ["match", "goal", "team", "league", "coach"]),
        ("science", ["atom", "theory", "cell", "physics", "lab"]),
        ("music", ["album", "song", "guitar", "concert", "band"]),
    ];
    for (label, ws) in words {
        let dir = root.join(label);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let text: Vec<&str> = (0..12).map(|j| ws[(i * 7 + j * 3) % ws.len()]).collect();
            std::fs::write(
                dir.join(format!("{i}.txt")),
                format!("note {i}: {}", text.join(" ")),
            )
            .unwrap();
        }
    }
}

#[test]
fn the_standard_pipeline_runs_end_to_end_and_reruns_only_what_a_param_touches() {
    let Some(dvc_bin) = require_tool("dvc") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    label_folders(&d.join("raw"), 30);
    let init = taxon_json(d, &["pipeline", "init", "--data", "raw", "--name", "notes"]);
    assert_eq!(
        init["stages"],
        serde_json::json!(["prepare", "validate", "train", "evaluate", "register"])
    );
    let out = taxon(d)
        .args(["pipeline", "init", "--data", "raw"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "init never overwrites");

    let report = taxon_json(d, &["pipeline", "run"]);
    let ran: Vec<&str> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["action"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["ran"; 5]);
    let eval: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("reports/eval.json")).unwrap())
            .unwrap();
    let acc = eval["accuracy"].as_f64().expect("eval.json has accuracy");
    assert!(acc > 0.9, "{acc}");
    let promo: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("reports/promotion.json")).unwrap())
            .unwrap();
    assert_eq!(promo["changed"], true, "{promo}");
    let aliases = taxon_json(d, &["registry", "alias", "list"]);
    assert_eq!(aliases["notes"]["production"], 1);
    assert_eq!(dvc_status(&dvc_bin, d), serde_json::json!({}));

    // A training parameter changes: prepare and validate stay, the rest re-runs.
    let params = std::fs::read_to_string(d.join("params.yaml")).unwrap();
    std::fs::write(
        d.join("params.yaml"),
        params.replace("  seed: 42\n  threads", "  seed: 7\n  threads"),
    )
    .unwrap();
    let report = taxon_json(d, &["pipeline", "run"]);
    let actions: Vec<(String, String)> = report["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["stage"].as_str().unwrap().into(),
                s["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("prepare", "skipped"),
            ("validate", "skipped"),
            ("train", "ran"),
            ("evaluate", "ran"),
            ("register", "ran"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let versions = taxon_json(d, &["registry", "list"]);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    assert_eq!(dvc_status(&dvc_bin, d), serde_json::json!({}));
}

/// The status of one `POST /v1/predict` on a fresh connection, `None` when it broke.
fn predict_status(port: u16, text: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let body = serde_json::json!({ "text": text }).to_string();
    write!(
        s,
        "POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut answer = String::new();
    s.read_to_string(&mut answer).ok()?;
    answer.split(' ').nth(1)?.parse().ok()
}

/// `n` texts per label in the vocabulary of `domain` (0 or 1): the same three labels, told
/// apart by other words in each domain.
fn domain_rows(domain: usize, n: usize, offset: usize) -> Vec<(String, &'static str)> {
    let words: [(&str, [&str; 5]); 3] = if domain == 0 {
        [
            ("sports", ["match", "goal", "team", "league", "coach"]),
            ("science", ["atom", "theory", "cell", "physics", "lab"]),
            ("music", ["album", "song", "guitar", "concert", "band"]),
        ]
    } else {
        [
            ("sports", ["sprint", "medal", "relay", "stadium", "referee"]),
            (
                "science",
                ["genome", "neuron", "quantum", "enzyme", "telescope"],
            ),
            (
                "music",
                ["violin", "chorus", "tempo", "melody", "orchestra"],
            ),
        ]
    };
    let mut out = Vec::new();
    for (label, ws) in words {
        for i in offset..offset + n {
            let t: Vec<&str> = (0..10).map(|j| ws[(i * 7 + j * 3) % ws.len()]).collect();
            out.push((format!("item {i} {}", t.join(" ")), label));
        }
    }
    out
}

#[test]
fn feedback_on_a_new_domain_retrains_gates_and_swaps_the_served_model_without_a_failed_request() {
    use crate::serve::{Server, eventually};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    // Domain 0 only, as label folders.
    for (i, (text, label)) in domain_rows(0, 30, 0).into_iter().enumerate() {
        let dir = d.join("raw").join(label);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{i}.txt")), text).unwrap();
    }
    taxon_json(d, &["pipeline", "init", "--data", "raw"]);
    let params = std::fs::read_to_string(d.join("params.yaml")).unwrap();
    std::fs::write(
        d.join("params.yaml"),
        params.replace("min_feedback: 50", "min_feedback: 30"),
    )
    .unwrap();
    taxon_json(d, &["data", "add", "raw"]);
    taxon_json(d, &["pipeline", "run"]);

    let server = Server::start_with(
        d,
        &[],
        &[
            "--alias",
            "production",
            "--poll-interval",
            "0.2",
            "--prediction-log",
            "log",
            "--prediction-log-text",
            "--retrain-on-alert",
        ],
        &[],
    );
    let predict = |text: &str| -> serde_json::Value {
        let body = serde_json::json!({ "text": text }).to_string();
        let a = server.request("POST", "/v1/predict", Some(&body));
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    };
    // Traffic moves to domain 1; the users label what they see.
    let mut right = 0;
    let shifted = domain_rows(1, 15, 0);
    let mut feedback = Vec::new();
    for (text, label) in &shifted {
        let answer = predict(text);
        assert_eq!(answer["model"]["version"], "v1");
        right += usize::from(answer["label"] == *label);
        feedback.push(serde_json::json!({"request_id": answer["request_id"], "label": label}));
    }
    let before = right as f64 / shifted.len() as f64;
    let body = serde_json::json!({ "feedback": feedback }).to_string();
    let a = server.request("POST", "/v1/feedback", Some(&body));
    assert_eq!(a.status, 200, "{}", a.body);

    // The log's writer flushes in the background: the feedback is on disk shortly after.
    eventually("the feedback to reach the prediction log", || {
        std::fs::read_dir(d.join("log"))
            .map(|it| {
                it.flatten()
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .map(|t| t.matches(r#""type":"feedback""#).count())
                    .sum::<usize>()
            })
            .unwrap_or(0)
            == shifted.len()
    });

    // Requests keep flowing during the retraining and the swap: none may fail.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let port = server.port;
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ok = predict_status(port, "item 3 relay medal") == Some(200);
                sent.fetch_add(1, Ordering::Relaxed);
                failed.fetch_add(usize::from(!ok), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Alertmanager notifies the server's webhook receiver; the retraining runs as a child.
    let started = Instant::now();
    let resolved = r#"{"status": "resolved", "alerts": [{"status": "resolved", "labels": {"alertname": "ModelAccuracyLow"}}]}"#;
    let a = server.request("POST", "/v1/admin/retrain", Some(resolved));
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.json()["started"], false);
    let firing = r#"{"receiver": "taxon", "status": "firing", "groupLabels": {}, "alerts": [{"status": "firing", "labels": {"alertname": "ModelAccuracyLow", "severity": "page"}, "annotations": {}}]}"#;
    let a = server.request("POST", "/v1/admin/retrain", Some(firing));
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.json()["cause"], "alert:ModelAccuracyLow");
    eventually("the server to serve v2", || {
        predict("item 0 violin chorus")["model"]["version"] == "v2"
    });
    let swap_seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the swap"
    );
    assert!(sent.load(Ordering::Relaxed) > 0);

    // The record is written once the child has read the registry back.
    eventually("the retraining to be recorded", || {
        !taxon_json(d, &["pipeline", "retrain", "--history"])
            .as_array()
            .unwrap()
            .is_empty()
    });
    let history = taxon_json(d, &["pipeline", "retrain", "--history"]);
    let record = &history[0];
    assert_eq!(record["outcome"], "ok", "{record}");
    assert_eq!(record["fresh_rows"], 45);
    assert_eq!(record["added_by_label"]["music"], 15);
    assert_eq!(record["cause"], "alert:ModelAccuracyLow");
    assert_eq!(record["alias_before"], 1);
    assert_eq!(record["alias_after"], 2, "{record}");
    assert_eq!(record["version"], 2, "{record}");
    assert_eq!(record["promoted"], true);
    assert_ne!(record["data_version_before"], record["data_version_after"]);
    assert!(
        record["stages_ran"].as_array().unwrap().len() >= 4,
        "{record}"
    );

    // On new domain-1 traffic the served model is now right more often.
    let fresh = domain_rows(1, 10, 100);
    let after = fresh
        .iter()
        .filter(|(text, label)| predict(text)["label"] == *label)
        .count() as f64
        / fresh.len() as f64;
    eprintln!(
        "live accuracy on domain 1: {before:.2} before, {after:.2} after; alert to v2 serving in {swap_seconds:.1} s"
    );
    assert!(after > before && after >= 0.9, "{before} -> {after}");

    // The registry version says why it exists; the data version says what came in.
    let v2 = taxon_json(d, &["registry", "show", "default:2"]);
    assert!(
        v2.to_string().contains("alert:ModelAccuracyLow"),
        "the version records its cause: {v2}"
    );
    // The version's training run says which trigger made it.
    let run_id = v2
        .pointer("/run_id")
        .or_else(|| v2.pointer("/version/run_id"))
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no run_id in {v2}"))
        .to_string();
    let run = taxon_json(d, &["runs", "show", &run_id]);
    assert!(
        run.to_string().contains("alert:ModelAccuracyLow")
            && run.to_string().contains("pipeline.stage"),
        "the run records its cause: {run}"
    );
    let versions = taxon_json(d, &["data", "versions", "raw"]);
    assert_eq!(versions.as_array().unwrap().len(), 2);

    // Guard rails: a second retraining inside the cool-down is refused, and recorded nowhere.
    let out = taxon(d)
        .args(["pipeline", "retrain", "--log", "log"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cool-down"));
    // Forced, but with no fresh label left: nothing changes.
    let again = taxon(d)
        .args(["--json", "pipeline", "retrain", "--log", "log", "--force"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(again["outcome"], "too_few_labels");
    let history = taxon_json(d, &["pipeline", "retrain", "--history"]);
    assert_eq!(history.as_array().unwrap().len(), 2);
}
