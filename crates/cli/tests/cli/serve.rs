//! `taxon serve`: the real binary on port 0, driven with a small std-only HTTP/1.1 client:
//! every endpoint answers, start errors exit 2 with a clear message, and SIGTERM drains an
//! in-flight request before exiting 0.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;
use predicates::prelude::PredicateBooleanExt;
use predicates::str::contains;
use serde_json::Value;

const SPORT: &str = "the striker scored a goal in the league match";
const BUSINESS: &str = "the bank said shares and profit rose on the market";

/// Trains a small two-label model (sport, business) into `dir/news`.
pub(crate) fn trained_model(dir: &Path) -> PathBuf {
    let data = dir.join("train.jsonl");
    let mut text = String::new();
    for i in 0..30 {
        for (label, t) in [("sport", SPORT), ("business", BUSINESS)] {
            let row = serde_json::json!({"text": format!("{t} {i}"), "label": label});
            text.push_str(&format!("{row}\n"));
        }
    }
    std::fs::write(&data, text).unwrap();
    let model = dir.join("news");
    Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(dir)
        .args(["-q", "train", "--data"])
        .arg(&data)
        .arg("--output")
        .arg(&model)
        .args(["--epochs", "5", "--threads", "1"])
        .assert()
        .success();
    model
}

/// A running `taxon serve`, killed on drop if still running.
pub(crate) struct Server {
    child: Child,
    pub(crate) port: u16,
    /// Stderr lines after the listening line.
    stderr: mpsc::Receiver<String>,
    /// Stdout, when captured.
    stdout_first_line: Option<String>,
}

impl Server {
    fn start(dir: &Path, model: &Path, extra: &[&str]) -> Server {
        let model = model.to_str().unwrap();
        Server::start_with(dir, extra, &["--model", model], &[])
    }

    /// `taxon EXTRA serve SERVE_ARGS --port 0 --threads 2` with `env` set.
    pub(crate) fn start_with(
        dir: &Path,
        extra: &[&str],
        serve_args: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut child = StdCommand::cargo_bin("taxon")
            .unwrap()
            .current_dir(dir)
            .env_remove("TAXON_LOG")
            .env_remove("TAXON_JWT_SECRET")
            .envs(env.iter().copied())
            .args(extra)
            .arg("serve")
            .args(serve_args)
            .args(["--port", "0", "--threads", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn taxon serve");
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut seen = Vec::new();
        let port = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|_| panic!("no listening line; stderr so far: {seen:#?}"));
            if let Some(url) = line.strip_prefix("listening on http://") {
                break url.rsplit(':').next().unwrap().parse().unwrap();
            }
            seen.push(line);
        };
        let stdout_first_line = extra.contains(&"--json").then(|| {
            let mut line = String::new();
            BufReader::new(child.stdout.as_mut().unwrap())
                .read_line(&mut line)
                .unwrap();
            line
        });
        Server {
            child,
            port,
            stderr: rx,
            stdout_first_line,
        }
    }

    pub(crate) fn request(&self, method: &str, path: &str, body: Option<&str>) -> Answer {
        self.request_with(method, path, body, "application/json", &[])
    }

    /// A request with this content type and extra header lines (`Name: value`).
    pub(crate) fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        content_type: &str,
        headers: &[String],
    ) -> Answer {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let body = body.unwrap_or("");
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        read_answer(&mut s)
    }

    pub(crate) fn sigterm(&self) {
        let ok = StdCommand::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits for the process to exit (fails after 60 s).
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "taxon serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Status, headers (lower-cased names) and body of one response.
pub(crate) struct Answer {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response on a `Connection: close` stream.
fn read_answer(s: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP head in {text:?}"));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

#[test]
fn serve_answers_every_endpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path());
    let mut server = Server::start(tmp.path(), &model, &["--json"]);
    let event: Value = serde_json::from_str(server.stdout_first_line.as_deref().unwrap()).unwrap();
    assert_eq!(event["event"], "listening");
    assert_eq!(event["url"], format!("http://127.0.0.1:{}", server.port));

    let a = server.request(
        "POST",
        "/v1/predict",
        Some(&format!(r#"{{"text": "{SPORT}"}}"#)),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let v = a.json();
    assert_eq!(v["label"], "sport");
    assert_eq!(v["model"]["name"], "news");
    assert_eq!(a.header("x-request-id"), v["request_id"].as_str());

    let body = serde_json::json!({"texts": [BUSINESS, SPORT]}).to_string();
    let v = server
        .request("POST", "/v1/predict/batch", Some(&body))
        .json();
    assert_eq!(v["predictions"][0]["label"], "business");
    assert_eq!(v["predictions"][1]["label"], "sport");

    let v = server.request("GET", "/v1/models", None).json();
    assert_eq!(v["models"][0]["model_type"], "linear");
    assert_eq!(server.request("GET", "/health", None).status, 200);
    assert_eq!(server.request("GET", "/ready", None).status, 200);
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(
        metrics.contains("taxon_requests_total{route=\"/v1/predict\",status=\"200\"} 1"),
        "{metrics}"
    );
    let v = server.request("GET", "/openapi.json", None).json();
    assert!(v["paths"]["/v1/predict"]["post"].is_object());
    let docs = server.request("GET", "/docs", None);
    assert!(
        docs.body.contains("<code>/v1/predict</code>"),
        "{}",
        docs.body
    );
    let a = server.request("GET", "/v0/nothing", None);
    assert_eq!(
        (a.status, a.json()["error_type"].clone()),
        (404, "not_found".into())
    );
    let a = server.request("POST", "/v1/predict", Some(r#"{"text": ""}"#));
    assert_eq!(a.status, 422);
    assert_eq!(
        a.json()["error"],
        "\"text\" is empty: send some text to classify"
    );

    server.sigterm();
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn sigterm_drains_an_in_flight_request_then_exits_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path());
    let mut server = Server::start(tmp.path(), &model, &[]);
    // A batch request whose body arrives in two halves, with SIGTERM in between.
    let body = serde_json::json!({"texts": [SPORT, BUSINESS, SPORT]}).to_string();
    let (first, second) = body.split_at(body.len() / 2);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /v1/predict/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{first}",
        body.len()
    )
    .unwrap();
    s.flush().unwrap();
    // Wait until the server is handling it: the in-flight gauge counts it and this scrape.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let metrics = server.request("GET", "/metrics", None).body;
        if metrics.contains("taxon_inflight_requests 2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "request never in flight:\n{metrics}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    server.sigterm();
    // The server is draining (it logs so) before the rest of the body arrives.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = server
            .stderr
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no drain log line");
        if line.contains("shutting down") {
            break;
        }
    }
    s.write_all(second.as_bytes()).unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.status, 200, "{}", a.body);
    let labels: Vec<Value> = a.json()["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].clone())
        .collect();
    assert_eq!(labels, ["sport", "business", "sport"]);
    assert_eq!(server.wait_exit().code(), Some(0));
}

#[test]
fn start_errors_exit_2_and_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    let taxon = || {
        let mut c = Command::cargo_bin("taxon").unwrap();
        c.current_dir(tmp.path());
        c
    };
    // Not a model folder.
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    taxon()
        .args(["serve", "--model", "empty", "--port", "0"])
        .assert()
        .code(2)
        .stderr(contains("no model.json"));
    // A model.json with a bad field: the error names the file and the field.
    let model = trained_model(tmp.path());
    let path = model.join("model.json");
    let mut desc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    desc["format_version"] = 99.into();
    std::fs::write(&path, desc.to_string()).unwrap();
    taxon()
        .args(["serve", "--model", "news", "--port", "0"])
        .assert()
        .code(2)
        .stderr(contains("model.json"))
        .stderr(contains("format_version"));
    // A public address without --insecure.
    taxon()
        .args(["serve", "--model", "news", "--host", "0.0.0.0"])
        .assert()
        .code(2)
        .stderr(contains("without authentication"));
    // An alias that the registry does not have.
    taxon()
        .args(["serve", "--alias", "production"])
        .assert()
        .code(2)
        .stderr(contains("production"));
    // A signing secret under 32 bytes.
    taxon()
        .env("TAXON_JWT_SECRET", "short-secret")
        .args(["serve", "--model", "news", "--port", "0"])
        .assert()
        .code(2)
        .stderr(contains("32"))
        .stderr(contains("short-secret").not());
    // --model and --alias exclude each other.
    taxon()
        .args(["serve", "--model", "news", "--alias", "production"])
        .assert()
        .failure()
        .stderr(contains("cannot be used with"));
}

/// `taxon ARGS` in `dir`, asserting success; stdout.
pub(crate) fn taxon_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let out = Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(dir)
        .env("TAXON_USER", "ci")
        .env_remove("TAXON_REGISTRY_DB")
        .env_remove("TAXON_REGISTRY_ARTIFACTS")
        .envs(env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "taxon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Polls `cond` every 50 ms for up to 30 s.
pub(crate) fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_follows_a_registry_alias_and_moves_it_through_the_admin_api() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    trained_model(dir);
    taxon_ok(dir, &["registry", "register", "latest"], &[]);
    // A second version: the same data, trained again into another folder.
    std::fs::rename(dir.join("news"), dir.join("news-v1")).unwrap();
    trained_model(dir);
    taxon_ok(dir, &["registry", "register", "latest"], &[]);
    taxon_ok(dir, &["registry", "alias", "set", "production", "1"], &[]);

    let server = Server::start_with(
        dir,
        &[],
        &["--alias", "production", "--poll-interval", "0.2"],
        &[],
    );
    let predict = r#"{"text": "the striker scored a goal"}"#;
    let answer = server.request("POST", "/v1/predict", Some(predict));
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.json()["model"]["name"], "default");
    assert_eq!(answer.json()["model"]["version"], "v1");

    // Through the admin API: the registry records it, the server swaps before answering.
    let moved = server.request(
        "PUT",
        "/v1/admin/aliases/production",
        Some(r#"{"version": 2, "force": true}"#),
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    let moved = moved.json();
    assert_eq!(moved["change"]["from_version"], 1);
    assert_eq!(moved["change"]["to_version"], 2);
    assert_eq!(moved["reload"]["swapped"], true);
    assert_eq!(moved["reload"]["current"]["version"], "v2");
    let answer = server.request("POST", "/v1/predict", Some(predict));
    assert_eq!(answer.json()["model"]["version"], "v2");
    let history: Value = serde_json::from_str(&taxon_ok(
        dir,
        &["--json", "registry", "history", "--alias", "production"],
        &[],
    ))
    .unwrap();
    let text = history.to_string();
    assert!(text.contains("anonymous (auth off)"), "{text}");

    // Bad alias requests are 4xx JSON, and nothing moves.
    let unknown = server.request(
        "PUT",
        "/v1/admin/aliases/production",
        Some(r#"{"version": 9}"#),
    );
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    let wrong = server.request(
        "PUT",
        "/v1/admin/aliases/production",
        Some(r#"{"version": "two"}"#),
    );
    assert_eq!(wrong.status, 422, "{}", wrong.body);
    assert!(wrong.json()["error"].as_str().unwrap().contains("version"));

    // Through the CLI: the poller sees the move and swaps back.
    taxon_ok(
        dir,
        &["registry", "alias", "set", "production", "1", "--force"],
        &[],
    );
    eventually("the poller to serve v1 again", || {
        server.request("POST", "/v1/predict", Some(predict)).json()["model"]["version"] == "v1"
    });
}

#[test]
fn auth_guards_predictions_and_admin_with_scoped_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let model = trained_model(dir);
    let password = "correct horse battery";
    let pw = [("TAXON_PASSWORD", password)];
    taxon_ok(dir, &["users", "add", "alice"], &pw);
    taxon_ok(
        dir,
        &[
            "users", "add", "root", "--scope", "predict", "--scope", "admin",
        ],
        &pw,
    );
    let secret = "0123456789abcdef0123456789abcdef-secret";
    let server = Server::start_with(
        dir,
        &[],
        &["--model", model.to_str().unwrap()],
        &[("TAXON_JWT_SECRET", secret)],
    );
    let predict = r#"{"text": "the striker scored a goal"}"#;

    // Public routes stay open; predictions need a token.
    assert_eq!(server.request("GET", "/health", None).status, 200);
    assert_eq!(server.request("GET", "/ready", None).status, 200);
    let denied = server.request("POST", "/v1/predict", Some(predict));
    assert_eq!(denied.status, 401, "{}", denied.body);
    assert!(
        denied
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let garbage = server.request_with(
        "POST",
        "/v1/predict",
        Some(predict),
        "application/json",
        &["Authorization: Bearer not.a.token".into()],
    );
    assert_eq!(garbage.status, 401);
    assert!(
        garbage
            .header("www-authenticate")
            .unwrap()
            .contains("invalid_token")
    );

    let token = |user: &str, pass: &str| {
        server.request_with(
            "POST",
            "/token",
            Some(&format!(
                "grant_type=password&username={user}&password={}",
                pass.replace(' ', "+")
            )),
            "application/x-www-form-urlencoded",
            &[],
        )
    };
    let bad = token("alice", "wrong password");
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"], "invalid_grant");
    let alice = token("alice", password);
    assert_eq!(alice.status, 200, "{}", alice.body);
    assert_eq!(alice.json()["token_type"], "bearer");
    assert_eq!(alice.json()["expires_in"], 1800);
    let alice = format!(
        "Authorization: Bearer {}",
        alice.json()["access_token"].as_str().unwrap()
    );
    let root = token("root", password);
    let root = format!(
        "Authorization: Bearer {}",
        root.json()["access_token"].as_str().unwrap()
    );

    let ok = server.request_with(
        "POST",
        "/v1/predict",
        Some(predict),
        "application/json",
        std::slice::from_ref(&alice),
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["label"], "sport");
    // alice has `predict` only: admin is forbidden; root has both.
    let forbidden = server.request_with(
        "POST",
        "/v1/admin/reload",
        None,
        "application/json",
        &[alice],
    );
    assert_eq!(forbidden.status, 403, "{}", forbidden.body);
    assert!(
        forbidden
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    let reload = server.request_with(
        "POST",
        "/v1/admin/reload",
        None,
        "application/json",
        &[root],
    );
    assert_eq!(reload.status, 200, "{}", reload.body);

    // A sixth try for one name from one address is refused, and counted as a security metric.
    for _ in 0..5 {
        assert_eq!(token("mallory", "guess guess").status, 400);
    }
    assert_eq!(token("mallory", "guess guess").status, 429);
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(
        metrics.contains("taxon_login_limited_total{limit=\"user_client\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("taxon_requests_total{route=\"/token\",status=\"429\"} 1"),
        "{metrics}"
    );

    // Nothing secret reached the log.
    server.sigterm();
    let mut server = server;
    assert_eq!(server.wait_exit().code(), Some(0));
    let log: Vec<String> = server.stderr.try_iter().collect();
    let log = log.join("\n");
    assert!(!log.contains(password), "{log}");
    assert!(!log.contains(secret), "{log}");
}

/// Lines in the prediction log files of `dir`.
fn log_lines(dir: &Path) -> Vec<Value> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            text.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<Value>>()
        })
        .collect()
}

#[test]
fn prediction_log_feedback_export_and_drift_from_the_log_survive_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path());
    let log = tmp.path().join("log");
    let log_arg = log.to_str().unwrap();
    let mut server = Server::start_with(
        tmp.path(),
        &[],
        &[
            "--model",
            model.to_str().unwrap(),
            "--prediction-log",
            log_arg,
            "--prediction-log-text",
            "--cache-size",
            "0",
        ],
        &[],
    );
    let mut ids = Vec::new();
    for (i, text) in [SPORT, BUSINESS, SPORT, BUSINESS].iter().enumerate() {
        let a = server.request(
            "POST",
            "/v1/predict",
            Some(&serde_json::json!({"text": format!("{text} {i}")}).to_string()),
        );
        assert_eq!(a.status, 200, "{}", a.body);
        ids.push(a.json()["request_id"].as_str().unwrap().to_string());
    }
    // True labels for three of them, one of which the model got wrong on purpose.
    for (id, label) in [
        (&ids[0], "sport"),
        (&ids[1], "business"),
        (&ids[2], "business"),
    ] {
        let a = server.request(
            "POST",
            "/v1/feedback",
            Some(&serde_json::json!({"request_id": id, "label": label}).to_string()),
        );
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let a = server.request(
        "POST",
        "/v1/feedback",
        Some(r#"{"request_id": "nope", "label": "sport"}"#),
    );
    assert_eq!(
        (a.status, a.json()["error_type"].as_str()),
        (404, Some("unknown_request"))
    );
    let metrics = server.request("GET", "/metrics", None).body;
    assert!(
        metrics.contains("model_accuracy{model_version="),
        "{metrics}"
    );
    // Every record reaches the file (flushed when the writer is idle), then SIGKILL.
    eventually("4 predictions and 3 feedback in the log", || {
        log_lines(&log).len() == 7
    });
    let ok = StdCommand::new("kill")
        .args(["-KILL", &server.child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    assert!(!server.wait_exit().success());
    let out = taxon_ok(
        tmp.path(),
        &[
            "--json",
            "monitor",
            "export",
            log_arg,
            "--labelled",
            "-o",
            "new.jsonl",
        ],
        &[],
    );
    let summary: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["rows"], 3);
    let rows: Vec<Value> = std::fs::read_to_string(tmp.path().join("new.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        rows[0],
        serde_json::json!({"text": format!("{SPORT} 0"), "label": "sport"})
    );
    assert_eq!(
        rows[2],
        serde_json::json!({"text": format!("{SPORT} 2"), "label": "business"})
    );
    // Drift from the log itself: 4 logged predictions against the model's profile.
    let out = Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(tmp.path())
        .args([
            "--json",
            "monitor",
            "drift",
            "--reference",
            model.to_str().unwrap(),
            "--current",
            log_arg,
        ])
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["rows"], 4);
}

#[test]
fn logged_texts_are_encrypted_with_the_data_key_and_exported_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path());
    let log = tmp.path().join("log");
    let log_arg = log.to_str().unwrap();
    taxon_ok(tmp.path(), &["data", "keygen", "-o", "log.key"], &[]);
    // Without a key the server refuses to start: no plain text is ever written.
    let out = Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(tmp.path())
        .env_remove("TAXON_FERNET_KEY")
        .args([
            "serve",
            "--model",
            model.to_str().unwrap(),
            "--port",
            "0",
            "--prediction-log",
            log_arg,
            "--prediction-log-text",
            "--prediction-log-encrypt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("TAXON_FERNET_KEY"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut server = Server::start_with(
        tmp.path(),
        &[],
        &[
            "--model",
            model.to_str().unwrap(),
            "--prediction-log",
            log_arg,
            "--prediction-log-text",
            "--prediction-log-encrypt",
            "--prediction-log-key-file",
            "log.key",
            "--cache-size",
            "0",
        ],
        &[],
    );
    let a = server.request(
        "POST",
        "/v1/predict",
        Some(&serde_json::json!({"text": format!("{SPORT} secret")}).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let id = a.json()["request_id"].as_str().unwrap().to_string();
    let a = server.request(
        "POST",
        "/v1/feedback",
        Some(&serde_json::json!({"request_id": id, "label": "sport"}).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
    eventually("1 prediction and 1 feedback in the log", || {
        log_lines(&log).len() == 2
    });
    server.sigterm();
    assert!(server.wait_exit().success());
    let raw = serde_json::to_string(&log_lines(&log)).unwrap();
    assert!(!raw.contains("secret"), "{raw}");
    assert!(raw.contains("\"text_fernet\":\"gAAAAA"), "{raw}");
    let export = [
        "monitor",
        "export",
        log_arg,
        "--labelled",
        "-o",
        "new.jsonl",
    ];
    // No key: a clear error; another key: refused, nothing written.
    let out = Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(tmp.path())
        .env_remove("TAXON_FERNET_KEY")
        .args(export)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("encrypted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    taxon_ok(tmp.path(), &["data", "keygen", "-o", "other.key"], &[]);
    let out = Command::cargo_bin("taxon")
        .unwrap()
        .current_dir(tmp.path())
        .args(export)
        .args(["--key-file", "other.key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("wrong key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!tmp.path().join("new.jsonl").exists());
    let mut args = export.to_vec();
    args.extend(["--key-file", "log.key"]);
    taxon_ok(tmp.path(), &args, &[]);
    let rows = std::fs::read_to_string(tmp.path().join("new.jsonl")).unwrap();
    assert_eq!(
        rows.trim(),
        serde_json::json!({"text": format!("{SPORT} secret"), "label": "sport"}).to_string()
    );
}

/// `promtool` on PATH; otherwise a skip notice (or a panic under `TAXON_REQUIRE_TOOLS=1`).
fn find_promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("promtool"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
            panic!("promtool not found (TAXON_REQUIRE_TOOLS=1): scripts/setup-tools.sh");
        }
        eprintln!("skipping: promtool not found");
    }
    found
}

#[test]
fn promtool_accepts_metrics_with_the_seeds_names() {
    let Some(promtool) = find_promtool() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let model = trained_model(tmp.path());
    let server = Server::start_with(
        tmp.path(),
        &[],
        &["--model", model.to_str().unwrap(), "--cache-size", "0"],
        &[],
    );
    let a = server.request(
        "POST",
        "/v1/predict",
        Some(&serde_json::json!({"text": SPORT}).to_string()),
    );
    let id = a.json()["request_id"].as_str().unwrap().to_string();
    server.request(
        "POST",
        "/v1/predict/batch",
        Some(&serde_json::json!({"texts": [SPORT, BUSINESS]}).to_string()),
    );
    server.request(
        "POST",
        "/v1/feedback",
        Some(&serde_json::json!({"request_id": id, "label": "sport"}).to_string()),
    );
    let metrics = server.request("GET", "/metrics", None).body;
    for name in [
        "prediction_latency_seconds_count 3",
        "predictions_total{model_version=",
        "result=\"sport\"",
        "model_accuracy{model_version=",
        "taxon_drift_score{feature=\"confidence\"",
        "taxon_drift_detected{model_version=",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let mut child = StdCommand::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}\n{metrics}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
