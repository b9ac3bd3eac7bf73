//! Three `taxon serve --alias production` replicas sharing state, as on Kubernetes: one
//! PostgreSQL database holds the registry, the users and the runs (`TAXON_*_DB=postgres://...`),
//! one S3 bucket (moto) the model files, and each replica runs in its own folder (its own model
//! cache, like its own pod). Under a light, bounded load from client threads:
//! - moving the alias with the CLI makes every replica serve the new version within its poll
//!   interval (plus the download and load of the model), with no failed request;
//! - a user added with the CLI can log in on every replica at once; once removed, their token is
//!   refused by every replica within the revocation refresh (10 s), and so is their login;
//! - concurrent `alias set`s from separate CLI processes each leave their history row.
//!
//! Needs a PostgreSQL test server (`TAXON_TEST_POSTGRES_URL`, which scripts/test.sh sets) and
//! moto_server; without them the test prints a skip notice, or fails under
//! `TAXON_REQUIRE_TOOLS=1`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::tools::Moto;
use crate::serve::{Server, taxon_ok};

const PREDICT: &str = r#"{"text": "the striker scored a goal"}"#;
const SECRET: &str = "0123456789abcdef0123456789abcdef-scale-out";
const POLL_SECONDS: f64 = 1.0;
/// The revocation refresh of `taxon serve` (taxon_auth's default).
const REVOCATION_REFRESH: Duration = Duration::from_secs(10);

/// One request on a fresh connection: status and body.
fn call(port: u16, method: &str, path: &str, body: &str, headers: &[String]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let content_type = if path == "/token" {
        "application/x-www-form-urlencoded"
    } else {
        "application/json"
    };
    let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, body.to_string())
}

/// `POST /token` for `user`: the status and, on success, the `Authorization` header line.
fn login(port: u16, user: &str, password: &str) -> (u16, Option<String>) {
    let form = format!(
        "grant_type=password&username={user}&password={}",
        password.replace(' ', "+")
    );
    let (status, body) = call(port, "POST", "/token", &form, &[]);
    let header = (status == 200).then(|| {
        let v: Value = serde_json::from_str(&body).unwrap();
        format!(
            "Authorization: Bearer {}",
            v["access_token"].as_str().unwrap()
        )
    });
    (status, header)
}

/// The served version (`v1`) of a successful prediction, or the failure.
fn predict(port: u16, auth: &str) -> Result<String, String> {
    let (status, body) = call(port, "POST", "/v1/predict", PREDICT, &[auth.to_string()]);
    if status != 200 {
        return Err(format!("HTTP {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    Ok(v["model"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Trains the two-label model into `dir/news` (a run in the shared run store).
fn train(dir: &Path, env: &[(&str, &str)]) {
    let data = dir.join("train.jsonl");
    let mut text = String::new();
    for i in 0..30 {
        for (label, t) in [
            ("sport", "the striker scored a goal in the league match"),
            (
                "business",
                "the bank said shares and profit rose on the market",
            ),
        ] {
            text.push_str(&format!(
                "{}\n",
                serde_json::json!({"text": format!("{t} {i}"), "label": label})
            ));
        }
    }
    std::fs::write(&data, text).unwrap();
    let _ = std::fs::remove_dir_all(dir.join("news"));
    taxon_ok(
        dir,
        &[
            "-q",
            "train",
            "--data",
            "train.jsonl",
            "--output",
            "news",
            "--epochs",
            "5",
            "--threads",
            "1",
        ],
        env,
    );
}

/// What the load threads saw: the number of successes, each change of the version a replica
/// served (replica, new version, when), and every failure.
#[derive(Default)]
struct Seen {
    ok: usize,
    last: [Option<String>; 3],
    first: Vec<(usize, String, Instant)>,
    failures: Vec<String>,
}

#[test]
fn three_replicas_share_the_registry_users_and_runs_on_postgres_and_s3() {
    let Some(pg) = taxon_db::testing::postgres("scale_out") else {
        return;
    };
    let Some(moto) = Moto::start() else { return };
    moto.create_bucket("models");
    let endpoint = moto.endpoint();
    let env = [
        ("TAXON_REGISTRY_DB", pg.url.as_str()),
        ("TAXON_USERS_DB", pg.url.as_str()),
        ("TAXON_RUNS_DB", pg.url.as_str()),
        ("TAXON_REGISTRY_ARTIFACTS", "s3://models/registry"),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("TAXON_JWT_SECRET", SECRET),
    ];

    // The operator's machine: two versions, production on v1, one user.
    let ops = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        train(ops.path(), &env);
        taxon_ok(ops.path(), &["registry", "register", "latest"], &env);
    }
    let alias_set = |alias: &str, version: &str| {
        taxon_ok(
            ops.path(),
            &["registry", "alias", "set", alias, version, "--force"],
            &env,
        )
    };
    alias_set("production", "1");
    let password = "correct horse battery";
    let mut with_pw = env.to_vec();
    with_pw.push(("TAXON_PASSWORD", password));
    taxon_ok(
        ops.path(),
        &[
            "users", "add", "alice", "--scope", "predict", "--scope", "admin",
        ],
        &with_pw,
    );

    // Three replicas, each in a folder of its own.
    let homes: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let poll = POLL_SECONDS.to_string();
    let servers: Vec<Server> = homes
        .iter()
        .map(|h| {
            Server::start_with(
                h.path(),
                &[],
                &["--alias", "production", "--poll-interval", &poll],
                &env,
            )
        })
        .collect();
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let (status, alice) = login(ports[0], "alice", password);
    assert_eq!(status, 200);
    let alice = alice.unwrap();
    for &port in &ports {
        assert_eq!(predict(port, &alice).as_deref(), Ok("v1"));
    }

    // Light, bounded load: three client threads, each one request at a time to the replicas
    // in turn, 10 ms apart.
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let load: Vec<_> = (0..3)
        .map(|t| {
            let (stop, seen, ports, alice) =
                (stop.clone(), seen.clone(), ports.clone(), alice.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let r = i % ports.len();
                    let answer = predict(ports[r], &alice);
                    let mut seen = seen.lock().unwrap();
                    match answer {
                        Ok(v) => {
                            seen.ok += 1;
                            if seen.last[r].as_ref() != Some(&v) {
                                seen.last[r] = Some(v.clone());
                                seen.first.push((r, v, Instant::now()));
                            }
                        }
                        Err(e) => seen.failures.push(format!("replica {r}: {e}")),
                    }
                    drop(seen);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
        })
        .collect();

    // Move the alias with the CLI: every replica serves v2 within the poll interval, plus the
    // time to fetch the model from S3 and load it.
    let bound = Duration::from_secs_f64(POLL_SECONDS) + Duration::from_secs(5);
    let all_serve = |version: &str, moved: Instant| {
        let deadline = moved + bound + Duration::from_secs(10);
        let lags = loop {
            let lags: Vec<Option<Duration>> = (0..3)
                .map(|r| {
                    let seen = seen.lock().unwrap();
                    seen.first
                        .iter()
                        .filter(|(s, v, at)| *s == r && v == version && *at >= moved)
                        .map(|(_, _, at)| at.duration_since(moved))
                        .next()
                })
                .collect();
            if lags.iter().all(Option::is_some) || Instant::now() > deadline {
                break lags;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        eprintln!(
            "scale-out: replicas serving {version} after {lags:?} (poll interval {POLL_SECONDS} s)"
        );
        for (r, lag) in lags.iter().enumerate() {
            let lag = lag.unwrap_or_else(|| panic!("replica {r} never served {version}"));
            assert!(
                lag <= bound,
                "replica {r} served {version} only after {lag:?}"
            );
        }
    };
    std::thread::sleep(Duration::from_millis(500));
    alias_set("production", "2");
    all_serve("v2", Instant::now());

    // Move it back through one replica's admin API: the other two follow.
    std::thread::sleep(Duration::from_millis(500));
    let moved = Instant::now();
    let (status, body) = call(
        ports[2],
        "PUT",
        "/v1/admin/aliases/production",
        r#"{"version": 1, "force": true}"#,
        std::slice::from_ref(&alice),
    );
    assert_eq!(status, 200, "{body}");
    all_serve("v1", moved);

    // A user added on the operator's machine logs in on every replica at once.
    let bob_pw = "bob's long password";
    let mut bob_env = env.to_vec();
    bob_env.push(("TAXON_PASSWORD", bob_pw));
    taxon_ok(ops.path(), &["users", "add", "bob"], &bob_env);
    let bob: Vec<String> = ports
        .iter()
        .map(|&p| {
            let (status, header) = login(p, "bob", bob_pw);
            assert_eq!(status, 200, "bob's login on port {p}");
            header.unwrap()
        })
        .collect();
    for (r, &port) in ports.iter().enumerate() {
        assert_eq!(predict(port, &bob[r]).as_deref(), Ok("v1"));
    }
    // Removed: every replica refuses the token within the revocation refresh (checked before
    // any login, since a `/token` call re-reads the revocations at once), then the login.
    taxon_ok(ops.path(), &["users", "remove", "bob"], &env);
    let removed = Instant::now();
    let mut refused = [None; 3];
    while refused.iter().any(Option::is_none) {
        assert!(
            removed.elapsed() < REVOCATION_REFRESH + Duration::from_secs(5),
            "bob's tokens still accepted after {:?}: {refused:?}",
            removed.elapsed()
        );
        for (r, &port) in ports.iter().enumerate() {
            if refused[r].is_none()
                && predict(port, &bob[r]).is_err_and(|e| e.starts_with("HTTP 401"))
            {
                refused[r] = Some(removed.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("scale-out: bob's token refused by the replicas after {refused:?}");
    assert!(
        refused
            .iter()
            .flatten()
            .all(|t| *t <= REVOCATION_REFRESH + Duration::from_secs(2)),
        "{refused:?}"
    );
    for &port in &ports {
        assert_eq!(
            login(port, "bob", bob_pw).0,
            400,
            "bob's login on port {port}"
        );
    }

    // Concurrent alias moves from separate processes: each leaves its history row.
    for alias in ["blue", "green", "canary"] {
        let handles: Vec<_> = ["1", "2"]
            .into_iter()
            .map(|v| {
                let (dir, env) = (
                    ops.path().to_path_buf(),
                    env.map(|(k, v)| (k.to_string(), v.to_string())),
                );
                std::thread::spawn(move || {
                    let env: Vec<(&str, &str)> =
                        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    taxon_ok(
                        &dir,
                        &["registry", "alias", "set", alias, v, "--force"],
                        &env,
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let history: Value = serde_json::from_str(&taxon_ok(
            ops.path(),
            &["--json", "registry", "history", "--alias", alias],
            &env,
        ))
        .unwrap();
        let rows = history.as_array().expect("history is a JSON array");
        assert_eq!(rows.len(), 2, "{alias}: {history}");
        assert!(rows[0]["from_version"].is_null(), "{history}");
        assert_eq!(rows[1]["from_version"], rows[0]["to_version"], "{history}");
    }

    stop.store(true, Ordering::Relaxed);
    for t in load {
        t.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    eprintln!("scale-out: {} predictions under load", seen.ok);
    assert!(
        seen.failures.is_empty(),
        "failed requests: {:#?}",
        seen.failures
    );
    assert!(seen.ok > 100, "only {} predictions", seen.ok);
    drop(servers);
}
