//! `taxon ui` over a project filled by the real commands (`data init`, `data add`, `train`,
//! `eval`, `registry register`, `registry alias set`): every page answers, the numbers it shows
//! equal the stores' (read back through `taxon --json`), unknown ids get 404 and SIGTERM stops
//! it with exit 0. When Debian's `chromium` is installed, a headless browser loads each page and
//! its DOM is checked the same way (screenshots under the target folder).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

use crate::common::tools::http_raw;

/// `taxon` in `dir` with the project's own stores and a known user.
fn taxon(dir: &Path) -> assert_cmd::Command {
    let mut c = crate::common::tools::taxon(dir);
    c.env("TAXON_USER", "alice")
        .env_remove("TAXON_RUNS_DB")
        .env_remove("TAXON_REGISTRY_DB")
        .env_remove("TAXON_REGISTRY_ARTIFACTS")
        .env_remove("MLFLOW_TRACKING_URI")
        .env_remove("TAXON_PUSHGATEWAY");
    c
}

fn ok(dir: &Path, args: &[&str]) {
    taxon(dir).args(args).assert().success();
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = taxon(dir).arg("--json").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "taxon {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Two topics; every `noise`-th row carries the other label, so accuracy is not a round 1.
fn write_data(path: &Path, n: usize, seed: u64, noise: usize) {
    let words = [
        ["goal", "match", "team", "score", "win", "league"],
        ["phone", "chip", "software", "data", "cloud", "server"],
    ];
    let mut s = String::new();
    let mut x = seed;
    for i in 0..n {
        let l = i % 2;
        let text: Vec<&str> = (0..8)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                words[l][(x >> 33) as usize % 6]
            })
            .collect();
        let label = ["sport", "tech"][if i % noise == noise - 1 { 1 - l } else { l }];
        let row = serde_json::json!({"text": text.join(" "), "label": label});
        s.push_str(&format!("{row}\n"));
    }
    std::fs::write(path, s).unwrap();
}

/// A running `taxon ui --port 0`, killed on drop if still running.
struct Ui {
    child: Child,
    port: u16,
}

impl Ui {
    fn start(dir: &Path) -> Ui {
        Ui::start_with(dir, &[])
    }

    /// `taxon ui --port 0 EXTRA...` in `dir`.
    fn start_with(dir: &Path, extra: &[&str]) -> Ui {
        let mut child = StdCommand::cargo_bin("taxon")
            .unwrap()
            .current_dir(dir)
            .env_remove("TAXON_RUNS_DB")
            .env_remove("TAXON_REGISTRY_DB")
            .env_remove("TAXON_REGISTRY_ARTIFACTS")
            .env_remove("TAXON_JWT_SECRET")
            .args(["ui", "--port", "0"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn taxon ui");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines
                .next()
                .expect("taxon ui exited before listening")
                .unwrap();
            if let Some(addr) = line.strip_prefix("listening on http://127.0.0.1:") {
                break addr.trim().parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Ui { child, port }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The raw answer (head and body) to `METHOD path` with `headers` (each `Name: value`)
    /// and `body`.
    fn request(&self, method: &str, path: &str, headers: &[&str], body: &str) -> String {
        use std::io::{Read as _, Write as _};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Length: {}\r\n",
            body.len()
        );
        for h in headers {
            head.push_str(h);
            head.push_str("\r\n");
        }
        write!(s, "{head}\r\n{body}").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// Status and body of `GET path`.
    fn get(&self, path: &str) -> (u16, String) {
        let raw = http_raw(self.port, "GET", path).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
        (status, body.to_string())
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of the element that `marker` (an attribute, or a whole opening markup) ends in:
/// from the next `>` to the next `<`.
fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not on the page"));
    let rest = &html[at + marker.len()..];
    let rest = &rest[rest.find('>').map_or(0, |i| i + 1)..];
    &rest[..rest.find('<').unwrap_or(rest.len())]
}

/// The number shown after `marker`, equal to `expected` within the 4 decimals pages print.
fn assert_shown(html: &str, marker: &str, expected: f64) {
    let shown: f64 = text_after(html, marker)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{marker:?}: {e}"));
    assert!(
        (shown - expected).abs() <= 5e-5,
        "{marker:?}: page shows {shown}, store has {expected}"
    );
}

/// Everything the project's stores hold that the pages must show.
struct Expected {
    run_id: String,
    accuracy: f64,
    data_version: String,
    runs: usize,
    versions: usize,
    data_versions: Vec<Value>,
    /// The evaluation's per-class rows, from the `eval/` artifact `taxon eval` wrote.
    per_class: Vec<Value>,
    /// The evaluation's expected calibration error.
    ece: f64,
    /// `taxon --json data diff` of train.jsonl's two versions.
    diff: Value,
}

/// Basic accessibility: every form control a user fills (not hidden inputs, not buttons) has a
/// name, from a `<label for>` or `aria-label`; every chart is an image with a name; the page
/// has a language and one main landmark.
fn assert_accessible(path: &str, html: &str) {
    assert!(html.contains("<html lang=\"en\""), "{path}: no lang");
    assert_eq!(html.matches("<main").count(), 1, "{path}: main landmark");
    for tag in ["<input", "<select"] {
        for (at, _) in html.match_indices(tag) {
            let el = &html[at..at + html[at..].find('>').unwrap()];
            if el.contains("type=\"hidden\"") || el.contains("aria-label=") {
                continue;
            }
            let id = el
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("{path}: unlabelled control {el}"));
            assert!(
                html.contains(&format!("<label for=\"{id}\"")),
                "{path}: no label for {el}"
            );
        }
    }
    for (at, _) in html.match_indices("<svg") {
        let el = &html[at..at + html[at..].find('>').unwrap()];
        assert!(
            el.contains("role=\"img\"") && el.contains("aria-label=\""),
            "{path}: chart without a name: {el}"
        );
    }
}

/// The checks on each page, shared by the HTTP answers and the browser's DOM.
fn check_page(path: &str, html: &str, e: &Expected) {
    assert!(html.contains("<title>"), "{path}: no title");
    assert_accessible(path, html);
    match path {
        "/" => {
            assert_shown(html, "data-count=\"runs\"", e.runs as f64);
            assert_shown(html, "data-count=\"versions\"", e.versions as f64);
            assert_shown(html, "data-count=\"data\"", e.data_versions.len() as f64);
        }
        "/runs" => {
            assert!(
                html.contains(&format!("{} of {} runs", e.runs, e.runs)),
                "{path}"
            );
            let row = &html[html.find(&format!("data-run=\"{}\"", e.run_id)).unwrap()..];
            assert_shown(row, "data-metric=\"eval.test.accuracy\"", e.accuracy);
        }
        "/registry" => {
            assert!(html.contains(&format!("{} versions", e.versions)), "{path}");
            assert_eq!(
                text_after(html, "data-alias=\"production\""),
                "production → v1"
            );
            assert_shown(html, "data-metric=\"eval.test.accuracy\"", e.accuracy);
        }
        at if at.starts_with("/registry/default?alias=production&at=2") => {
            // After the alias was set: v1; long before: not set.
            assert_eq!(text_after(html, "data-alias-at=\"1\""), "v1", "{path}");
        }
        at if at.starts_with("/registry/default?alias=production&at=1999") => {
            assert!(html.contains("data-alias-at=\"none\""), "{path}");
        }
        "/registry/default" => {
            assert!(
                html.contains("<td>production</td><td>-</td><td>v1</td><td>alice</td>"),
                "{path}: alias history row"
            );
        }
        "/data" => {
            assert!(
                html.contains(&format!("{} data versions", e.data_versions.len())),
                "{path}"
            );
            for v in &e.data_versions {
                let id = v["id"].as_str().unwrap();
                let row = &html[html.find(&format!("id=\"v-{id}\"")).unwrap()..];
                assert_shown(row, "data-rows", v["stats"]["rows"].as_f64().unwrap());
                for (label, n) in v["stats"]["label_counts"].as_object().unwrap() {
                    let shown = text_after(row, &format!("data-label=\"{label}\""));
                    assert!(shown.starts_with(&format!("{label}: {n} (")), "{shown}");
                }
            }
        }
        diff if diff.starts_with("/data/diff") => {
            for k in ["added", "removed", "relabelled", "unchanged"] {
                assert_shown(
                    html,
                    &format!("data-diff=\"{k}\""),
                    e.diff[k].as_f64().unwrap(),
                );
            }
            for (label, l) in e.diff["label_shift"].as_object().unwrap() {
                let at = html
                    .find(&format!("<tr data-label=\"{label}\">"))
                    .unwrap_or_else(|| panic!("{path}: no label shift row for {label}"));
                let row = &html[at..];
                let old = text_after(row, "<td class=\"num\"");
                assert_eq!(old, l["count_a"].to_string(), "{label}");
            }
            assert!(
                html.contains("Label shares, old and new"),
                "{path}: no chart"
            );
        }
        compare if compare.starts_with("/compare") => {
            // The two runs side by side: their curves overlaid, the solver row marked as
            // differing, the evaluated run's accuracy in the metrics table.
            assert!(html.contains("data-series="), "{path}: no overlaid curve");
            assert!(html.contains("class=\"diff\""), "{path}: no differing row");
            assert!(
                html.contains("(differs)"),
                "{path}: the difference is not said in text"
            );
            // Runs in the order asked: the SGD run (never evaluated) first, then the evaluated one.
            let row = &html[html
                .find("<th scope=\"row\">eval.test.accuracy")
                .unwrap_or_else(|| panic!("{path}: no accuracy row"))..];
            assert!(
                row.contains("<td>-</td>"),
                "{path}: the SGD run has no test accuracy"
            );
            assert_shown(row, "</td><td", e.accuracy);
        }
        run => {
            assert!(run.starts_with("/runs/"), "{run}");
            assert_shown(
                html,
                "<th scope=\"row\">eval.test.accuracy</th><td",
                e.accuracy,
            );
            assert!(html.contains("<svg"), "{path}: no curve");
            assert!(html.contains(&e.data_version), "{path}: no data version");
            assert!(html.contains(">default v1</a>"), "{path}: no registry link");
            // The evaluation as `taxon eval --report` draws it: the reliability diagram of the
            // recorded calibration.
            assert!(
                html.contains(&format!("data-ece=\"{}\"", e.ece))
                    && html.contains("id=\"eval-test-calibration\""),
                "{path}: no calibration of the evaluation"
            );
            for c in &e.per_class {
                let label = c["label"].as_str().unwrap();
                let at = html
                    .find(&format!("<tr data-label=\"{label}\">"))
                    .unwrap_or_else(|| panic!("{path}: no per-class row for {label}"));
                let row = &html[at..at + html[at..].find("</tr>").unwrap()];
                let cells: Vec<f64> = row
                    .split("<td class=\"num\">")
                    .skip(1)
                    .map(|c| c[..c.find('<').unwrap()].parse().unwrap())
                    .collect();
                let want = ["precision", "recall", "f1", "support"].map(|k| c[k].as_f64().unwrap());
                assert_eq!(cells.len(), 4, "{row}");
                for (shown, want) in cells.iter().zip(want) {
                    assert!((shown - want).abs() <= 5e-5, "{label}: {row} vs {c}");
                }
            }
        }
    }
}

/// The SGD run's page draws its loss, validation accuracy and learning rate, one point per
/// epoch, and the last point's tooltip holds the value `taxon runs show` has.
fn check_curves(ui: &Ui, dir: &Path, run_id: &str) {
    let run = json(dir, &["runs", "show", run_id]);
    let (status, html) = ui.get(&format!("/runs/{run_id}"));
    assert_eq!(status, 200);
    for key in ["train_loss", "validation_accuracy", "learning_rate"] {
        let points: Vec<(u64, f64)> = run["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["key"] == key)
            .map(|p| (p["step"].as_u64().unwrap(), p["value"].as_f64().unwrap()))
            .collect();
        assert_eq!(points.len(), 5, "{key}: {points:?}");
        let at = html
            .find(&format!("data-curve=\"{key}\""))
            .unwrap_or_else(|| panic!("no {key} chart"));
        let figure = &html[at..at + html[at..].find("</figure>").unwrap()];
        assert_eq!(figure.matches("<circle").count(), 5, "{key}");
        let (step, value) = *points.iter().max_by_key(|p| p.0).unwrap();
        let title = format!("<title>step {step}: ");
        let tip = &figure[figure.find(&title).unwrap() + title.len()..];
        let shown: f64 = tip[..tip.find("</title>").unwrap()].parse().unwrap();
        assert!(
            (shown - value).abs() <= 1e-9 * value.abs().max(1.0),
            "{key}: {shown} vs {value}"
        );
    }
}

/// Debian's `chromium`, if installed.
fn chromium() -> Option<PathBuf> {
    let out = StdCommand::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !path.is_empty()).then(|| PathBuf::from(path))
}

/// Where the browser's screenshots go: `ui-screenshots/` in the target folder.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/cli-HASH -> target/
    let target = exe.ancestors().nth(3).unwrap_or(Path::new("."));
    let dir = target.join("ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn ui_refuses_a_non_loopback_address_without_insecure() {
    let tmp = tempfile::tempdir().unwrap();
    let out = taxon(tmp.path())
        .args(["ui", "--host", "0.0.0.0", "--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("0.0.0.0") && err.contains("--insecure"),
        "{err}"
    );
}

#[test]
fn ui_pages_show_the_stores_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(&dir.join("train.jsonl"), 200, 7, 50);
    write_data(&dir.join("test.jsonl"), 60, 99, 7);
    ok(dir, &["data", "init"]);
    ok(dir, &["data", "add", "train.jsonl"]);
    ok(dir, &["data", "add", "test.jsonl"]);
    // fastText-style SGD for per-epoch curves, then the default SVM that is evaluated and
    // registered.
    let train = [
        "train",
        "--model-type",
        "linear",
        "--data",
        "train.jsonl",
        "--threads",
        "1",
    ];
    let sgd = ["--solver", "sgd", "--epochs", "5", "--output", "model-sgd"];
    ok(dir, &[&train[..], &sgd[..]].concat());
    let sgd_run = json(dir, &["runs", "list"])[0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    ok(dir, &[&train[..], &["--output", "model"][..]].concat());
    ok(dir, &["eval", "model", "test.jsonl"]);
    ok(dir, &["registry", "register", "latest"]);
    ok(dir, &["registry", "alias", "set", "production", "latest"]);
    // A second version of train.jsonl: its first row relabelled, 20 rows added.
    let before = std::fs::read_to_string(dir.join("train.jsonl")).unwrap();
    let (first, rest) = before.split_once('\n').unwrap();
    let flipped = if first.contains("\"sport\"") {
        first.replace("\"sport\"", "\"tech\"")
    } else {
        first.replace("\"tech\"", "\"sport\"")
    };
    write_data(&dir.join("more.jsonl"), 20, 5, 50);
    let more = std::fs::read_to_string(dir.join("more.jsonl")).unwrap();
    std::fs::write(dir.join("train.jsonl"), format!("{flipped}\n{rest}{more}")).unwrap();
    ok(dir, &["data", "add", "train.jsonl"]);

    let runs = json(dir, &["runs", "list"]);
    let run_id = runs[0]["id"].as_str().unwrap().to_string();
    let run = json(dir, &["runs", "show", &run_id]);
    let accuracy = run["metrics"]["eval.test.accuracy"].as_f64().unwrap();
    assert!(accuracy < 1.0, "the noisy test set should cost accuracy");
    let versions = json(dir, &["registry", "list"]);
    assert_eq!(versions[0]["run_id"], run_id.as_str());
    let data_versions: Vec<Value> = std::fs::read_to_string(dir.join(".taxon/versions.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let eval_file = run["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"].as_str().unwrap().starts_with("eval/"))
        .expect("an eval artifact")["path"]
        .as_str()
        .unwrap()
        .to_string();
    let eval: Value = serde_json::from_str(&std::fs::read_to_string(eval_file).unwrap()).unwrap();
    let train_versions: Vec<&str> = data_versions
        .iter()
        .filter(|v| v["path"] == "train.jsonl")
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(train_versions.len(), 2);
    let diff = json(
        dir,
        &[
            "data",
            "diff",
            "train.jsonl",
            train_versions[0],
            train_versions[1],
        ],
    );
    assert_eq!(diff["relabelled"], 1, "{diff}");
    let diff_page = format!("/data/diff?a={}&b={}", train_versions[0], train_versions[1]);
    let expected = Expected {
        diff,
        per_class: eval["per_class"].as_array().unwrap().clone(),
        ece: eval["ece"].as_f64().unwrap(),
        data_version: run["data_version"].as_str().unwrap().to_string(),
        run_id: run_id.clone(),
        accuracy,
        runs: runs.as_array().unwrap().len(),
        versions: versions.as_array().unwrap().len(),
        data_versions,
    };
    assert_eq!(expected.runs, 2);

    let mut ui = Ui::start(dir);
    let pages = [
        "/".to_string(),
        "/runs".into(),
        format!("/runs/{run_id}"),
        "/registry".into(),
        "/registry/default".into(),
        format!(
            "/registry/default?alias=production&at={}",
            (chrono::Utc::now() + chrono::Duration::days(1)).format("%Y-%m-%dT%H%%3A%M")
        ),
        "/registry/default?alias=production&at=1999-01-01".into(),
        "/data".into(),
        format!("/compare?run={sgd_run}&run={run_id}"),
        diff_page.clone(),
    ];
    // The screenshot of each page, in order (docs/ui/ keeps copies for the README).
    let shot_names = [
        "overview",
        "runs",
        "run",
        "registry",
        "registry-model",
        "alias-at",
        "alias-at-unset",
        "data",
        "compare",
        "data-diff",
    ];
    assert_eq!(shot_names.len(), pages.len());
    for path in &pages {
        let (status, html) = ui.get(path);
        assert_eq!(status, 200, "{path}: {html}");
        check_page(path, &html, &expected);
    }
    // Filters and sort through the query string.
    let (_, html) = ui.get("/runs?model_type=linear&sort=eval.test.accuracy&order=desc");
    let first = text_after(&html, "<tbody><tr data-run=\"");
    assert!(
        html.contains(&format!("<tbody><tr data-run=\"{run_id}\"")),
        "{first}"
    );
    let (_, html) = ui.get("/runs?model_type=bert");
    assert!(html.contains("0 of 2 runs"));
    for v in &expected.data_versions {
        let id = v["id"].as_str().unwrap();
        let n = if id == expected.data_version { 2 } else { 0 };
        let (_, html) = ui.get(&format!("/runs?data_version={id}"));
        assert!(
            html.contains(&format!("{n} of 2 runs")),
            "data version {id}"
        );
    }
    check_curves(&ui, dir, &sgd_run);
    for path in ["/runs/ffffffffffff", "/registry/nope", "/nowhere"] {
        assert_eq!(ui.get(path).0, 404, "{path}");
    }

    match chromium() {
        None if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") => {
            panic!("chromium not found (TAXON_REQUIRE_TOOLS=1): scripts/setup-tools.sh installs it")
        }
        None => eprintln!("notice: chromium is not installed; skipping the headless browser check"),
        Some(browser) => {
            let shots = screenshot_dir();
            for (i, path) in pages.iter().enumerate() {
                let out = StdCommand::new(&browser)
                    .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
                    .args(["--enable-logging=stderr", "--v=0"])
                    .arg(ui.url(path))
                    .output()
                    .unwrap();
                assert!(out.status.success(), "chromium {path}");
                // The pages run no script, so any console message is an error: a refused or
                // failed load.
                let log = String::from_utf8_lossy(&out.stderr);
                let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
                assert!(console.is_empty(), "{path}: console messages {console:#?}");
                check_page(path, &String::from_utf8_lossy(&out.stdout), &expected);
                let _ = StdCommand::new(&browser)
                    .args(["--headless", "--no-sandbox", "--disable-gpu"])
                    .arg(format!(
                        "--screenshot={}",
                        shots.join(format!("{}.png", shot_names[i])).display()
                    ))
                    // The run page is tall: its evaluation (calibration) comes last.
                    .arg(if shot_names[i] == "run" {
                        "--window-size=1280,2900"
                    } else {
                        "--window-size=1280,1800"
                    })
                    .arg(ui.url(path))
                    .output();
            }
        }
    }

    let kill = StdCommand::new("kill")
        .args(["-TERM", &ui.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = ui.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "taxon ui did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "taxon ui exited with {status}");
}

/// The value of header `name` (lower case) in a raw answer.
fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.split("\r\n\r\n").next().unwrap().lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn with_a_secret_the_ui_asks_for_a_login_of_taxon_users() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let users = dir.join("users.db");
    let users_arg = users.to_str().unwrap();
    taxon(dir)
        .args([
            "users",
            "add",
            "carol",
            "--scope",
            "predict",
            "--users-db",
            users_arg,
        ])
        .env("TAXON_PASSWORD", "carol-secret-9")
        .assert()
        .success();
    let ui = Ui::start_with(
        dir,
        &[
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef-ui",
            "--users-db",
            users_arg,
        ],
    );
    // No session: sent to the form.
    let raw = ui.request("GET", "/runs?page=2", &[], "");
    assert!(raw.starts_with("HTTP/1.1 303"), "{raw}");
    assert_eq!(
        header(&raw, "location"),
        Some("/login?next=%2Fruns%3Fpage%3D2")
    );
    let (status, form) = ui.get("/login?next=%2Fruns");
    assert_eq!(status, 200);
    assert!(form.contains("<label for=\"username\">User name</label>"));
    assert_accessible("/login", &form);

    let post = |form: &str| {
        ui.request(
            "POST",
            "/login",
            &["Content-Type: application/x-www-form-urlencoded"],
            form,
        )
    };
    let raw = post("username=carol&password=nope-nope-1&next=%2Fruns");
    assert!(raw.starts_with("HTTP/1.1 401"), "{raw}");
    assert!(raw.contains("invalid username or password"));
    let raw = post("username=carol&password=carol-secret-9&next=%2Fruns");
    assert!(raw.starts_with("HTTP/1.1 303"), "{raw}");
    assert_eq!(header(&raw, "location"), Some("/runs"));
    let cookie = header(&raw, "set-cookie").unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let cookie = format!("Cookie: {}", cookie.split(';').next().unwrap());
    let raw = ui.request("GET", "/runs", &[&cookie], "");
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(raw.contains("<span>carol</span>"));

    // The same account's token from `taxon serve` would carry the same claims: removing the
    // user ends the session (the revocation list is re-read at the next login attempt).
    taxon(dir)
        .args(["users", "remove", "carol", "--users-db", users_arg])
        .assert()
        .success();
    let _ = post("username=nobody&password=whatever-1");
    let raw = ui.request("GET", "/runs", &[&cookie], "");
    assert!(raw.starts_with("HTTP/1.1 303"), "{raw}");
    assert!(
        header(&raw, "location").unwrap().contains("revoked"),
        "{raw}"
    );

    if let Some(browser) = chromium() {
        // The login page in a real browser: no console message, and its screenshot.
        let out = StdCommand::new(&browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
            .args(["--enable-logging=stderr", "--v=0"])
            .arg(ui.url("/runs"))
            .output()
            .unwrap();
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(!log.contains(":CONSOLE"), "{log}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("id=\"login\""));
        let _ = StdCommand::new(&browser)
            .args(["--headless", "--no-sandbox", "--disable-gpu"])
            .arg(format!(
                "--screenshot={}",
                screenshot_dir().join("login.png").display()
            ))
            .arg("--window-size=1280,600")
            .arg(ui.url("/login"))
            .output();
    }
}

/// The number in `metrics` (an OpenMetrics exposition) of the sample named exactly `sample`.
fn metric(metrics: &str, sample: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {sample} in {metrics}"))
        .trim()
        .parse()
        .unwrap()
}

/// `/monitor` over a real server's prediction log and alert history: `taxon serve --alias
/// production --prediction-log log --alerts alerts.yaml` answers predictions, gets feedback
/// (two wrong ones fire the live-accuracy rule, right ones resolve it), then `taxon ui
/// --prediction-log log` shows the same totals as the requests sent and the server's counters,
/// the whole-log drift `taxon monitor drift --json` reports against the registered version the
/// log names, and the alert `taxon alerts list --json` lists; a headless browser loads the page
/// without console errors and takes `monitor.png`.
#[test]
fn ui_monitor_page_shows_a_served_models_log_and_alerts() {
    use crate::serve::{Server, eventually};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_data(&dir.join("train.jsonl"), 200, 7, 50);
    ok(dir, &["data", "init"]);
    ok(dir, &["data", "add", "train.jsonl"]);
    let train = ["train", "--model-type", "linear", "--data", "train.jsonl"];
    ok(
        dir,
        &[&train[..], &["--threads", "1", "--output", "model"][..]].concat(),
    );
    ok(dir, &["registry", "register", "latest"]);
    ok(dir, &["registry", "alias", "set", "production", "latest"]);
    // A webhook nobody listens on: the notices are retried, and the history says so.
    let hook = crate::common::tools::free_port();
    std::fs::write(
        dir.join("alerts.yaml"),
        format!(
            "channels:\n  hook: {{type: webhook, url: 'http://127.0.0.1:{hook}/hook'}}\nrules:\n  - name: accuracy-drop\n    condition: accuracy_below\n    threshold: 0.5\n    severity: warning\n    channels: [hook]\nsettings:\n  evaluate_every: 200ms\n  retry_initial: 100ms\n  retry: 500ms\n"
        ),
    )
    .unwrap();
    let mut server = Server::start_with(
        dir,
        &[],
        &[
            "--alias",
            "production",
            "--prediction-log",
            "log",
            "--alerts",
            "alerts.yaml",
            "--feedback-window",
            "2",
            "--cache-size",
            "0",
        ],
        &[
            ("TAXON_USER", "alice"),
            ("TAXON_REGISTRY_DB", ""),
            ("TAXON_REGISTRY_ARTIFACTS", ""),
        ],
    );
    let alerts = || json(dir, &["alerts", "list"]);
    let mut labels: std::collections::BTreeMap<String, u64> = Default::default();
    let mut predict = |text: &str| -> (String, String) {
        let a = server.request(
            "POST",
            "/v1/predict",
            Some(&serde_json::json!({ "text": text }).to_string()),
        );
        assert_eq!(a.status, 200, "{}", a.body);
        let v = a.json();
        let label = v["label"].as_str().unwrap().to_string();
        *labels.entry(label.clone()).or_insert(0) += 1;
        (v["request_id"].as_str().unwrap().to_string(), label)
    };
    let sport = "goal match team score win league";
    let tech = "phone chip software data cloud server";
    let mut sent = Vec::new();
    // Two answers the feedback calls wrong: live accuracy 0 over the window of 2 fires.
    for i in 0..2 {
        sent.push((predict(&format!("{sport} {i}")), false));
    }
    let mut told = Vec::new();
    for ((id, label), right) in &sent {
        let truth = match (right, label.as_str()) {
            (true, l) => l.to_string(),
            (false, "sport") => "tech".to_string(),
            (false, _) => "sport".to_string(),
        };
        told.push((id.clone(), truth));
    }
    for (id, truth) in &told {
        feedback(&server, id, truth);
    }
    eventually("the alert fires", || {
        alerts().as_array().unwrap().len() == 1
    });
    // Four answers confirmed right resolve it; four more get no feedback. Spread over a few
    // seconds, so the page (and its screenshot) has several windows.
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(400));
        let text = if i % 2 == 0 { sport } else { tech };
        let (id, label) = predict(&format!("{text} {i}"));
        if i < 4 {
            feedback(&server, &id, &label);
        }
    }
    eventually("the alert resolves", || {
        alerts()[0]["resolved_at"].as_str().is_some()
    });
    let metrics = server.request("GET", "/metrics", None).body;
    let correct = metric(&metrics, "taxon_feedback_total{result=\"correct\"}");
    let incorrect = metric(&metrics, "taxon_feedback_total{result=\"incorrect\"}");
    assert_eq!((correct, incorrect), (4.0, 2.0));
    server.sigterm();
    assert!(server.wait_exit().success());
    let alert_rows = alerts();
    let drift = {
        let out = taxon(dir)
            .args([
                "--json",
                "monitor",
                "drift",
                "--reference",
                "model",
                "--current",
                "log",
            ])
            .output()
            .unwrap();
        assert!(matches!(out.status.code(), Some(0 | 1)), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };

    let ui = Ui::start_with(dir, &["--prediction-log", "log"]);
    let check = |html: &str| {
        assert_shown(html, "data-total=\"predictions\"", 10.0);
        for (label, n) in &labels {
            assert_shown(html, &format!("data-label-total=\"{label}\""), *n as f64);
        }
        assert_shown(html, "data-total=\"feedback\"", correct + incorrect);
        assert_shown(html, "data-total=\"correct\"", correct);
        assert_shown(
            html,
            "data-total=\"accuracy\"",
            correct / (correct + incorrect),
        );
        // Drift against the registered version the log names, as `taxon monitor drift` has it.
        assert!(
            html.contains("registry default v1"),
            "reference not resolved"
        );
        for f in drift["features"].as_array().unwrap() {
            let name = f["name"].as_str().unwrap();
            let at = html
                .find(&format!("<tr data-feature=\"{name}\">"))
                .unwrap_or_else(|| panic!("no drift row for {name}"));
            assert_shown(&html[at..], "data-value=\"\"", f["value"].as_f64().unwrap());
            assert!(
                html.contains(&format!("<figure data-drift=\"{name}\">")),
                "{name}"
            );
        }
        // The alert, resolved, with the webhook's retries.
        assert_shown(
            html,
            "data-total=\"alerts\"",
            alert_rows.as_array().unwrap().len() as f64,
        );
        assert_shown(html, "data-total=\"firing\"", 0.0);
        let id = alert_rows[0]["id"].as_i64().unwrap();
        let row = &html[html.find(&format!("data-alert=\"{id}\"")).unwrap()..];
        let row = &row[..row.find("</tr>").unwrap()];
        assert!(
            row.contains("accuracy-drop") && row.contains("warning"),
            "{row}"
        );
        let resolved = alert_rows[0]["resolved_at"].as_str().unwrap();
        assert!(row.contains(resolved), "{row}");
        assert!(row.contains("firing → hook:"), "{row}");
    };
    let (status, html) = ui.get("/monitor");
    assert_eq!(status, 200, "{html}");
    check(&html);
    assert_accessible("/monitor", &html);
    let (status, html) = ui.get("/monitor?window=1");
    assert_eq!(status, 200);
    assert!(html.contains("value=\"1\""), "the window asked for");

    match chromium() {
        None if std::env::var("TAXON_REQUIRE_TOOLS").as_deref() == Ok("1") => {
            panic!("chromium not found (TAXON_REQUIRE_TOOLS=1): scripts/setup-tools.sh installs it")
        }
        None => eprintln!("notice: chromium is not installed; skipping the headless browser check"),
        Some(browser) => {
            let out = StdCommand::new(&browser)
                .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
                .args(["--enable-logging=stderr", "--v=0"])
                .arg(ui.url("/monitor"))
                .output()
                .unwrap();
            assert!(out.status.success(), "chromium /monitor");
            let log = String::from_utf8_lossy(&out.stderr);
            let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
            assert!(
                console.is_empty(),
                "/monitor: console messages {console:#?}"
            );
            check(&String::from_utf8_lossy(&out.stdout));
            let _ = StdCommand::new(&browser)
                .args(["--headless", "--no-sandbox", "--disable-gpu"])
                .arg(format!(
                    "--screenshot={}",
                    screenshot_dir().join("monitor.png").display()
                ))
                .arg("--window-size=1280,2000")
                .arg(ui.url("/monitor"))
                .output();
        }
    }
}

/// `POST /v1/feedback` of `label` for request `id`.
fn feedback(server: &crate::serve::Server, id: &str, label: &str) {
    let a = server.request(
        "POST",
        "/v1/feedback",
        Some(&serde_json::json!({"request_id": id, "label": label}).to_string()),
    );
    assert_eq!(a.status, 200, "{}", a.body);
}
