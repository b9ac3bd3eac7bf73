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
    /// `shutting_down`, `model_error`, `model_load_failed`, `source_unavailable`,
    /// `no_registry`, `promotion_refused`, `alias_change_failed`, `internal`.
    #[schema(example = "empty_text")]
    pub error_type: String,
}

/// What kind of error an answer is: it decides the HTTP status and the `error_type`
/// ([`ErrorKind::parts`], the one place that maps them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// 400: the body is not JSON.
    InvalidJson,
    /// 422: JSON of the wrong shape (type, missing or unknown field).
    InvalidRequest,
    /// 422: an empty (or whitespace-only) text.
    EmptyText,
    /// 422: a text longer than the limit.
    TextTooLong,
    /// 422: a batch with no texts.
    EmptyBatch,
    /// 422: a batch with more texts than the limit.
    BatchTooLarge,
    /// 415: not a JSON content type.
    UnsupportedMediaType,
    /// 413: a body over the limit.
    PayloadTooLarge,
    /// 404: no such route.
    NotFound,
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 503: the queue is full (retry after `Retry-After`).
    Overloaded,
    /// 503: the server is not ready.
    NotReady,
    /// 503: the server is draining and takes no new predictions.
    ShuttingDown,
    /// 500: the model failed on the request's texts; nothing was guessed in its place.
    ModelError,
    /// 500: a new model failed to load or to pass its self-test (the old one still serves).
    ModelLoadFailed,
    /// 502: the model source could not say what to serve.
    SourceUnavailable,
    /// 400: an alias change on a server that does not serve a registry alias.
    NoRegistry,
    /// 409: the promotion gate refused the version.
    PromotionRefused,
    /// 422: the registry refused the alias change (unknown version, ...).
    AliasChangeFailed,
    /// 500: something the client cannot fix.
    Internal,
}

impl ErrorKind {
    /// Every kind, for tests and documentation.
    pub const ALL: [ErrorKind; 20] = [
        ErrorKind::InvalidJson,
        ErrorKind::InvalidRequest,
        ErrorKind::EmptyText,
        ErrorKind::TextTooLong,
        ErrorKind::EmptyBatch,
        ErrorKind::BatchTooLarge,
        ErrorKind::UnsupportedMediaType,
        ErrorKind::PayloadTooLarge,
        ErrorKind::NotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::Overloaded,
        ErrorKind::NotReady,
        ErrorKind::ShuttingDown,
        ErrorKind::ModelError,
        ErrorKind::ModelLoadFailed,
        ErrorKind::SourceUnavailable,
        ErrorKind::NoRegistry,
        ErrorKind::PromotionRefused,
        ErrorKind::AliasChangeFailed,
        ErrorKind::Internal,
    ];

    /// The HTTP status and the `error_type` of this kind.
    pub fn parts(self) -> (StatusCode, &'static str) {
        match self {
            ErrorKind::InvalidJson => (StatusCode::BAD_REQUEST, "invalid_json"),
            ErrorKind::InvalidRequest => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
            ErrorKind::EmptyText => (StatusCode::UNPROCESSABLE_ENTITY, "empty_text"),
            ErrorKind::TextTooLong => (StatusCode::UNPROCESSABLE_ENTITY, "text_too_long"),
            ErrorKind::EmptyBatch => (StatusCode::UNPROCESSABLE_ENTITY, "empty_batch"),
            ErrorKind::BatchTooLarge => (StatusCode::UNPROCESSABLE_ENTITY, "batch_too_large"),
            ErrorKind::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ErrorKind::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ErrorKind::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ErrorKind::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "overloaded"),
            ErrorKind::NotReady => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            ErrorKind::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ErrorKind::ModelError => (StatusCode::INTERNAL_SERVER_ERROR, "model_error"),
            ErrorKind::ModelLoadFailed => (StatusCode::INTERNAL_SERVER_ERROR, "model_load_failed"),
            ErrorKind::SourceUnavailable => (StatusCode::BAD_GATEWAY, "source_unavailable"),
            ErrorKind::NoRegistry => (StatusCode::BAD_REQUEST, "no_registry"),
            ErrorKind::PromotionRefused => (StatusCode::CONFLICT, "promotion_refused"),
            ErrorKind::AliasChangeFailed => {
                (StatusCode::UNPROCESSABLE_ENTITY, "alias_change_failed")
            }
            ErrorKind::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The HTTP status.
    pub fn status(self) -> StatusCode {
        self.parts().0
    }

    /// The `error_type`.
    pub fn as_str(self) -> &'static str {
        self.parts().1
    }
}

/// An error answer: its kind and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (status, kind) = self.kind.parts();
        write!(f, "{status} ({kind}): {}", self.message)
    }
}

impl ApiError {
    /// An error of this kind with this message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The `error` message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// 400: the body is not JSON.
    pub fn invalid_json(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidJson, message)
    }

    /// 422: JSON of the wrong shape (type, missing or unknown field).
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// 422: an empty (or whitespace-only) text.
    pub fn empty_text(field: &str, whitespace: bool) -> Self {
        let message = if whitespace {
            format!("\"{field}\" has only whitespace: send some text to classify")
        } else {
            format!("\"{field}\" is empty: send some text to classify")
        };
        Self::new(ErrorKind::EmptyText, message)
    }

    /// 422: a text longer than the limit.
    pub fn text_too_long(field: &str, chars: usize, limit: usize) -> Self {
        Self::new(
            ErrorKind::TextTooLong,
            format!("\"{field}\" has {chars} characters, more than the limit of {limit}"),
        )
    }

    /// 422: a batch with no texts.
    pub fn empty_batch() -> Self {
        Self::new(
            ErrorKind::EmptyBatch,
            "\"texts\" is empty: send at least one text",
        )
    }

    /// 422: a batch with more texts than the limit.
    pub fn batch_too_large(texts: usize, limit: usize) -> Self {
        Self::new(
            ErrorKind::BatchTooLarge,
            format!("\"texts\" has {texts} texts, more than the limit of {limit}: split the batch"),
        )
    }

    /// 415: not a JSON content type.
    pub fn unsupported_media_type(found: Option<&str>) -> Self {
        let message = match found {
            Some(found) => format!("Content-Type must be application/json, got {found:?}"),
            None => "missing Content-Type header: expected application/json".to_string(),
        };
        Self::new(ErrorKind::UnsupportedMediaType, message)
    }

    /// 413: a body over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorKind::PayloadTooLarge,
            format!("request body is larger than the limit of {limit} bytes"),
        )
    }

    /// 404: no such route.
    pub fn not_found(method: &str, path: &str) -> Self {
        Self::new(
            ErrorKind::NotFound,
            format!("no route for {method} {path}: see /docs for the API"),
        )
    }

    /// 405: the route exists, not with this method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            ErrorKind::MethodNotAllowed,
            format!("method {method} is not allowed on {path}: see /docs for the API"),
        )
    }

    /// 503: the server is not ready.
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotReady, message)
    }

    /// 500: something the client cannot fix.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let kind = match e {
            EngineError::Overloaded { .. } => ErrorKind::Overloaded,
            EngineError::Closed => ErrorKind::ShuttingDown,
            EngineError::Model { .. } => ErrorKind::ModelError,
        };
        Self::new(kind, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, error_type) = self.kind.parts();
        let body = ErrorBody {
            error: self.message,
            error_type: error_type.to_string(),
        };
        let mut response = super::json_response(status, &body);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_snake_case_error_type_and_an_error_status() {
        let mut seen = std::collections::HashSet::new();
        for kind in ErrorKind::ALL {
            let (status, name) = kind.parts();
            assert!(
                status.is_client_error() || status.is_server_error(),
                "{kind:?}"
            );
            assert!(
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{kind:?}: {name}"
            );
            assert!(seen.insert(name), "{name} used twice");
        }
        assert_eq!(
            ErrorKind::ModelError.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(ErrorKind::ModelError.as_str(), "model_error");
    }

    #[test]
    fn a_model_failure_is_a_500_model_error() {
        let e = ApiError::from(EngineError::Model {
            model: "news@v1".into(),
            message: "linear model: prediction failed: boom".into(),
        });
        assert_eq!(e.kind(), ErrorKind::ModelError);
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(e.message().contains("news@v1"), "{e}");
        assert!(e.message().contains("boom"), "{e}");
    }
}
