//! Operations endpoints: `/health` (the process is alive), `/ready` (a model passed its warm-up
//! and self-test and the server is not draining) and `/metrics` (Prometheus text exposition).

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use super::error::{ApiError, ErrorBody};
use super::json_response;
use crate::state::{AppState, Health};

/// `/health` and `/ready` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    /// `ok` or `ready`.
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: 200 while the process runs.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses((status = 200, description = "The process is alive", body = StatusBody))
)]
pub async fn health() -> Response {
    json_response(StatusCode::OK, &StatusBody { status: "ok" })
}

/// Readiness: 200 when a model is loaded, warmed up and self-tested; 503 while draining.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Ready for predictions", body = StatusBody),
        (status = 503, description = "Not ready (shutting down)", body = ErrorBody),
    )
)]
pub async fn ready(State(state): State<AppState>) -> Response {
    match state.health() {
        Health::Ready => json_response(StatusCode::OK, &StatusBody { status: "ready" }),
        Health::Draining => {
            ApiError::not_ready("the server is shutting down: in-flight requests are finishing")
                .into_response()
        }
    }
}

/// Prometheus metrics (OpenMetrics text format).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Metrics in the OpenMetrics text format", body = String, content_type = "application/openmetrics-text"))
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    if let Some(cache) = state.cache() {
        state
            .metrics()
            .observe_cache(cache.bytes(), cache.max_bytes());
    }
    let text = state.metrics().render(state.engine().admitted());
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    response
}
