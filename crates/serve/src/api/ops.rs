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

/// Prometheus metrics: the OpenMetrics text format when the `Accept` header asks for it (as
/// Prometheus does), else the classic Prometheus text format 0.0.4 (curl, `promtool check
/// metrics`).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Metrics in the Prometheus text format 0.0.4, or in the OpenMetrics text format when Accept asks for application/openmetrics-text", body = String, content_type = "text/plain"))
)]
pub async fn metrics(State(state): State<AppState>, headers: http::HeaderMap) -> Response {
    if let Some(cache) = state.cache() {
        state
            .metrics()
            .observe_cache(cache.bytes(), cache.max_bytes());
    }
    let mut text = state.metrics().render(state.engine().admitted());
    state.monitoring().render_into(&mut text);
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (body, content_type) = if openmetrics {
        (
            text,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )
    } else {
        (
            prometheus_text(&text),
            "text/plain; version=0.0.4; charset=utf-8",
        )
    };
    let mut response = Response::new(Body::from(body));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// The OpenMetrics exposition in the Prometheus text format 0.0.4: a counter family's `HELP`
/// and `TYPE` lines name its samples (`x_total`), `unknown` is `untyped`, no `# EOF`.
fn prometheus_text(openmetrics: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some(name) = rest.strip_suffix(" counter") {
                counters.insert(name.to_string());
            }
        }
    }
    let mut out = String::with_capacity(openmetrics.len() + 64 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(if tail == "unknown" { "untyped" } else { tail });
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::prometheus_text;

    #[test]
    fn counters_are_named_by_their_samples_and_eof_goes() {
        let om = "# HELP a_things Things.\n# TYPE a_things counter\na_things_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        assert_eq!(
            prometheus_text(om),
            "# HELP a_things_total Things.\n# TYPE a_things_total counter\na_things_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }
}
