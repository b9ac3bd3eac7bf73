//! `POST /v1/admin/retrain`: Alertmanager's webhook receiver. A notification with firing
//! alerts starts the configured retraining (`taxon pipeline retrain ... --cause
//! alert:NAMES`) as a child process, one at a time; the retraining moves the served alias
//! through the promotion gate, and the source poller swaps the model in.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::{ApiError, ErrorBody, ErrorKind};
use super::extract::json_body;
use super::json_response;
use crate::state::AppState;

/// One alert of an Alertmanager notification (the fields taxon reads; others are ignored).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WebhookAlert {
    /// `firing` or `resolved`.
    pub status: String,
    /// The alert's labels; `alertname` names it.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Alertmanager's webhook payload (version 4).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct WebhookPayload {
    /// `firing` when at least one alert of the group fires.
    pub status: String,
    pub alerts: Vec<WebhookAlert>,
}

/// What the receiver did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RetrainStarted {
    /// A retraining was started by this notification.
    pub started: bool,
    /// The recorded cause (`alert:NAME[,NAME...]`), when started.
    pub cause: Option<String>,
    /// The child process, when started.
    pub pid: Option<u32>,
    /// Why nothing was started, otherwise.
    pub reason: Option<String>,
}

/// Start a retraining from an Alertmanager notification.
///
/// Configure it as an Alertmanager `webhook_configs` receiver (with the admin token as its
/// bearer credentials when auth is on). A notification with firing alerts starts `taxon
/// pipeline retrain --cause alert:NAMES` (202); one that only resolves alerts, or arrives while
/// a retraining runs, starts nothing (200, `reason` says why). The retraining itself keeps its
/// guard rails: its lock, the cool-down and the minimum of fresh labels.
#[utoipa::path(
    post,
    path = "/v1/admin/retrain",
    tag = "admin",
    request_body = WebhookPayload,
    security((), ("oauth2" = ["admin"])),
    responses(
        (status = 202, description = "A retraining started", body = RetrainStarted),
        (status = 200, description = "Nothing started: no firing alert, or one already runs", body = RetrainStarted),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "Auth on: missing, invalid, expired or revoked bearer token", body = ErrorBody),
        (status = 403, description = "Auth on: the token lacks the `admin` scope", body = ErrorBody),
        (status = 404, description = "Retraining is not configured (`taxon serve --retrain-on-alert`)", body = ErrorBody),
        (status = 422, description = "Not an Alertmanager notification", body = ErrorBody),
        (status = 500, description = "The retraining could not be started", body = ErrorBody),
    )
)]
pub async fn retrain(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(cmd) = state.config().retrain.clone() else {
        return ApiError::new(
            ErrorKind::NotFound,
            "retraining is not configured: start taxon serve with --retrain-on-alert",
        )
        .into_response();
    };
    let bytes = match json_body(&headers, body, state.config().body_limit_bytes).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    // Alertmanager sends more fields than taxon reads (receiver, groupLabels, ...): the
    // strict request shapes of the other routes do not apply; unknown fields are ignored.
    let payload: WebhookPayload = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) if e.is_syntax() || e.is_eof() => {
            return ApiError::new(ErrorKind::InvalidJson, format!("the body is not JSON: {e}"))
                .into_response();
        }
        Err(e) => {
            return ApiError::new(
                ErrorKind::InvalidRequest,
                format!(
                    "not an Alertmanager notification ({e}); expected {{\"status\": \"firing\", \"alerts\": [{{\"status\": \"firing\", \"labels\": {{\"alertname\": ...}}}}]}}"
                ),
            )
            .into_response();
        }
    };
    let names: BTreeSet<&str> = payload
        .alerts
        .iter()
        .filter(|a| a.status == "firing")
        .map(|a| a.labels.get("alertname").map_or("unnamed", String::as_str))
        .collect();
    let nothing = |reason: &str| {
        json_response(
            StatusCode::OK,
            &RetrainStarted {
                started: false,
                cause: None,
                pid: None,
                reason: Some(reason.to_string()),
            },
        )
    };
    if payload.status != "firing" || names.is_empty() {
        return nothing("no firing alert in the notification");
    }
    let flag = state.retraining().clone();
    if flag.swap(true, Ordering::AcqRel) {
        return nothing("a retraining started by this server is still running");
    }
    let cause = format!("alert:{}", names.into_iter().collect::<Vec<_>>().join(","));
    let child = std::process::Command::new(&cmd.program)
        .args(&cmd.args)
        .args(["--cause", &cause])
        .current_dir(&cmd.dir)
        .stdin(std::process::Stdio::null())
        .spawn();
    match child {
        Ok(mut child) => {
            let pid = child.id();
            tracing::info!(pid, cause = %cause, "retraining started by an alert");
            std::thread::spawn(move || {
                let status = child.wait();
                tracing::info!(pid, ?status, "retraining finished");
                flag.store(false, Ordering::Release);
            });
            json_response(
                StatusCode::ACCEPTED,
                &RetrainStarted {
                    started: true,
                    cause: Some(cause),
                    pid: Some(pid),
                    reason: None,
                },
            )
        }
        Err(e) => {
            flag.store(false, Ordering::Release);
            ApiError::new(
                ErrorKind::Internal,
                format!("could not start {}: {e}", cmd.program.display()),
            )
            .into_response()
        }
    }
}
