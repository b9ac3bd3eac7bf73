//! A model that fails on a text: that request gets a 500 `model_error` (counted, never cached),
//! while the other requests of the same model batch get their real answers.

use std::sync::atomic::Ordering;

use super::*;
use crate::cache::normalize;
use crate::testing::{BUSINESS, SPORT};

const POISON: &str = "poison";

/// `/v1/predict/batch` with `texts`.
async fn predict_texts(app: &Router, texts: &[&str]) -> Answer {
    post_json(
        app,
        "/v1/predict/batch",
        serde_json::json!({ "texts": texts }).to_string(),
    )
    .await
}

/// The served model's own probabilities for `text`, computed alone.
fn alone(s: &TestServer, text: &str) -> Vec<f32> {
    s.state.model().predict(&[text]).unwrap().remove(0)
}

fn assert_scores(scores: &Value, labels: &[String], expected: &[f32]) {
    assert_eq!(scores.as_object().unwrap().len(), labels.len(), "{scores}");
    for (label, p) in labels.iter().zip(expected) {
        let got = scores[label].as_f64().unwrap() as f32;
        assert!((got - p).abs() < 1e-6, "{label}: {got} vs {p}");
    }
}

fn assert_model_error(a: &Answer) {
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.text());
    let v = a.json();
    assert_eq!(
        v.as_object().unwrap().len(),
        2,
        "exactly error and error_type: {v}"
    );
    assert_eq!(v["error_type"], "model_error", "{v}");
    let message = v["error"].as_str().unwrap();
    assert!(message.contains("model news@"), "{message}");
    assert!(
        message.contains("test model fails on \"poison\""),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_error_answers_500_for_its_request_only() {
    let s = server(ServeConfig {
        max_wait: Duration::from_millis(20),
        ..ServeConfig::default()
    })
    .await;
    *s.gate.fail_on.lock().unwrap() = Some(POISON.into());
    // Hold the model on a first request, so the others make one model batch behind it.
    s.gate.set(false);
    let calls = s.gate.calls.load(Ordering::SeqCst);
    let app = s.app.clone();
    let held = tokio::spawn(async move { predict(&app, "held back").await });
    let gate = Arc::clone(&s.gate);
    wait_until("the model to be busy", async || {
        gate.calls.load(Ordering::SeqCst) > calls
    })
    .await;
    let poisoned = format!("{SPORT} {POISON}");
    let good = [SPORT, BUSINESS, "goal match league"];
    let spawn = |req: Request<Body>| {
        let app = s.app.clone();
        tokio::spawn(async move { send(&app, req).await })
    };
    let json_post = |path: &str, body: Value, id: &str| {
        Request::post(path)
            .header("content-type", "application/json")
            .header("x-request-id", id)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let good_tasks: Vec<_> = good
        .iter()
        .enumerate()
        .map(|(i, t)| {
            spawn(json_post(
                "/v1/predict",
                serde_json::json!({ "text": t }),
                &format!("good-{i}"),
            ))
        })
        .collect();
    let bad_task = spawn(json_post(
        "/v1/predict",
        serde_json::json!({ "text": poisoned }),
        "bad-1",
    ));
    let good_batch = spawn(json_post(
        "/v1/predict/batch",
        serde_json::json!({ "texts": [BUSINESS, SPORT] }),
        "good-batch",
    ));
    let bad_batch = spawn(json_post(
        "/v1/predict/batch",
        serde_json::json!({ "texts": [BUSINESS, "a poison pill"] }),
        "bad-batch",
    ));
    let state = s.state.clone();
    wait_until("every request to be queued", async || {
        state.engine().admitted() == 1 + 3 + 1 + 2 + 2
    })
    .await;
    s.gate.set(true);
    assert_eq!(held.await.unwrap().status, StatusCode::OK);

    let labels = s.state.model().labels.clone();
    for (task, text) in good_tasks.into_iter().zip(good) {
        let a = task.await.unwrap();
        assert_eq!(a.status, StatusCode::OK, "{}", a.text());
        assert_scores(&a.json()["scores"], &labels, &alone(&s, text));
    }
    let a = good_batch.await.unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.text());
    let v = a.json();
    assert_scores(
        &v["predictions"][0]["scores"],
        &labels,
        &alone(&s, BUSINESS),
    );
    assert_scores(&v["predictions"][1]["scores"], &labels, &alone(&s, SPORT));
    for (task, id) in [(bad_task, "bad-1"), (bad_batch, "bad-batch")] {
        let a = task.await.unwrap();
        assert_model_error(&a);
        assert_eq!(a.headers["x-request-id"], id);
    }
    let metrics = get(&s.app, "/metrics").await.text();
    assert!(metrics.contains("taxon_model_errors_total 2"), "{metrics}");
    assert!(
        metrics.contains("taxon_requests_total{route=\"/v1/predict\",status=\"500\"} 1"),
        "{metrics}"
    );
    assert_eq!(s.state.metrics().model_errors(), 2);

    // Nothing of the failure was cached: the same text fails again, while a good text that
    // was answered is a cache hit.
    let model = s.state.model();
    let cache = s.state.cache().unwrap();
    let key = normalize(&poisoned, model.input.lowercase);
    assert!(cache.get(model.seq, &key).is_none());
    assert_model_error(&predict(&s.app, &poisoned).await);
    assert_eq!(s.state.metrics().model_errors(), 3);
    assert_eq!(predict(&s.app, SPORT).await.json()["cached"], true);
    // And the server goes on serving.
    assert_eq!(
        predict_texts(&s.app, &[BUSINESS]).await.status,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_model_answers_500_model_error() {
    let s = server(ServeConfig::default()).await;
    *s.gate.panic_on.lock().unwrap() = Some("boom".into());
    let a = predict(&s.app, "boom goes the text").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", a.text());
    let v = a.json();
    assert_eq!(v["error_type"], "model_error", "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("model panicked"),
        "{v}"
    );
    assert_eq!(s.state.metrics().model_errors(), 1);
    assert_eq!(predict(&s.app, SPORT).await.status, StatusCode::OK);
}
