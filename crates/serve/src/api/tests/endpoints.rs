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
    let plain = get(&s.app, "/metrics").await;
    assert!(
        plain.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("version=0.0.4")
    );
    assert!(
        plain.text().contains("# TYPE taxon_requests_total counter")
            && !plain.text().contains("# EOF")
    );
    let a = send(
        &s.app,
        http::Request::get("/metrics")
            .header("accept", "application/openmetrics-text; version=1.0.0")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
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
    // A feedback label can only be one of the served model's labels (else 422 unknown_label).
    let labels = &v["components"]["schemas"]["FeedbackItem"]["properties"]["label"]["enum"];
    assert!(
        labels.as_array().is_some_and(|l| !l.is_empty()),
        "{}",
        v["components"]["schemas"]["FeedbackItem"]
    );
    // Both prediction routes document the model error answer.
    for path in ["/v1/predict", "/v1/predict/batch"] {
        let answer = &v["paths"][path]["post"]["responses"]["500"];
        let description = answer["description"].as_str().unwrap_or_default();
        assert!(description.starts_with("model_error"), "{path}: {answer}");
    }
    // Auth, as the server runs it: the password flow at /token, scopes per route, and the
    // answers a guard and the limits give.
    let flow = &v["components"]["securitySchemes"]["oauth2"]["flows"]["password"];
    assert_eq!(flow["tokenUrl"], "/token", "{v}");
    assert!(flow["scopes"]["predict"].is_string() && flow["scopes"]["admin"].is_string());
    assert!(v["paths"]["/token"]["post"]["responses"]["429"].is_object());
    assert!(v["paths"]["/token"]["post"]["responses"]["413"].is_object());
    for (path, method, scope) in [
        ("/v1/predict", "post", "predict"),
        ("/v1/predict/batch", "post", "predict"),
        ("/v1/models", "get", "predict"),
        ("/v1/admin/reload", "post", "admin"),
        ("/v1/admin/aliases/{alias}", "put", "admin"),
    ] {
        let op = &v["paths"][path][method];
        assert_eq!(op["security"][1]["oauth2"][0], scope, "{path}: {op}");
        for status in ["401", "403"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
    }
    for path in [
        "/v1/predict",
        "/v1/predict/batch",
        "/v1/admin/aliases/{alias}",
    ] {
        let op = v["paths"][path]
            .as_object()
            .unwrap()
            .values()
            .next()
            .unwrap();
        for status in ["408", "413", "415"] {
            assert!(op["responses"][status].is_object(), "{path} {status}");
        }
    }
    // An empty text is not valid in the schema (it is answered 422), and alias names have
    // the registry's pattern.
    let text = &v["components"]["schemas"]["PredictRequest"]["properties"]["text"];
    assert_eq!(text["minLength"], 1, "{text}");
    assert_eq!(text["pattern"], "\\S", "{text}");
    let alias = &v["components"]["schemas"]["AliasName"];
    assert!(
        alias["pattern"]
            .as_str()
            .unwrap()
            .starts_with("^(?!latest$)"),
        "{alias}"
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_the_model_cannot_read_is_flagged_with_uniform_scores() {
    let s = server(ServeConfig::default()).await;
    let read = predict(&s.app, "the striker scored a goal").await.json();
    assert!(read["known_tokens"].as_u64().unwrap() > 0, "{read}");
    for _ in 0..2 {
        // The second answer comes from the cache, with the same flag.
        let answer = predict(&s.app, "!!! \u{1F600}").await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        let body = answer.json();
        assert_eq!(body["known_tokens"], 0, "{body}");
        for (_, p) in body["scores"].as_object().unwrap() {
            assert!((p.as_f64().unwrap() - 0.5).abs() < 1e-6, "{body}");
        }
    }
    let batch = post_json(
        &s.app,
        "/v1/predict/batch",
        r#"{"texts": ["the striker scored", "???"]}"#,
    )
    .await
    .json();
    assert!(
        batch["predictions"][0]["known_tokens"].as_u64().unwrap() > 0,
        "{batch}"
    );
    assert_eq!(batch["predictions"][1]["known_tokens"], 0, "{batch}");
    let metrics = get(&s.app, "/metrics").await.text();
    // The cached answer was counted when it was computed.
    assert!(
        metrics.contains("taxon_unreadable_texts_total{outcome=\"answered\"} 2"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_refuses_unreadable_texts_answers_422() {
    let s = server(ServeConfig {
        refuse_unreadable: true,
        ..ServeConfig::default()
    })
    .await;
    let answer = predict(&s.app, "!!!").await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(answer.json()["error_type"], "unreadable_text");
    assert!(
        answer.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("text: ")
    );
    let batch = post_json(
        &s.app,
        "/v1/predict/batch",
        r#"{"texts": ["the striker scored", "???"]}"#,
    )
    .await;
    assert_eq!(batch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        batch.json()["error"]
            .as_str()
            .unwrap()
            .starts_with("texts[1]: ")
    );
    assert_eq!(
        predict(&s.app, "the striker scored").await.status,
        StatusCode::OK
    );
    let metrics = get(&s.app, "/metrics").await.text();
    assert!(
        metrics.contains("taxon_unreadable_texts_total{outcome=\"refused\"} 2"),
        "{metrics}"
    );
}
