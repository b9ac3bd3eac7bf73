//! `/monitor` through the router, over a prediction log written by taxon-monitor's own
//! `LogWriter`, a model folder with a reference profile, and an alert history written through
//! taxon-alerts' `History`: the numbers on the page are the ones written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::DateTime;
use http_body_util::BodyExt;
use taxon_alerts::History;
use taxon_alerts::history::Fired;
use taxon_core::model::{InputLimits, MODEL_FORMAT_VERSION, ModelDescription};
use taxon_monitor::drift::{Thresholds, compare};
use taxon_monitor::log::{
    FeedbackRecord, LogOptions, LogRecord, LogWriter, PredictionRecord, profile_log,
};
use taxon_monitor::{Observation, Profile};
use tower::ServiceExt;

use super::Sources;
use crate::{AppState, app};

/// Unix seconds at a minute boundary: the log's first window starts here.
const T0: f64 = 1_700_000_040.0;
const LABELS: [&str; 2] = ["sport", "tech"];

async fn get(project: &Path, monitor: Sources, uri: &str) -> String {
    let res = app(AppState::new(project.to_path_buf()).with_monitor(monitor))
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{uri}");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(body.to_vec()).unwrap()
}

/// The text of the element whose opening markup ends in `marker`.
fn text_after<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker:?} not on the page"));
    let rest = &html[at + marker.len()..];
    let rest = &rest[rest.find('>').map_or(0, |i| i + 1)..];
    &rest[..rest.find('<').unwrap_or(rest.len())]
}

fn scores(label: &str, top: f32) -> BTreeMap<String, f32> {
    LABELS
        .iter()
        .map(|l| (l.to_string(), if *l == label { top } else { 1.0 - top }))
        .collect()
}

fn prediction(id: &str, time: f64, label: &str, latency_ms: f64, tokens: usize) -> LogRecord {
    LogRecord::Prediction(PredictionRecord {
        time,
        request_id: id.into(),
        model: "default".into(),
        version: "v1".into(),
        label: label.into(),
        scores: scores(label, 0.9),
        latency_ms,
        tokens,
        unknown_share: Some(0.0),
        text: None,
        text_fernet: None,
    })
}

fn feedback(id: &str, time: f64, predicted: &str, label: &str) -> LogRecord {
    LogRecord::Feedback(FeedbackRecord {
        time,
        request_id: id.into(),
        model: "default".into(),
        version: "v1".into(),
        predicted: predicted.into(),
        label: label.into(),
    })
}

/// A log of three 60 s windows: 4 predictions (3 sport) and 2 feedback (1 right) in the
/// first, nothing in the second, 2 long tech texts and 2 right feedback in the third.
fn write_log(dir: &Path) {
    let mut w = LogWriter::start(LogOptions::new(dir)).unwrap();
    for (i, (label, latency)) in [
        ("sport", 1.0),
        ("sport", 2.0),
        ("tech", 3.0),
        ("sport", 4.0),
    ]
    .into_iter()
    .enumerate()
    {
        w.log(prediction(
            &format!("a{i}"),
            T0 + i as f64,
            label,
            latency,
            10,
        ));
    }
    w.log(feedback("a0", T0 + 10.0, "sport", "sport"));
    w.log(feedback("a1", T0 + 11.0, "sport", "tech"));
    w.log(prediction("c0", T0 + 125.0, "tech", 10.0, 400));
    w.log(prediction("c1", T0 + 126.0, "tech", 20.0, 400));
    w.log(feedback("c0", T0 + 130.0, "tech", "tech"));
    w.log(feedback("c1", T0 + 131.0, "tech", "tech"));
    w.close();
    assert_eq!(w.written(), 10);
}

/// A model folder whose reference profile saw 200 short texts, half of each label.
fn model_with_profile(dir: &Path) -> PathBuf {
    let labels: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
    ModelDescription {
        format_version: MODEL_FORMAT_VERSION,
        model_type: "linear".into(),
        labels: labels.clone(),
        params: serde_json::json!({}),
        input: InputLimits::default(),
        files: Vec::new(),
        created_by: "test".into(),
    }
    .write(dir)
    .unwrap();
    let mut p = Profile::new("linear", &labels, "held-out");
    for i in 0..200 {
        let s = if i % 2 == 0 { [0.9, 0.1] } else { [0.1, 0.9] };
        p.observe(&Observation {
            tokens: 8 + i % 5,
            unknown_share: Some(0.0),
            scores: &s,
            embedding: None,
        });
    }
    p.write_to_model(dir).unwrap();
    dir.to_path_buf()
}

/// An alert history with one resolved alert (its webhook sent on the second try) and one
/// still firing whose rule name is hostile markup.
fn write_alerts(path: &Path) {
    let h = History::open(path).unwrap();
    let t = DateTime::from_timestamp(T0 as i64, 0).unwrap();
    let fired = |rule: &'static str, value: f64| Fired {
        rule,
        condition: "accuracy_below",
        severity: "warning",
        model_version: "v1",
        value,
        threshold: 0.5,
        summary: "live accuracy dropped",
        started_at: t,
    };
    let a = h.fired(&fired("accuracy-drop", 0.25)).unwrap();
    let d = h.queued(a, "firing", "hook", t).unwrap();
    h.outcome(&[d], "retrying", 1, Some("connection refused"), t)
        .unwrap();
    h.outcome(&[d], "sent", 2, None, t).unwrap();
    h.resolved(a, t + chrono::TimeDelta::seconds(120)).unwrap();
    h.fired(&fired("<script>x</script>", 0.125)).unwrap();
}

#[tokio::test]
async fn the_page_shows_the_logs_windows_drift_and_alerts() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("log");
    write_log(&log);
    let model = tmp.path().join("model");
    std::fs::create_dir_all(&model).unwrap();
    model_with_profile(&model);
    write_alerts(&tmp.path().join(".taxon/alerts.db"));
    let sources = Sources {
        prediction_log: Some(log.clone()),
        model: Some(model.clone()),
        ..Sources::default()
    };
    let html = get(tmp.path(), sources, "/monitor?window=60").await;

    // Predictions by label, and live accuracy: 3 of the 4 feedback labels were right.
    assert_eq!(text_after(&html, "data-total=\"predictions\""), "6");
    assert_eq!(text_after(&html, "data-label-total=\"sport\""), "3");
    assert_eq!(text_after(&html, "data-label-total=\"tech\""), "3");
    assert_eq!(text_after(&html, "data-total=\"feedback\""), "4");
    assert_eq!(text_after(&html, "data-total=\"correct\""), "3");
    assert_eq!(text_after(&html, "data-total=\"accuracy\""), "0.7500");
    assert!(html.contains("value=\"60\""), "the window asked for");

    // Three windows, the empty one included; the first's latency p50 and p95 (nearest rank
    // of 1, 2, 3, 4 ms) and accuracy 1 of 2.
    let table = &html[html.find("id=\"window-table\"").unwrap()..];
    let table = &table[..table.find("</table>").unwrap()];
    let rows: Vec<&str> = table.split("<tr><th scope=\"row\">").skip(1).collect();
    assert_eq!(rows.len(), 3, "{table}");
    let cells = |row: &str| -> Vec<String> {
        row.split("<td class=\"num\">")
            .skip(1)
            .map(|c| c[..c.find('<').unwrap()].to_string())
            .collect()
    };
    // Predictions, sport, tech, p50, p95, feedback, accuracy.
    assert_eq!(
        cells(rows[0]),
        ["4", "3", "1", "2", "4", "2", "0.5000"],
        "{}",
        rows[0]
    );
    assert!(rows[0].starts_with("2023-11-14 22:14:00"), "{}", rows[0]);
    assert_eq!(cells(rows[1]), ["0", "0", "0", "-", "-", "0", "-"]);
    assert_eq!(cells(rows[2]), ["2", "0", "2", "10", "20", "2", "1"]);
    // 400-token texts against a reference of 8 to 12: the last window drifts on tokens.
    assert!(rows[2].contains("tokens"), "{}", rows[2]);

    // The whole log against the reference: what `taxon monitor drift` computes.
    let reference = Profile::read_from_model(&model).unwrap();
    let labels: Vec<String> = LABELS.iter().map(|l| l.to_string()).collect();
    let (current, _) = profile_log(&log, "linear", &labels).unwrap();
    let want = compare(&reference, &current, &Thresholds::default()).unwrap();
    for f in &want.features {
        let row = &html[html
            .find(&format!("<tr data-feature=\"{}\">", f.name))
            .unwrap_or_else(|| panic!("no row for {}", f.name))..];
        let shown: f64 = text_after(row, "data-value=\"\"").parse().unwrap();
        assert!((shown - f.value).abs() <= 5e-5, "{}: {shown}", f.name);
    }
    let tokens = &html[html.find("<figure data-drift=\"tokens\">").unwrap()..];
    let tokens = &tokens[..tokens.find("</figure>").unwrap()];
    assert!(tokens.contains("data-threshold"), "the threshold is drawn");
    assert!(
        tokens.contains("data-alarm"),
        "the drifting window is marked"
    );
    assert!(html.contains("data-chart=\"predictions-by-label\""));
    assert!(html.contains("data-chart=\"latency\""));
    assert!(html.contains("data-chart=\"accuracy\""));

    // Alerts: both, newest first; the hostile one escaped and still firing.
    assert_eq!(text_after(&html, "data-total=\"alerts\""), "2");
    assert_eq!(text_after(&html, "data-total=\"firing\""), "1");
    assert!(!html.contains("<script>"), "unescaped rule name");
    let hostile = &html[html.find("data-alert=\"2\"").unwrap()..];
    assert!(hostile.contains("&lt;script&gt;x&lt;/script&gt;"));
    assert!(hostile[..hostile.find("</tr>").unwrap()].contains("still firing"));
    let resolved = &html[html.find("data-alert=\"1\"").unwrap()..];
    let resolved = &resolved[..resolved.find("</tr>").unwrap()];
    assert!(
        resolved.contains("firing → hook: sent after 2 tries"),
        "{resolved}"
    );
    assert!(resolved.contains("0.2500") && resolved.contains("0.5000"));
    assert!(resolved.contains("2023-11-14T22:16:00"), "{resolved}");
    // Accessibility: every table header has a scope, the window input a label.
    assert!(!html.contains("<th>"), "a header without scope");
    assert!(html.contains("<label for=\"window\">"));
}

#[tokio::test]
async fn missing_sources_are_said_not_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let html = get(tmp.path(), Sources::default(), "/monitor").await;
    assert!(html.contains("data-missing=\"log\""));
    assert!(html.contains("data-missing=\"alerts\""));
    assert!(html.contains("aria-current=\"page\">Monitoring"));

    // A log without a reference: no drift, said why; a bad window value falls back.
    let log = tmp.path().join("log");
    write_log(&log);
    let sources = Sources {
        prediction_log: Some(log),
        ..Sources::default()
    };
    let html = get(tmp.path(), sources, "/monitor?window=soon").await;
    assert!(html.contains("data-missing=\"reference\""), "{html}");
    assert!(html.contains("not in this project"), "{html}");
    assert!(html.contains("“soon” is not a whole number"));
    assert_eq!(text_after(&html, "data-total=\"predictions\""), "6");

    // A folder that is not a log.
    let sources = Sources {
        prediction_log: Some(tmp.path().join("nowhere")),
        ..Sources::default()
    };
    let html = get(tmp.path(), sources, "/monitor").await;
    assert!(html.contains("data-missing=\"log\"") && html.contains("nowhere"));
}

#[test]
fn only_the_newest_files_are_read_past_the_byte_cap() {
    let tmp = tempfile::tempdir().unwrap();
    let mut opts = LogOptions::new(tmp.path());
    opts.max_file_bytes = 300;
    let mut w = LogWriter::start(opts).unwrap();
    for i in 0..20 {
        w.log(prediction(
            &i.to_string(),
            T0 + f64::from(i),
            "sport",
            1.0,
            5,
        ));
    }
    w.close();
    let all = super::window::read_log(tmp.path(), u64::MAX).unwrap();
    assert!(!all.capped() && all.predictions.len() == 20);
    let some = super::window::read_log(tmp.path(), 700).unwrap();
    assert!(some.capped() && some.files_read < some.files_total);
    assert!(some.bytes_read <= 700);
    // The newest are kept.
    assert_eq!(some.predictions.last().unwrap().time, T0 + 19.0);
    assert!(some.predictions.len() < 20);
}
