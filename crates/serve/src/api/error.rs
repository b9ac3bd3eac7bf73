//! HTTP errors: one [`ApiError`] type whose every response body is
//! `{"error": "<what is wrong, where>", "error_type": "<snake_case kind>"}`.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

use crate::engine::EngineError;

/// The body of every 4xx and 5xx response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What is wrong, and where.
    #[schema(example = "\"text\" is empty")]
    pub error: String,
    /// The kind of error, snake_case: `invalid_json`, `invalid_request`, `empty_text`,
    /// `text_too_long`, `empty_batch`, `batch_too_large`, `unsupported_media_type`,
    /// `payload_too_large`, `not_found`, `method_not_allowed`, `overloaded`, `not_ready`,
    /// `shutting_down`, `model_error`, `model_load_failed`, `source_unavailable`, `internal`.
    #[schema(example = "empty_text")]
    pub error_type: String,
}

/// An error answer: status, kind and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.kind, self.message)
    }
}

impl ApiError {
    /// An error with this status, kind and message.
    pub fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            kind,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The `error_type`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// The `error` message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400: the body is not JSON.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 422: JSON of the wrong shape (type, missing or unknown field).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    /// 422: an empty (or whitespace-only) text.
    pub fn empty_text(field: &str, whitespace: bool) -> Self {
        let message = if whitespace {
            format!("\"{field}\" has only whitespace: send some text to classify")
        } else {
            format!("\"{field}\" is empty: send some text to classify")
        };
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_text", message)
    }

    /// 422: a text longer than the limit.
    pub fn text_too_long(field: &str, chars: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "text_too_long",
            format!("\"{field}\" has {chars} characters, more than the limit of {limit}"),
        )
    }

    /// 422: a batch with no texts.
    pub fn empty_batch() -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_batch",
            "\"texts\" is empty: send at least one text",
        )
    }

    /// 422: a batch with more texts than the limit.
    pub fn batch_too_large(texts: usize, limit: usize) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "batch_too_large",
            format!("\"texts\" has {texts} texts, more than the limit of {limit}: split the batch"),
        )
    }

    /// 415: not a JSON content type.
    pub fn unsupported_media_type(found: Option<&str>) -> Self {
        let message = match found {
            Some(found) => format!("Content-Type must be application/json, got {found:?}"),
            None => "missing Content-Type header: expected application/json".to_string(),
        };
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    }

    /// 413: a body over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 404: no such route.
    pub fn not_found(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {method} {path}: see /docs for the API"),
        )
    }

    /// 405: the route exists, not with this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("method {method} is not allowed on {path}: see /docs for the API"),
        )
    }

    /// 503: the server is not ready.
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
    }

    /// 500: something the client cannot fix.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let kind = match e {
            EngineError::Overloaded { .. } => "overloaded",
            EngineError::Closed => "shutting_down",
            EngineError::Model(_) => {
                return Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "model_error",
                    e.to_string(),
                );
            }
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, kind, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.message,
            error_type: self.kind.to_string(),
        };
        let mut response = super::json_response(self.status, &body);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}
