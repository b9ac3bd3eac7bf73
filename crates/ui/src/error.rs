//! The UI's one error type: an unknown id (404) or a store that could not be read (500), each
//! answered with an HTML page in the site's frame.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::html::{Esc, Nav, page};

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// No such run, model or page.
    #[error("{what} not found")]
    NotFound { what: String },
    /// A store failed to open or answer.
    #[error("reading {store}: {message}")]
    Store {
        store: &'static str,
        message: String,
    },
}

impl UiError {
    pub fn not_found(what: impl Into<String>) -> Self {
        UiError::NotFound { what: what.into() }
    }

    pub fn store(store: &'static str) -> impl Fn(&dyn std::fmt::Display) -> Self {
        move |e| UiError::Store {
            store,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, title) = match &self {
            UiError::NotFound { .. } => (StatusCode::NOT_FOUND, "Not found"),
            UiError::Store { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "Error"),
        };
        if status.is_server_error() {
            tracing::warn!("{self}");
        }
        let body = format!(
            "<p>{}</p><p><a href=\"/\">Back to the overview</a></p>",
            Esc(&self.to_string())
        );
        (status, Html(page(title, Nav::None, &body))).into_response()
    }
}
