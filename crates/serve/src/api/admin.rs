//! The admin endpoints: `POST /v1/admin/reload` (ask the model source now and swap if it names
//! another version) and `PUT /v1/admin/aliases/{alias}` (move a registry alias, then reload).

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use taxon_auth::Claims;

use super::error::{ApiError, ErrorBody, ErrorKind};
use super::extract::{FieldKind, Shape, json_body, parse};
use super::json_response;
use crate::error::ServeError;
use crate::reload::ReloadOutcome;
use crate::source::{AliasMove, SourceError};
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
            let kind = match &e {
                ServeError::Source(_) => ErrorKind::SourceUnavailable,
                _ => ErrorKind::ModelLoadFailed,
            };
            let current = state.model();
            ApiError::new(
                kind,
                format!("{e} (still serving {}@{})", current.name, current.version),
            )
            .into_response()
        }
    }
}

/// `PUT /v1/admin/aliases/{alias}` body.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AliasRequest {
    /// The registered version the alias should point at.
    #[schema(example = 3)]
    pub version: u64,
    /// Override the promotion gate (a `production` version whose metric is worse).
    #[serde(default)]
    pub force: bool,
}

/// What an alias change did.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AliasResponse {
    /// The change, as the registry's alias history records it.
    pub change: AliasMove,
    /// The reload that followed when the moved alias is the one served (else null).
    pub reload: Option<ReloadOutcome>,
}

/// Move a registry alias (the served one, or any other of the served model).
///
/// Records the change in the registry's alias history with the caller's user name; moving
/// `production` to a version with a worse evaluation metric is refused (409) unless `force`.
/// When the moved alias is the one this server follows, the new version is loaded, warmed up
/// and swapped in before the answer.
#[utoipa::path(
    put,
    path = "/v1/admin/aliases/{alias}",
    tag = "admin",
    params(("alias" = String, Path, description = "Alias to move (`production`, `staging`, ...)")),
    request_body = AliasRequest,
    responses(
        (status = 200, description = "The alias moved (and the served model reloaded)", body = AliasResponse),
        (status = 400, description = "The server does not serve a registry alias", body = ErrorBody),
        (status = 409, description = "The promotion gate refused the version", body = ErrorBody),
        (status = 422, description = "Bad body or unknown version", body = ErrorBody),
        (status = 502, description = "The registry failed", body = ErrorBody),
    )
)]
pub async fn move_alias(
    State(state): State<AppState>,
    Path(alias): Path<String>,
    claims: Option<Extension<Claims>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let bytes = json_body(&headers, body, state.config().body_limit_bytes).await?;
        let request: AliasRequest = parse(&bytes, &ALIAS_SHAPE)?;
        let actor = claims.map_or_else(
            || "anonymous (auth off)".to_string(),
            |Extension(c)| c.sub.clone(),
        );
        let source = state.model_source();
        let moved_alias = alias.clone();
        let change = tokio::task::spawn_blocking(move || {
            source.move_alias(&moved_alias, request.version, request.force, &actor)
        })
        .await
        .map_err(|e| ApiError::internal(format!("the alias change did not finish: {e}")))?
        .map_err(|e| match e {
            SourceError::Unsupported { .. } => ApiError::new(ErrorKind::NoRegistry, e.to_string()),
            SourceError::Refused { .. } => {
                ApiError::new(ErrorKind::PromotionRefused, e.to_string())
            }
            other => ApiError::new(ErrorKind::AliasChangeFailed, other.to_string()),
        })?;
        let reload = if state.model_source().alias() == Some(alias.as_str()) {
            Some(state.reload().await.map_err(|e| {
                ApiError::new(
                    ErrorKind::ModelLoadFailed,
                    format!(
                        "the alias moved, but the new version did not load: {e} (still serving {})",
                        state.model().version
                    ),
                )
            })?)
        } else {
            None
        };
        Ok::<_, ApiError>(AliasResponse { change, reload })
    }
    .await;
    match result {
        Ok(answer) => json_response(StatusCode::OK, &answer),
        Err(e) => e.into_response(),
    }
}

const ALIAS_SHAPE: Shape = Shape {
    fields: &[("version", FieldKind::Integer)],
    optional: &[("force", FieldKind::Bool)],
    example: r#"{"version": 3, "force": false}"#,
};
