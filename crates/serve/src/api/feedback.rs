//! `POST /v1/feedback`: the true label of earlier predictions (one, or a batch), which drives
//! `model_accuracy` and per-label live recall and goes to the prediction log.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody, ErrorKind};
use super::extract::json_body;
use super::json_response;
use crate::monitor::FeedbackError;
use crate::state::AppState;

/// The true label of one earlier prediction.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackItem {
    /// The prediction's `request_id` (for text `i` of a batch prediction: `REQUEST_ID/i`).
    #[schema(example = "3f9a2c1b-1a2f")]
    pub request_id: String,
    /// The true label (one of the model's labels).
    #[schema(example = "business")]
    pub label: String,
}

/// Several feedback items, recorded all or none.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FeedbackBatch {
    pub feedback: Vec<FeedbackItem>,
}

/// `POST /v1/feedback` body: one item, or `{"feedback": [...]}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FeedbackRequest {
    One(FeedbackItem),
    Many(FeedbackBatch),
}

/// `POST /v1/feedback` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FeedbackResponse {
    /// Feedback items recorded.
    pub recorded: usize,
    /// How many of them the model had predicted right.
    pub correct: usize,
}

/// Record the true label of earlier predictions.
///
/// The server remembers its most recent predictions (`--feedback-capacity`); feedback drives
/// `model_accuracy{model_version}` and `taxon_live_recall{model_version, label}` over the last
/// `--feedback-window` items per model version, and is written to the prediction log. A batch
/// is checked whole before anything is recorded.
#[utoipa::path(
    post,
    path = "/v1/feedback",
    tag = "predict",
    request_body(content = FeedbackRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Recorded", body = FeedbackResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 404, description = "unknown_request: no remembered prediction has this request_id", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "invalid_request: wrong fields; unknown_label: a label the model does not know", body = ErrorBody),
    )
)]
pub async fn feedback(State(state): State<AppState>, req: Request) -> Response {
    match record(&state, req).await {
        Ok(r) => json_response(StatusCode::OK, &r),
        Err(e) => e.into_response(),
    }
}

async fn record(state: &AppState, req: Request) -> Result<FeedbackResponse, ApiError> {
    let (parts, body) = req.into_parts();
    let body = json_body(&parts.headers, body, state.config().body_limit_bytes).await?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid_json(e.to_string()))?;
    let request: FeedbackRequest = serde_json::from_value(value).map_err(|_| {
        ApiError::invalid_request(
            "expected {\"request_id\": \"...\", \"label\": \"...\"} or {\"feedback\": [{\"request_id\": \"...\", \"label\": \"...\"}, ...]}",
        )
    })?;
    let (items, batch) = match request {
        FeedbackRequest::One(i) => (vec![i], false),
        FeedbackRequest::Many(b) => (b.feedback, true),
    };
    let at = |i: usize| {
        if batch {
            format!("feedback[{i}]: ")
        } else {
            String::new()
        }
    };
    let monitoring = state.monitoring();
    for (i, item) in items.iter().enumerate() {
        monitoring
            .check(&item.request_id, &item.label)
            .map_err(|e| feedback_error(&at(i), e))?;
    }
    let mut correct = 0;
    for (i, item) in items.iter().enumerate() {
        correct += usize::from(
            monitoring
                .feedback(&item.request_id, &item.label)
                .map_err(|e| feedback_error(&at(i), e))?,
        );
    }
    Ok(FeedbackResponse {
        recorded: items.len(),
        correct,
    })
}

fn feedback_error(at: &str, e: FeedbackError) -> ApiError {
    match e {
        FeedbackError::UnknownRequest(id) => ApiError::new(
            ErrorKind::UnknownRequest,
            format!(
                "{at}no recent prediction has request_id {id:?} (the server remembers its most recent predictions only)"
            ),
        ),
        FeedbackError::UnknownLabel { label, known } => ApiError::new(
            ErrorKind::UnknownLabel,
            format!("{at}label {label:?} is not one of the model's labels {known:?}"),
        ),
    }
}
