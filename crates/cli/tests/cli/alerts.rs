//! `taxon serve --alerts` end to end: a real server with auth on, requests without a token
//! push `taxon_auth_failures_total` past a rule's threshold, the webhook sink (a std-only
//! HTTP server on 127.0.0.1:0) receives the firing then the resolved notice, and
//! `taxon alerts list` shows the alert with each channel's outcome; `taxon alerts test`
//! reports per channel; a bad config stops the server at start with exit 2.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;

use crate::serve::{Server, eventually, taxon_ok, trained_model};

/// An HTTP endpoint that keeps every JSON body POSTed to it; stops on drop.
struct Sink {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (Arc::clone(&bodies), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        stream
                            .set_read_timeout(Some(Duration::from_secs(10)))
                            .unwrap();
                        if let Some(body) = read_post(stream) {
                            b.lock().unwrap().push(body);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Sink {
            url,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (head and Content-Length body), answers 200 and closes.
fn read_post(stream: std::net::TcpStream) -> Option<Value> {
    let mut reader = BufReader::new(stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let mut stream = reader.into_inner();
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    serde_json::from_slice(&body).ok()
}

const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";

fn write_config(dir: &Path, channels: &str) -> std::path::PathBuf {
    let path = dir.join("alerts.yaml");
    std::fs::write(
        &path,
        format!(
            "channels:\n{channels}\nrules:\n  - name: brute-force\n    condition: auth_failures_above\n    threshold: 5\n    for: 1s\n    severity: critical\n    channels: [hook]\n    summary: someone is guessing tokens\nsettings:\n  evaluate_every: 300ms\n  retry_initial: 100ms\n  retry: 500ms\n  db: {}\n",
            dir.join("alerts.db").display()
        ),
    )
    .unwrap();
    path
}

#[test]
fn auth_failures_fire_then_resolve_an_alert_that_the_webhook_and_the_history_see() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = trained_model(dir);
    let sink = Sink::start();
    let config = write_config(
        dir,
        &format!("  hook:\n    type: webhook\n    url: {}", sink.url),
    );
    let mut server = Server::start_with(
        dir,
        &[],
        &[
            "--model",
            model.to_str().unwrap(),
            "--alerts",
            config.to_str().unwrap(),
        ],
        &[("TAXON_JWT_SECRET", SECRET)],
    );
    let predict = r#"{"text": "the striker scored a goal"}"#;
    // Requests without a token, for longer than the rule's `for`, until it fires.
    let start = Instant::now();
    while sink.bodies().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no firing notice after 30 s of failures"
        );
        let a = server.request("POST", "/v1/predict", Some(predict));
        assert_eq!(a.status, 401);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "fired before the condition held for 1 s"
    );
    let firing = &sink.bodies()[0];
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(firing["alert"], "brute-force");
    assert_eq!(firing["severity"], "critical");
    assert_eq!(firing["summary"], "someone is guessing tokens");
    assert_eq!(firing["threshold"], 5.0);
    assert!(firing["value"].as_f64().unwrap() > 5.0, "{firing}");
    assert_eq!(firing["labels"]["model"], "news");
    let version = firing["model_version"].as_str().unwrap().to_string();
    // Still failing (so still firing), the gauge says so.
    eventually("the firing gauge", || {
        server.request("POST", "/v1/predict", Some(predict));
        server
            .request("GET", "/metrics", None)
            .body
            .contains("taxon_alerts_firing{rule=\"brute-force\",severity=\"critical\"} 1")
    });
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(
        metrics.contains("taxon_auth_failures_total{reason=\"missing_token\"}"),
        "{metrics}"
    );

    // No more failures: resolved.
    eventually("the resolved notice", || sink.bodies().len() >= 2);
    let resolved = &sink.bodies()[1];
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    assert_eq!(resolved["model_version"], version.as_str());
    assert!(resolved["resolved_at"].is_string());
    eventually("both notices counted", || {
        server
            .request("GET", "/metrics", None)
            .body
            .contains("taxon_alert_notices_total{channel=\"hook\",result=\"sent\"} 2")
    });
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(
        metrics.contains("taxon_alerts_firing{rule=\"brute-force\",severity=\"critical\"} 0"),
        "{metrics}"
    );

    let db = dir.join("alerts.db");
    let listed: Value = serde_json::from_str(&taxon_ok(
        dir,
        &["--json", "alerts", "list", "--db", db.to_str().unwrap()],
        &[],
    ))
    .unwrap();
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 1, "{listed}");
    let row = &rows[0];
    assert_eq!(row["rule"], "brute-force");
    assert_eq!(row["condition"], "auth_failures_above");
    assert_eq!(row["model_version"], version.as_str());
    assert_eq!(row["ended"], "resolved");
    let outcomes: Vec<(String, String)> = row["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap().to_string(),
                d["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            ("firing".to_string(), "sent".to_string()),
            ("resolved".to_string(), "sent".to_string())
        ]
    );
    let firing_only: Value = serde_json::from_str(&taxon_ok(
        dir,
        &[
            "--json",
            "alerts",
            "list",
            "--firing",
            "--db",
            db.to_str().unwrap(),
        ],
        &[],
    ))
    .unwrap();
    assert_eq!(firing_only, serde_json::json!([]));
    let table = taxon_ok(dir, &["alerts", "list", "--db", db.to_str().unwrap()], &[]);
    assert!(
        table.contains("brute-force") && table.contains("firing hook: sent"),
        "{table}"
    );
    // The engine does not hold up a graceful stop.
    server.sigterm();
    assert!(server.wait_exit().success());
}

#[test]
fn alerts_test_reports_each_channel_and_fails_when_one_refuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let sink = Sink::start();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let config = write_config(
        dir,
        &format!(
            "  hook:\n    type: webhook\n    url: {}\n  chat:\n    type: slack\n    url_env: TEST_SLACK_URL\n  gone:\n    type: webhook\n    url: {dead}",
            sink.url
        ),
    );
    let out = Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(dir)
        .env("TEST_SLACK_URL", &sink.url)
        .args(["--json", "alerts", "test", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let by_name = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == n)
            .unwrap_or_else(|| panic!("{n} missing from {v}"))
            .clone()
    };
    assert_eq!(by_name("hook")["accepted"], true);
    assert_eq!(by_name("chat")["accepted"], true);
    assert_eq!(by_name("chat")["type"], "slack");
    let gone = by_name("gone");
    assert_eq!(gone["accepted"], false);
    assert!(
        gone["error"].as_str().unwrap().contains("connect"),
        "{gone}"
    );
    let bodies = sink.bodies();
    assert_eq!(bodies.len(), 2);
    assert!(bodies.iter().any(|b| b["alert"] == "taxon-alerts-test"));
    assert!(bodies.iter().any(|b| b["blocks"].is_array()));

    // Without the unreachable channel: exit 0.
    let config = write_config(
        dir,
        &format!("  hook:\n    type: webhook\n    url: {}", sink.url),
    );
    Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(dir)
        .args(["alerts", "test", "--config"])
        .arg(&config)
        .assert()
        .success()
        .stdout(contains("hook").and(contains("accepted")));
}

#[test]
fn a_bad_alerts_config_stops_serve_at_start_with_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = write_config(
        dir,
        "  hook:\n    type: webhook\n    url_env: TAXON_TEST_UNSET_HOOK",
    );
    // The config is read before the model: no model is needed to see the error.
    Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(dir)
        .env_remove("TAXON_TEST_UNSET_HOOK")
        .args([
            "serve",
            "--model",
            "missing-model",
            "--port",
            "0",
            "--alerts",
        ])
        .arg(&config)
        .assert()
        .code(2)
        .stderr(
            contains("alerts.yaml")
                .and(contains("channels.hook.url_env"))
                .and(contains("TAXON_TEST_UNSET_HOOK")),
        );
    std::fs::write(
        dir.join("typo.yaml"),
        "rules:\n  - name: x\n    conditon: drift\n",
    )
    .unwrap();
    Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(dir)
        .args([
            "serve",
            "--model",
            "missing-model",
            "--port",
            "0",
            "--alerts",
            "typo.yaml",
        ])
        .assert()
        .code(2)
        .stderr(contains("typo.yaml").and(contains("conditon")));
}

#[test]
fn alerts_help_describes_each_subcommand() {
    for (args, needle) in [
        (vec!["alerts", "--help"], "list"),
        (vec!["alerts", "list", "--help"], "--firing"),
        (vec!["alerts", "test", "--help"], "--config"),
    ] {
        Command::cargo_bin("taxon")
            .unwrap()
            .args(&args)
            .assert()
            .success()
            .stdout(contains(needle));
    }
}

/// `POST /v1/predict` of `text`; the request id.
fn predict(server: &Server, text: &str) -> String {
    let a = server.request(
        "POST",
        "/v1/predict",
        Some(&serde_json::json!({ "text": text }).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()["request_id"].as_str().unwrap().to_string()
}

fn feedback(server: &Server, id: &str, label: &str) {
    let a = server.request(
        "POST",
        "/v1/feedback",
        Some(&serde_json::json!({"request_id": id, "label": label}).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
}

#[test]
fn live_accuracy_from_feedback_fires_and_resolves_an_accuracy_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = trained_model(dir);
    let sink = Sink::start();
    let config = dir.join("alerts.yaml");
    std::fs::write(
        &config,
        format!(
            "channels:\n  hook: {{type: webhook, url: '{}'}}\nrules:\n  - name: accuracy-drop\n    condition: accuracy_below\n    threshold: 0.5\n    severity: warning\n    channels: [hook]\nsettings:\n  evaluate_every: 200ms\n  db: {}\n",
            sink.url,
            dir.join("alerts.db").display()
        ),
    )
    .unwrap();
    let server = Server::start_with(
        dir,
        &[],
        &[
            "--model",
            model.to_str().unwrap(),
            "--alerts",
            config.to_str().unwrap(),
            "--feedback-window",
            "2",
            "--cache-size",
            "0",
        ],
        &[],
    );
    // Two predictions the feedback says were wrong: live accuracy 0.
    for i in 0..2 {
        let id = predict(
            &server,
            &format!("the striker scored a goal in the league match {i}"),
        );
        feedback(&server, &id, "business");
    }
    eventually("the firing notice", || !sink.bodies().is_empty());
    let firing = &sink.bodies()[0];
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(firing["alert"], "accuracy-drop");
    assert_eq!(firing["value"], 0.0);
    assert!(
        firing["description"]
            .as_str()
            .unwrap()
            .contains("live accuracy from feedback is 0.000"),
        "{firing}"
    );
    // Two right ones fill the window of 2: accuracy 1, resolved.
    for i in 0..2 {
        let id = predict(
            &server,
            &format!("the bank said shares and profit rose on the market {i}"),
        );
        feedback(&server, &id, "business");
    }
    eventually("the resolved notice", || sink.bodies().len() >= 2);
    let resolved = &sink.bodies()[1];
    assert_eq!(resolved["status"], "resolved", "{resolved}");
    // 0.5 when an evaluation fell between the two (not below 0.5 either), else 1.
    assert!(resolved["value"].as_f64().unwrap() >= 0.5, "{resolved}");
    assert_eq!(
        sink.bodies().len(),
        2,
        "one firing, one resolved: {:?}",
        sink.bodies()
    );
}

/// The venv's python when it can import aiosmtpd; a skip notice (or a panic under
/// `TAXON_REQUIRE_TOOLS=1`) otherwise.
fn aiosmtpd_python() -> Option<std::path::PathBuf> {
    let python = crate::common::tools::venv().join("bin/python");
    let ok = std::process::Command::new(&python)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!(
            "aiosmtpd not importable by {} (TAXON_REQUIRE_TOOLS=1): scripts/setup-tools.sh",
            python.display()
        );
    }
    eprintln!("SKIPPED: aiosmtpd not importable by {}", python.display());
    None
}

#[test]
fn alerts_test_sends_a_mail_through_a_real_smtp_server() {
    let Some(python) = aiosmtpd_python() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let port = crate::common::tools::free_port();
    let maildir = dir.join("maildir");
    let _smtp = crate::common::service::Service::spawn(
        "aiosmtpd",
        std::process::Command::new(&python)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    );
    eventually("aiosmtpd listening", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let config = write_config(
        dir,
        &format!(
            "  hook:\n    type: email\n    smtp_host: 127.0.0.1\n    smtp_port: {port}\n    tls: none\n    from: taxon@example.org\n    to: [oncall@example.org]"
        ),
    );
    let out = taxon_ok(
        dir,
        &[
            "--json",
            "alerts",
            "test",
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["type"], "email");
    assert_eq!(v[0]["accepted"], true, "{v}");
    let mails: Vec<String> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(mails.len(), 1);
    // lettre encodes only the non-ASCII words of a subject (the dash), so these stay readable.
    assert!(
        mails[0].contains("Subject: [taxon] FIRING info: taxon-alerts-test"),
        "{}",
        mails[0]
    );
    assert!(mails[0].contains("oncall@example.org"), "{}", mails[0]);
}
