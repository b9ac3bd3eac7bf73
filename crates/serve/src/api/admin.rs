//! `POST /v1/admin/reload`: ask the model source now and swap if it names another version.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::error::{ApiError, ErrorBody};
use super::json_response;
use crate::error::ServeError;
use crate::reload::ReloadOutcome;
use crate::state::AppState;

/// Reload the model from its source.
///
/// Asks the source what to serve; when it names another version, loads, warms up and
/// self-tests it, then swaps it in without failing a request. On failure the old model keeps
/// serving.
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    tag = "admin",
    responses(
        (status = 200, description = "The check ran; `swapped` says whether the model changed", body = ReloadOutcome),
        (status = 500, description = "The new model failed to load or to pass its self-test", body = ErrorBody),
        (status = 502, description = "The source could not say what to serve", body = ErrorBody),
    )
)]
pub async fn reload(State(state): State<AppState>) -> Response {
    match state.reload().await {
        Ok(outcome) => json_response(StatusCode::OK, &outcome),
        Err(e) => {
            let (status, kind) = match &e {
                ServeError::Source(_) => (StatusCode::BAD_GATEWAY, "source_unavailable"),
                _ => (StatusCode::INTERNAL_SERVER_ERROR, "model_load_failed"),
            };
            let current = state.model();
            ApiError::new(
                status,
                kind,
                format!("{e} (still serving {}@{})", current.name, current.version),
            )
            .into_response()
        }
    }
}
