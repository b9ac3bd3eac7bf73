//! The HTTP API: three route groups and the layer that observes every request.
//!
//! - [`public_routes`]: `/health`, `/ready`, `/metrics`, `/openapi.json`, `/docs`;
//! - [`predict_routes`]: `POST /v1/predict`, `POST /v1/predict/batch`, `GET /v1/models`;
//! - [`admin_routes`]: `POST /v1/admin/reload`, `PUT /v1/admin/aliases/{alias}`,
//!   `POST /v1/admin/retrain` (Alertmanager's webhook receiver).
//!
//! [`app`] merges them as they are. [`router`] is the seam for authentication: it takes one
//! function per protected group, called with the group's `Router<AppState>` before merging, so
//! a caller adds `route_layer(...)` (or anything else) to predictions and to admin separately,
//! while the public group stays open. Unknown routes and methods get JSON 404 and 405 bodies.
//! The outermost layer (`observe`) assigns the request id, counts in-flight requests and
//! records `taxon_requests_total` and `taxon_request_duration_seconds`, so answers produced by
//! a guard (401, 403) are counted too. The access log is at debug level.

mod admin;
pub mod docs;
mod error;
mod extract;
mod feedback;
mod models;
mod observe;
pub mod openapi;
mod ops;
mod predict;
mod retrain;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

pub use error::{ApiError, ErrorBody, ErrorKind};
pub use extract::{FieldKind, Shape, TextProblem, check_text, json_body, parse};
pub use models::{ModelInfo, ModelsResponse};
pub use predict::{
    BatchRequest, BatchResponse, ModelRef, PredictRequest, PredictResponse, Prediction, Scores,
};

use crate::state::AppState;

/// The whole API, without authentication.
pub fn app(state: AppState) -> Router {
    router(state, Router::new(), |r| r, |r| r)
}

/// The whole API, with `extra_public` routes (`POST /token` when auth is on) merged into the
/// public group, `guard_predict` applied to [`predict_routes`] and `guard_admin` to
/// [`admin_routes`] (for example `|r| auth.guard(r, Scope::Admin)`).
pub fn router(
    state: AppState,
    extra_public: Router<AppState>,
    guard_predict: impl FnOnce(Router<AppState>) -> Router<AppState>,
    guard_admin: impl FnOnce(Router<AppState>) -> Router<AppState>,
) -> Router {
    Router::new()
        .merge(public_routes())
        .merge(extra_public)
        .merge(guard_predict(predict_routes()))
        .merge(guard_admin(admin_routes()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(observe::ObserveLayer::new(state.clone()))
        .with_state(state)
}

/// `/health`, `/ready`, `/metrics`, `/openapi.json`, `/docs`: always public.
pub fn public_routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(docs::docs_page))
}

/// `POST /v1/predict`, `POST /v1/predict/batch`, `GET /v1/models`.
pub fn predict_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/predict", post(predict::predict))
        .route("/v1/predict/batch", post(predict::predict_batch))
        .route("/v1/models", get(models::models))
        .route("/v1/feedback", post(feedback::feedback))
}

/// `POST /v1/admin/reload`, `PUT /v1/admin/aliases/{alias}`, `POST /v1/admin/retrain`.
pub fn admin_routes() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/reload", post(admin::reload))
        .route("/v1/admin/aliases/{alias}", put(admin::move_alias))
        .route("/v1/admin/retrain", post(retrain::retrain))
}

async fn not_found(req: Request) -> Response {
    ApiError::not_found(req.method().as_str(), req.uri().path()).into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::method_not_allowed(req.method().as_str(), req.uri().path()).into_response()
}

/// `value` as a JSON response with `status`.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, value: &T) -> Response {
    // Most answers are a few hundred bytes: one allocation, no regrowth.
    let mut bytes = Vec::with_capacity(512);
    match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(e) => {
            let mut response = Response::new(Body::from(format!(
                "{{\"error\":\"could not serialize the response: {}\",\"error_type\":\"internal\"}}",
                e.to_string().replace(['"', '\\'], "'")
            )));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
    }
}

#[cfg(test)]
mod tests;
