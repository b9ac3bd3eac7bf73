//! HTTP tests through the router with `oneshot` (no socket): endpoints, error bodies, garbage
//! input, model errors, cache, backpressure and hot swap, on real linear models trained
//! in-process.

mod cache_swap;
mod endpoints;
mod errors;
mod model_errors;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::config::ServeConfig;
use crate::source::DirSource;
use crate::state::AppState;
use crate::testing::{Gate, gated_loader, train_model};

/// A started server on a model folder `dir/news` (labels sport, business).
struct TestServer {
    state: AppState,
    app: Router,
    gate: Arc<Gate>,
    model_dir: PathBuf,
    dir: tempfile::TempDir,
}

async fn server(config: ServeConfig) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let model_dir = dir.path().join("news");
    train_model(&model_dir, &["sport", "business"], 1);
    let gate = Gate::new(true);
    let source = Arc::new(DirSource::new(&model_dir).unwrap());
    let state = AppState::start_with_loader(source, config, gated_loader(Arc::clone(&gate)))
        .await
        .unwrap();
    TestServer {
        app: crate::api::app(state.clone()),
        state,
        gate,
        model_dir,
        dir,
    }
}

/// One answer: status, headers, body bytes.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: bytes::Bytes,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!("{e}: {}", String::from_utf8_lossy(&self.body));
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn send(app: &Router, req: Request<Body>) -> Answer {
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(app: &Router, path: &str) -> Answer {
    send(app, Request::get(path).body(Body::empty()).unwrap()).await
}

async fn post_json(app: &Router, path: &str, body: impl Into<Body>) -> Answer {
    send(
        app,
        Request::post(path)
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap(),
    )
    .await
}

async fn predict(app: &Router, text: &str) -> Answer {
    post_json(
        app,
        "/v1/predict",
        serde_json::json!({ "text": text }).to_string(),
    )
    .await
}

/// Trains another model (different labels and seed) and writes it over `dir`, weights first
/// and `model.json` last, as a deployment would.
fn replace_model(dir: &Path, labels: &[&str], seed: u64) {
    let fresh = tempfile::tempdir().unwrap();
    train_model(fresh.path(), labels, seed);
    std::fs::copy(
        fresh.path().join("model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    std::fs::copy(fresh.path().join("model.json"), dir.join("model.json")).unwrap();
}

/// Waits for `cond` (a state change, not a duration); fails after 20 s.
async fn wait_until(what: &str, mut cond: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
