//! `POST /v1/feedback`, live accuracy in `/metrics`, and the prediction log.

use super::*;
use crate::monitor::MonitorConfig;
use crate::testing::{BUSINESS, SPORT};

fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn feedback_drives_model_accuracy_and_rejects_unknowns() {
    let t = server(ServeConfig {
        cache_capacity: 0,
        ..ServeConfig::default()
    })
    .await;
    let version = t.state.model().version.clone();
    let a = predict(&t.app, SPORT).await;
    assert_eq!(a.status, StatusCode::OK);
    let (id_a, label_a) = (
        a.json()["request_id"].as_str().unwrap().to_string(),
        a.json()["label"].as_str().unwrap().to_string(),
    );
    let b = post_json(
        &t.app,
        "/v1/predict/batch",
        serde_json::json!({"texts": [SPORT, BUSINESS]}).to_string(),
    )
    .await;
    let id_b = b.json()["request_id"].as_str().unwrap().to_string();
    let wrong = if label_a == "sport" {
        "business"
    } else {
        "sport"
    };

    let r = post_json(
        &t.app,
        "/v1/feedback",
        serde_json::json!({"request_id": id_a, "label": label_a}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"recorded": 1, "correct": 1}));
    let r = post_json(
        &t.app,
        "/v1/feedback",
        serde_json::json!({"feedback": [
            {"request_id": format!("{id_b}/0"), "label": wrong},
            {"request_id": format!("{id_b}/1"), "label": wrong},
        ]})
        .to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["recorded"], 2);

    let m = get(&t.app, "/metrics").await.text();
    let acc = metric(
        &m,
        &format!("model_accuracy{{model_version=\"{version}\"}}"),
    )
    .unwrap();
    let want = (1 + r.json()["correct"].as_u64().unwrap()) as f64 / 3.0;
    assert!((acc - want).abs() < 1e-9, "{acc} vs {want}\n{m}");
    assert!(m.contains("taxon_live_recall{"), "{m}");
    // The monitor's families join the exposition once, with their HELP and TYPE.
    assert_eq!(m.matches("# TYPE model_accuracy gauge").count(), 1, "{m}");
    assert_eq!(
        m.matches("# TYPE prediction_latency_seconds summary")
            .count(),
        1,
        "{m}"
    );

    let r = post_json(
        &t.app,
        "/v1/feedback",
        serde_json::json!({"request_id": "nope", "label": "sport"}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.json()["error_type"], "unknown_request");
    let r = post_json(
        &t.app,
        "/v1/feedback",
        serde_json::json!({"request_id": id_a, "label": "weather"}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error_type"], "unknown_label");
    assert!(r.json()["error"].as_str().unwrap().contains("weather"));
    // A batch with one bad item records nothing.
    let r = post_json(
        &t.app,
        "/v1/feedback",
        serde_json::json!({"feedback": [{"request_id": id_a, "label": label_a}, {"request_id": "nope", "label": "sport"}]}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("feedback[1]")
    );
    let m2 = get(&t.app, "/metrics").await.text();
    assert_eq!(
        metric(&m2, "taxon_feedback_total{result=\"correct\"}"),
        metric(&m, "taxon_feedback_total{result=\"correct\"}")
    );
    let r = post_json(&t.app, "/v1/feedback", "{\"request_id\": 3}").await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.json()["error_type"], "invalid_request");
}

#[tokio::test]
async fn predictions_and_feedback_go_to_the_log() {
    let log_dir = tempfile::tempdir().unwrap();
    let t = server(ServeConfig {
        cache_capacity: 0,
        monitor: MonitorConfig {
            prediction_log: Some(log_dir.path().to_path_buf()),
            log_text: true,
            ..MonitorConfig::default()
        },
        ..ServeConfig::default()
    })
    .await;
    let a = predict(&t.app, SPORT).await;
    let id = a.json()["request_id"].as_str().unwrap().to_string();
    post_json(
        &t.app,
        "/v1/predict/batch",
        serde_json::json!({"texts": [BUSINESS, SPORT]}).to_string(),
    )
    .await;
    let r = post_json(
        &t.app,
        "/v1/feedback",
        serde_json::json!({"request_id": id, "label": "sport"}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    t.state.shutdown().await;
    let mut recs = Vec::new();
    taxon_monitor::log::read_dir(log_dir.path(), &mut |r| recs.push(r)).unwrap();
    use taxon_monitor::log::LogRecord;
    let preds: Vec<_> = recs
        .iter()
        .filter_map(|r| match r {
            LogRecord::Prediction(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(preds.len(), 3);
    assert_eq!(preds[0].request_id, id);
    assert_eq!(preds[0].text.as_deref(), Some(SPORT));
    assert!(preds[0].tokens > 0 && preds[0].latency_ms >= 0.0);
    assert_eq!(preds[0].scores.len(), 2);
    assert!(
        preds
            .iter()
            .any(|p| p.request_id.ends_with("/1") && p.text.as_deref() == Some(SPORT))
    );
    assert!(
        recs.iter().any(
            |r| matches!(r, LogRecord::Feedback(f) if f.request_id == id && f.label == "sport")
        )
    );
}

#[tokio::test]
async fn texts_stay_out_of_the_log_without_opt_in() {
    let log_dir = tempfile::tempdir().unwrap();
    let t = server(ServeConfig {
        monitor: MonitorConfig {
            prediction_log: Some(log_dir.path().to_path_buf()),
            ..MonitorConfig::default()
        },
        ..ServeConfig::default()
    })
    .await;
    predict(&t.app, SPORT).await;
    t.state.shutdown().await;
    let raw: String = taxon_monitor::log::log_files(log_dir.path())
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(raw.contains("\"type\":\"prediction\""), "{raw}");
    assert!(!raw.contains("striker"), "{raw}");
}

/// Writes `model_dir`'s reference profile from `texts` (the model on them), then serves it
/// with cache off and `monitor`; returns the app and the served version.
async fn serve_profiled(
    model_dir: &Path,
    texts: &[String],
    monitor: MonitorConfig,
) -> (axum::Router, String) {
    let model = taxon_models::load(model_dir).unwrap();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let model_type = model.describe().model_type;
    let mut profile = taxon_monitor::Profile::new(&model_type, model.labels(), "test");
    profile.observe_texts(model.as_ref(), &refs, 64).unwrap();
    profile.write_to_model(model_dir).unwrap();
    let source = Arc::new(DirSource::new(model_dir).unwrap());
    let config = ServeConfig {
        cache_capacity: 0,
        monitor,
        ..ServeConfig::default()
    };
    let state = AppState::start(source, config).await.unwrap();
    let version = state.model().version.clone();
    (crate::api::app(state), version)
}

/// Texts like the test model's training data.
fn news_texts() -> Vec<String> {
    (0..200)
        .map(|i| format!("{} {}", if i % 2 == 0 { SPORT } else { BUSINESS }, i % 20))
        .collect()
}

#[tokio::test]
async fn online_window_drifts_on_unknown_words_against_the_models_profile() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("news");
    crate::testing::train_model(&model_dir, &["sport", "business"], 1);
    // The reference profile: the model on texts like its training data.
    let texts = news_texts();
    let monitor = MonitorConfig {
        drift_window: 100,
        ..MonitorConfig::default()
    };
    let (app, version) = serve_profiled(&model_dir, &texts, monitor).await;
    for t in &texts[..100] {
        predict(&app, t).await;
    }
    let m = get(&app, "/metrics").await.text();
    assert!(
        m.contains(&format!(
            "taxon_drift_detected{{model_version=\"{version}\"}} 0"
        )),
        "{m}"
    );
    assert!(
        m.contains("taxon_drift_score{feature=\"unknown_share\""),
        "{m}"
    );
    // Words the model never saw fill the window.
    for i in 0..100 {
        predict(&app, &format!("quantum lattice enzyme galaxy photon {i}")).await;
    }
    let m = get(&app, "/metrics").await.text();
    assert!(
        m.contains(&format!(
            "taxon_drift_detected{{model_version=\"{version}\"}} 1"
        )),
        "{m}"
    );
}

#[tokio::test]
async fn a_bert_window_watches_the_projected_embedding() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("bert");
    crate::testing::write_tiny_bert(&model_dir, 16);
    let news = |i: usize| {
        let w = &crate::testing::BERT_WORDS;
        format!(
            "{} {} {} {}",
            w[i % 12],
            w[(i * 5 + 1) % 12],
            w[(i * 7 + 2) % 12],
            w[(i + 3) % 12]
        )
    };
    let texts: Vec<String> = (0..200).map(news).collect();
    let monitor = MonitorConfig {
        drift_window: 100,
        ..MonitorConfig::default()
    };
    let (app, _) = serve_profiled(&model_dir, &texts, monitor).await;
    let profile = taxon_monitor::Profile::read_from_model(&model_dir).unwrap();
    assert!(profile.projection.is_some());
    let embedding0 = |m: &str| metric(m, "taxon_drift_score{feature=\"embedding:0\"");
    for t in &texts[..100] {
        predict(&app, t).await;
    }
    let m = get(&app, "/metrics").await.text();
    let like = embedding0(&m).unwrap_or_else(|| panic!("{m}"));
    // The same two words over and over: the encoder sees something else.
    for _ in 0..100 {
        predict(&app, "bank bank bank bank").await;
    }
    let m = get(&app, "/metrics").await.text();
    let moved = embedding0(&m).unwrap();
    assert!(moved > 3.0 * like && moved > 0.5, "{like} -> {moved}: {m}");
}

#[tokio::test]
async fn a_time_window_forgets_old_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("news");
    crate::testing::train_model(&model_dir, &["sport", "business"], 1);
    let texts = news_texts();
    let monitor = MonitorConfig {
        drift_window: 1_000,
        drift_window_seconds: 1,
        ..MonitorConfig::default()
    };
    let (app, version) = serve_profiled(&model_dir, &texts, monitor).await;
    let detected = |m: &str, v: u8| {
        m.contains(&format!(
            "taxon_drift_detected{{model_version=\"{version}\"}} {v}"
        ))
    };
    // Drifted traffic fills the window: drift.
    for i in 0..100 {
        predict(&app, &format!("quantum lattice enzyme galaxy photon {i}")).await;
    }
    let m = get(&app, "/metrics").await.text();
    assert!(detected(&m, 1), "{m}");
    // A second later the drifted predictions no longer count: with nothing recent, no drift
    // series at all (an alert on it resolves).
    tokio::time::sleep(std::time::Duration::from_millis(1_300)).await;
    let m = get(&app, "/metrics").await.text();
    assert!(!m.contains("taxon_drift_detected{"), "{m}");
    // Normal traffic after it is judged alone, although the ring still holds the old ones.
    for t in &texts[..100] {
        predict(&app, t).await;
    }
    let m = get(&app, "/metrics").await.text();
    assert!(detected(&m, 0), "{m}");
}

#[tokio::test]
async fn monitoring_off_remembers_and_counts_nothing() {
    let t = server(ServeConfig {
        monitor: MonitorConfig {
            enabled: false,
            ..MonitorConfig::default()
        },
        ..ServeConfig::default()
    })
    .await;
    let a = predict(&t.app, SPORT).await;
    assert_eq!(a.status, StatusCode::OK);
    let id = a.json()["request_id"].as_str().unwrap().to_string();
    let r = post_json(
        &t.app,
        "/v1/feedback",
        serde_json::json!({"request_id": id, "label": "sport"}).to_string(),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let m = get(&t.app, "/metrics").await.text();
    assert!(!m.contains("predictions_total{"), "{m}");
    assert!(m.contains("prediction_latency_seconds_count 0"), "{m}");
}
