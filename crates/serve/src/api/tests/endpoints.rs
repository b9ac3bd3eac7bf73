//! The endpoints' answers on valid requests.

use super::*;
use crate::testing::{BUSINESS, SPORT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predict_answers_label_scores_model_and_request_id() {
    let s = server(ServeConfig::default()).await;
    let a = predict(&s.app, SPORT).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_eq!(v["label"], "sport");
    let scores = v["scores"].as_object().unwrap();
    assert_eq!(scores.keys().collect::<Vec<_>>(), ["business", "sport"]);
    let sum: f64 = scores.values().map(|p| p.as_f64().unwrap()).sum();
    assert!((sum - 1.0).abs() < 1e-3, "{sum}");
    assert_eq!(v["model"]["name"], "news");
    assert_eq!(v["model"]["version"].as_str().unwrap().len(), 12);
    assert_eq!(v["cached"], false);
    let id = v["request_id"].as_str().unwrap();
    assert_eq!(a.headers["x-request-id"], id);
    assert_eq!(a.headers["content-type"], "application/json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_request_id_is_echoed() {
    let s = server(ServeConfig::default()).await;
    let req = Request::post("/v1/predict")
        .header("content-type", "application/json")
        .header("x-request-id", "trace-123")
        .body(Body::from(r#"{"text": "the bank"}"#))
        .unwrap();
    let a = send(&s.app, req).await;
    assert_eq!(a.json()["request_id"], "trace-123");
    assert_eq!(a.headers["x-request-id"], "trace-123");
    // Errors carry it in the header too.
    let req = Request::post("/v1/predict")
        .header("content-type", "application/json")
        .header("x-request-id", "trace-456")
        .body(Body::from(r#"{"text": ""}"#))
        .unwrap();
    let a = send(&s.app, req).await;
    assert_eq!(a.headers["x-request-id"], "trace-456");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_predicts_every_text_in_order() {
    let s = server(ServeConfig::default()).await;
    let body = serde_json::json!({"texts": [SPORT, BUSINESS, "a goal in the match", "profit"]});
    let a = post_json(&s.app, "/v1/predict/batch", body.to_string()).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    let labels: Vec<&str> = v["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["sport", "business", "sport", "business"]);
    assert_eq!(v["model"]["name"], "news");
    assert_eq!(a.headers["x-request-id"], v["request_id"].as_str().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_describes_the_model_and_the_limits() {
    let s = server(ServeConfig::default()).await;
    let v = get(&s.app, "/v1/models").await.json();
    let m = &v["models"][0];
    assert_eq!(m["name"], "news");
    assert_eq!(m["model_type"], "linear");
    assert_eq!(m["labels"], serde_json::json!(["sport", "business"]));
    assert_eq!(m["input"]["lowercase"], true);
    assert!(m["source"].as_str().unwrap().starts_with("folder "));
    assert!(m["loaded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(v["limits"]["max_batch_texts"], 256);
    assert_eq!(v["limits"]["max_text_chars"], 20000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_ready_and_drain() {
    let s = server(ServeConfig::default()).await;
    let a = get(&s.app, "/health").await;
    assert_eq!(
        (a.status, a.json()["status"].clone()),
        (StatusCode::OK, "ok".into())
    );
    assert_eq!(get(&s.app, "/ready").await.status, StatusCode::OK);
    s.state.begin_drain();
    let a = get(&s.app, "/ready").await;
    assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(a.json()["error_type"], "not_ready");
    assert_eq!(get(&s.app, "/health").await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_batches_and_the_model() {
    let s = server(ServeConfig::default()).await;
    predict(&s.app, SPORT).await;
    predict(&s.app, "").await;
    get(&s.app, "/nowhere").await;
    let a = get(&s.app, "/metrics").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("openmetrics-text")
    );
    let text = a.text();
    let version = s.state.model().version.clone();
    for needle in [
        "taxon_requests_total{route=\"/v1/predict\",status=\"200\"} 1".to_string(),
        "taxon_requests_total{route=\"/v1/predict\",status=\"422\"} 1".into(),
        "taxon_requests_total{route=\"unmatched\",status=\"404\"} 1".into(),
        "taxon_request_duration_seconds_count{route=\"/v1/predict\"} 2".into(),
        "taxon_batch_size_count 1".into(),
        "taxon_batch_tokens_sum 9".into(),
        "taxon_cache_misses_total 1".into(),
        format!("taxon_model_info{{name=\"news\",version=\"{version}\"}} 1"),
        // This scrape itself is in flight.
        "taxon_inflight_requests 1".into(),
        "taxon_queue_depth 0".into(),
    ] {
        assert!(text.contains(&needle), "{needle} missing from\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_document_and_docs_page() {
    let s = server(ServeConfig::default()).await;
    let v = get(&s.app, "/openapi.json").await.json();
    assert!(v["openapi"].as_str().unwrap().starts_with("3."));
    for (path, method) in [
        ("/v1/predict", "post"),
        ("/v1/predict/batch", "post"),
        ("/v1/models", "get"),
        ("/health", "get"),
        ("/ready", "get"),
        ("/metrics", "get"),
        ("/v1/admin/reload", "post"),
        ("/openapi.json", "get"),
        ("/docs", "get"),
    ] {
        assert!(v["paths"][path][method].is_object(), "{method} {path}");
    }
    for schema in [
        "PredictRequest",
        "PredictResponse",
        "BatchResponse",
        "ErrorBody",
        "ModelsResponse",
    ] {
        assert!(v["components"]["schemas"][schema].is_object(), "{schema}");
    }
    // Both prediction routes document the model error answer.
    for path in ["/v1/predict", "/v1/predict/batch"] {
        let answer = &v["paths"][path]["post"]["responses"]["500"];
        let description = answer["description"].as_str().unwrap_or_default();
        assert!(description.starts_with("model_error"), "{path}: {answer}");
    }
    let a = get(&s.app, "/docs").await;
    assert_eq!(a.headers["content-type"], "text/html; charset=utf-8");
    let html = a.text();
    assert!(html.contains("<code>/v1/predict/batch</code>"));
    assert!(html.contains("curl -s -X POST"));
    assert!(html.contains("model_error: the model failed on this text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_requests_share_model_batches() {
    let s = server(ServeConfig {
        max_wait: Duration::from_millis(20),
        ..ServeConfig::default()
    })
    .await;
    // Hold the model on the first request so the others pile up behind it.
    s.gate.set(false);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let app = s.app.clone();
            tokio::spawn(async move { predict(&app, &format!("{SPORT} {i}")).await.status })
        })
        .collect();
    let state = s.state.clone();
    wait_until("all 50 requests to be queued", async || {
        state.engine().admitted() == 50
    })
    .await;
    s.gate.set(true);
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    let (texts, batches) = s.state.metrics().batches();
    assert_eq!(texts, 50);
    // The batch the worker was holding, then everything queued behind it.
    assert!(batches <= 2, "{batches} batches for 50 concurrent requests");
}
