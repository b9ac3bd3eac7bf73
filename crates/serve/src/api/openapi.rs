//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! request and response types' `ToSchema` derives, served at `GET /openapi.json`.

use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use utoipa::openapi::security::{Flow, OAuth2, Password, Scopes, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::{admin, feedback, models, ops, predict};
use crate::state::AppState;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "taxon inference server",
        description = "Text classification over HTTP: single and batch predictions with adaptive batching, a prediction cache, backpressure (503 + Retry-After when the queue is full) and hot model swap. Every error body is {\"error\": \"...\", \"error_type\": \"...\"}."
    ),
    paths(
        predict::predict,
        predict::predict_batch,
        models::models,
        feedback::feedback,
        ops::health,
        ops::ready,
        ops::metrics,
        admin::reload,
        admin::move_alias,
        super::retrain::retrain,
        openapi_json,
        super::docs::docs_page,
        token,
    ),
    components(schemas(predict::NonEmptyText, admin::AliasName, TokenForm, TokenResponse, OAuthErrorBody)),
    modifiers(&OAuth2PasswordFlow),
    tags(
        (name = "predict", description = "Classify texts and describe the served model"),
        (name = "operations", description = "Liveness, readiness, metrics and documentation"),
        (name = "admin", description = "Model management"),
        (name = "auth", description = "Bearer tokens (OAuth2 password flow), when the server runs with --jwt-secret"),
    )
)]
pub struct ApiDoc;

/// The `oauth2` security scheme: the password flow of `POST /token`, with the server's two
/// scopes. Routes list it beside an empty requirement: a server without `--jwt-secret` asks
/// for no token.
struct OAuth2PasswordFlow;

impl Modify for OAuth2PasswordFlow {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scopes = Scopes::from_iter([
            ("predict", "Predictions and the model description"),
            (
                "admin",
                "Model reload and alias changes (does not include predict)",
            ),
        ]);
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "oauth2",
                SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                    "/token", scopes,
                ))])),
            );
    }
}

/// `POST /token` form (`application/x-www-form-urlencoded`, RFC 6749 section 4.3).
#[derive(serde::Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// `password` (may be left out).
    #[schema(example = "password")]
    pub grant_type: Option<String>,
    /// The user name.
    #[schema(min_length = 1, example = "alice")]
    pub username: String,
    /// The user's password.
    #[schema(min_length = 1, format = Password)]
    pub password: String,
    /// Space-separated scopes to ask for (default: every scope the user has).
    #[schema(example = "predict")]
    pub scope: Option<String>,
}

/// `POST /token` answer (RFC 6749 section 5.1).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// The signed JWT to send as `Authorization: Bearer ...`.
    pub access_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Lifetime in seconds.
    #[schema(example = 1800)]
    pub expires_in: u64,
    /// Granted scopes, space-separated.
    #[schema(example = "predict")]
    pub scope: String,
}

/// `POST /token` error (RFC 6749 section 5.2).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_grant`, `invalid_scope`, `unsupported_grant_type`,
    /// `slow_down`, `server_error`.
    #[schema(example = "invalid_grant")]
    pub error: String,
    /// What is wrong.
    pub error_description: String,
}

/// Get a bearer token (OAuth2 password flow). Served only when auth is on.
///
/// Rate limited per client address, per (user, address) and per user across addresses
/// (429 `slow_down` with `Retry-After`). Answers are never cached (`Cache-Control: no-store`).
#[utoipa::path(
    post,
    path = "/token",
    tag = "auth",
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 400, description = "invalid_request, invalid_grant (wrong user name or password), invalid_scope, unsupported_grant_type", body = OAuthErrorBody),
        (status = 408, description = "request_timeout: the body did not arrive within the body-read timeout", body = ErrorBody),
        (status = 413, description = "The form is over 16 KiB", body = OAuthErrorBody),
        (status = 429, description = "slow_down: too many attempts (Retry-After says when to retry)", body = OAuthErrorBody),
        (status = 500, description = "server_error: the user store could not be read", body = OAuthErrorBody),
    )
)]
#[allow(dead_code)]
fn token() {}

/// The document, built once.
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The document as JSON bytes, built once.
pub fn document_json() -> Bytes {
    static JSON: OnceLock<Bytes> = OnceLock::new();
    JSON.get_or_init(|| {
        Bytes::from(serde_json::to_vec_pretty(document()).unwrap_or_else(|e| {
            format!("{{\"error\":\"could not serialize the OpenAPI document: {e}\"}}").into_bytes()
        }))
    })
    .clone()
}

/// The document with the served model's labels as the only values of a feedback `label`
/// (checked against them: anything else is 422 `unknown_label`, so the schema says so). The
/// labels change with a hot swap, so this is done per request.
fn with_labels(doc: &Bytes, labels: &[String]) -> Bytes {
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(doc) else {
        return doc.clone();
    };
    if let Some(label) = v.pointer_mut("/components/schemas/FeedbackItem/properties/label")
        && let Some(obj) = label.as_object_mut()
    {
        obj.insert("enum".into(), serde_json::json!(labels));
    }
    serde_json::to_vec_pretty(&v).map_or_else(|_| doc.clone(), Bytes::from)
}

/// This API's OpenAPI 3 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json(State(state): State<AppState>) -> Response {
    let mut response = Response::new(Body::from(with_labels(
        &document_json(),
        &state.model().labels,
    )));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
