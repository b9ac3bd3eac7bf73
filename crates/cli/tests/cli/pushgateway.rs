//! `taxon train --pushgateway` against Debian's `prometheus-pushgateway` on 127.0.0.1: the
//! per-stage time and peak memory series arrive under job `taxon_train`, grouped by run id.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::service::Service;
use crate::common::tools::{free_port, http_raw, http_status, taxon, taxon_json};

struct Gateway {
    _service: Service,
    port: u16,
}

fn find_gateway() -> Option<PathBuf> {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for d in candidates
        .iter()
        .map(PathBuf::as_path)
        .chain([std::path::Path::new("/usr/bin")])
    {
        for name in ["prometheus-pushgateway", "pushgateway"] {
            let p = d.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") {
        panic!("prometheus-pushgateway not found (TAXON_REQUIRE_TOOLS=1): scripts/setup-tools.sh");
    }
    eprintln!("skipping: prometheus-pushgateway not found");
    None
}

fn start() -> Option<Gateway> {
    let bin = find_gateway()?;
    let port = free_port();
    let service = Service::spawn(
        "prometheus-pushgateway",
        Command::new(bin)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let gw = Gateway {
        _service: service,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_status(port, "GET", "/-/ready").is_ok_and(|c| c == 200) {
            return Some(gw);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("pushgateway did not get ready on port {port}");
}

#[test]
fn stage_timings_are_pushed_grouped_by_run_id() {
    let Some(gw) = start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut s = String::new();
    for i in 0..100 {
        let (t, l) = if i % 2 == 0 {
            ("goal team win", "sport")
        } else {
            ("chip cloud data", "tech")
        };
        s.push_str(&format!("{{\"text\":\"{t} {i}\",\"label\":\"{l}\"}}\n"));
    }
    std::fs::write(dir.join("train.jsonl"), s).unwrap();
    taxon(dir)
        .args([
            "train",
            "--data",
            "train.jsonl",
            "--output",
            "m",
            "--epochs",
            "2",
        ])
        .args(["--pushgateway", &format!("http://127.0.0.1:{}", gw.port)])
        .env_remove("MLFLOW_TRACKING_URI")
        .assert()
        .success();
    let id = taxon_json(dir, &["runs", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let metrics = http_raw(gw.port, "GET", "/metrics").unwrap();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("taxon_stage_") && l.contains(&format!("run_id=\"{id}\"")))
        .collect();
    for stage in ["load data", "train", "validate+save"] {
        for name in ["taxon_stage_seconds", "taxon_stage_peak_rss_bytes"] {
            let line = series
                .iter()
                .find(|l| {
                    l.starts_with(&format!("{name}{{")) && l.contains(&format!("stage=\"{stage}\""))
                })
                .unwrap_or_else(|| panic!("no {name} for {stage}: {series:?}"));
            assert!(line.contains("job=\"taxon_train\""), "{line}");
            let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
            assert!(value >= 0.0);
            if name.ends_with("bytes") {
                assert!(value > 1e6, "{line}");
            }
        }
    }
    assert!(
        metrics.contains("taxon_run_validation_accuracy{"),
        "{metrics}"
    );
}
