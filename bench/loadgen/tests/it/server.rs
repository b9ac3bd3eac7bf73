//! A tiny predict-like server on 127.0.0.1:0 whose answers are known in advance: request n
//! (from 0) gets 500 when n is 5, 503 with `Retry-After` when n is a multiple of 7, else 200
//! with `model.version` "1" for n < 50 and "2" after; it counts what it answered.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

/// What the server answered.
#[derive(Default)]
pub struct Served {
    pub total: AtomicU64,
    pub ok_v1: AtomicU64,
    pub ok_v2: AtomicU64,
    pub unavailable: AtomicU64,
    pub internal_error: AtomicU64,
    pub bad_body: AtomicU64,
    pub texts: Mutex<HashSet<String>>,
}

impl Served {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::SeqCst)
    }
}

/// Starts the server; returns its address and its counters.
pub async fn start() -> (SocketAddr, Arc<Served>) {
    let served = Arc::new(Served::default());
    let app = Router::new()
        .route("/v1/predict", post(predict))
        .route("/slow", post(slow))
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, served)
}

async fn predict(State(served): State<Arc<Served>>, headers: HeaderMap, body: String) -> Response {
    let n = served.total.fetch_add(1, Ordering::SeqCst);
    let text = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("text").and_then(|t| t.as_str()).map(str::to_owned));
    let json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json");
    let Some(text) = text.filter(|_| json) else {
        served.bad_body.fetch_add(1, Ordering::SeqCst);
        return StatusCode::BAD_REQUEST.into_response();
    };
    served.texts.lock().unwrap().insert(text);
    if n == 5 {
        served.internal_error.fetch_add(1, Ordering::SeqCst);
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    if n % 7 == 0 {
        served.unavailable.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
        )
            .into_response();
    }
    let version = if n < 50 {
        served.ok_v1.fetch_add(1, Ordering::SeqCst);
        "1"
    } else {
        served.ok_v2.fetch_add(1, Ordering::SeqCst);
        "2"
    };
    axum::Json(serde_json::json!({
        "label": "sport",
        "scores": {"sport": 0.9, "tech": 0.1},
        "model": {"name": "test", "version": version},
        "cached": false,
    }))
    .into_response()
}

async fn slow() -> StatusCode {
    tokio::time::sleep(Duration::from_secs(2)).await;
    StatusCode::OK
}
