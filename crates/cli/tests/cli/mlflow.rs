//! `taxon train --mlflow-uri` against a real MLflow tracking server (PyPI `mlflow`, started on
//! 127.0.0.1 with a SQLite backend as INFRA.md says): the run is read back through the REST
//! API (params, metric history with steps, tags, status, artifacts through the server's proxy
//! and in a local-path artifact store).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::service::Service;
use crate::common::tools::{free_port, require_tool, taxon, taxon_json};
use serde_json::Value;

/// An `mlflow server` and the uvicorn worker it forks, stopped together on drop.
struct Mlflow {
    _service: Service,
    port: u16,
}

/// One HTTP/1.0 request with an optional JSON body; (status, body).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

fn get_json(port: u16, path: &str) -> Value {
    let (code, body) = http(port, "GET", path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

fn start_mlflow(dir: &Path) -> Option<Mlflow> {
    let bin = require_tool("mlflow")?;
    let port = free_port();
    let db = format!("sqlite:///{}", dir.join("mlflow.db").display());
    let artifacts = dir.join("artifacts");
    let mut command = Command::new(bin);
    command
        .current_dir(dir)
        .env("MLFLOW_DISABLE_TELEMETRY", "true")
        .env("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
        .args([
            "server",
            "--backend-store-uri",
            &db,
            "--default-artifact-root",
        ])
        .arg(&artifacts)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--workers",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("mlflow.log")).unwrap());
    let server = Mlflow {
        _service: Service::spawn("mlflow server", &mut command),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let (code, body) = http(port, "GET", "/health", None);
            if code == 200 && body.trim() == "OK" {
                return Some(server);
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(dir.join("mlflow.log")).unwrap_or_default();
    panic!("mlflow server did not answer /health within 180 s:\n{log}");
}

fn write_data(path: &Path) {
    let mut s = String::new();
    for i in 0..120 {
        let (t, l) = if i % 2 == 0 {
            ("goal match team score win", "sport")
        } else {
            ("phone chip software cloud data", "tech")
        };
        s.push_str(&format!("{{\"text\":\"{t} {i}\",\"label\":\"{l}\"}}\n"));
    }
    std::fs::write(path, s).unwrap();
}

/// The MLflow run id recorded for the newest local run.
fn newest_mlflow_id(dir: &Path) -> (String, Value) {
    let list = taxon_json(dir, &["runs", "list"]);
    let id = list[0]["id"].as_str().unwrap().to_string();
    let show = taxon_json(dir, &["runs", "show", &id]);
    let mid = show["mlflow_run_id"]
        .as_str()
        .unwrap_or_else(|| panic!("run not mirrored: {show}"))
        .to_string();
    (mid, show)
}

#[test]
fn a_training_run_is_mirrored_to_mlflow_and_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some(server) = start_mlflow(dir) else {
        return;
    };
    let port = server.port;
    let uri = format!("http://127.0.0.1:{port}");
    let work = dir.join("work");
    std::fs::create_dir(&work).unwrap();
    write_data(&work.join("train.jsonl"));

    // An experiment whose artifacts go through the server's proxy (mlflow-artifacts:).
    let (code, body) = http(
        port,
        "POST",
        "/api/2.0/mlflow/experiments/create",
        Some(
            &serde_json::json!({"name": "proxied", "artifact_location": "mlflow-artifacts:/proxied"}),
        ),
    );
    assert_eq!(code, 200, "{body}");

    taxon(&work)
        .args([
            "train",
            "--solver",
            "sgd",
            "--data",
            "train.jsonl",
            "--output",
            "m",
            "--epochs",
            "3",
        ])
        .args(["--threads", "1", "--run-name", "mirror-test"])
        .args(["--mlflow-uri", &uri, "--mlflow-experiment", "proxied"])
        .assert()
        .success();
    let (mid, local) = newest_mlflow_id(&work);
    let run = get_json(port, &format!("/api/2.0/mlflow/runs/get?run_id={mid}"));
    let info = &run["run"]["info"];
    assert_eq!(info["status"], "FINISHED", "{run}");
    assert_eq!(info["run_name"], "mirror-test");
    let data = &run["run"]["data"];
    let find = |list: &str, key: &str| -> Option<String> {
        data[list].as_array().and_then(|a| {
            a.iter().find(|p| p["key"] == key).map(|p| {
                p["value"]
                    .as_str()
                    .map_or(p["value"].to_string(), str::to_string)
            })
        })
    };
    assert_eq!(find("params", "epochs").as_deref(), Some("3"));
    assert_eq!(find("params", "model_config.dim").as_deref(), Some("100"));
    assert_eq!(find("params", "model_type").as_deref(), Some("linear"));
    assert_eq!(
        find("tags", "mlflow.runName").as_deref(),
        Some("mirror-test")
    );
    assert_eq!(
        find("tags", "taxon.run_id").as_deref(),
        local["id"].as_str()
    );
    assert_eq!(
        find("tags", "taxon.version").as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    let acc: f64 = find("metrics", "validation_accuracy")
        .expect("validation_accuracy")
        .parse()
        .unwrap();
    assert!((acc - local["metrics"]["validation_accuracy"].as_f64().unwrap()).abs() < 1e-9);

    // Per-epoch history with steps, equal to the local store's.
    let hist = get_json(
        port,
        &format!("/api/2.0/mlflow/metrics/get-history?run_id={mid}&metric_key=train_loss"),
    );
    let mut points: Vec<(u64, f64)> = hist["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["step"].as_u64().unwrap_or(0),
                m["value"].as_f64().unwrap(),
            )
        })
        .collect();
    points.sort_by_key(|p| p.0);
    let local_points: Vec<(u64, f64)> = local["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["key"] == "train_loss")
        .map(|p| (p["step"].as_u64().unwrap(), p["value"].as_f64().unwrap()))
        .collect();
    assert_eq!(points.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2, 3]);
    for (a, b) in points.iter().zip(&local_points) {
        assert!((a.1 - b.1).abs() < 1e-9);
    }

    // Artifacts uploaded through the proxy, byte for byte.
    let listed = get_json(
        port,
        &format!("/api/2.0/mlflow/artifacts/list?run_id={mid}&path=model"),
    );
    let files: Vec<&str> = listed["files"]
        .as_array()
        .unwrap_or_else(|| panic!("no artifacts: {listed}"))
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"model/model.json"), "{files:?}");
    let (code, body) = http(
        port,
        "GET",
        &format!("/api/2.0/mlflow-artifacts/artifacts/proxied/{mid}/artifacts/model/model.json"),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(
        body.as_bytes(),
        std::fs::read(work.join("m/model.json")).unwrap()
    );

    // The default experiment (created by taxon) stores artifacts under the server's local
    // artifact root: they are copied there, as MLflow's own client does.
    taxon(&work)
        .args([
            "train",
            "--solver",
            "sgd",
            "--data",
            "train.jsonl",
            "--output",
            "m2",
            "--epochs",
            "2",
        ])
        .args(["--threads", "1", "--mlflow-uri", &uri])
        .env_remove("MLFLOW_EXPERIMENT_NAME")
        .assert()
        .success();
    let (mid2, _) = newest_mlflow_id(&work);
    let run = get_json(port, &format!("/api/2.0/mlflow/runs/get?run_id={mid2}"));
    assert_eq!(run["run"]["info"]["status"], "FINISHED");
    let exp = get_json(
        port,
        "/api/2.0/mlflow/experiments/get-by-name?experiment_name=taxon",
    );
    assert_eq!(
        exp["experiment"]["experiment_id"],
        run["run"]["info"]["experiment_id"]
    );
    let uri2 = run["run"]["info"]["artifact_uri"].as_str().unwrap();
    let local_root = uri2.strip_prefix("file://").unwrap_or(uri2);
    assert!(
        Path::new(local_root)
            .join("model/model.safetensors")
            .is_file(),
        "artifacts not in {local_root}"
    );
}
