//! `GET /v1/models`: the served model (name, version, type, labels, input limits, load time,
//! source) and the server's limits.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::Response;
use http::StatusCode;
use serde::Serialize;

use super::error::ErrorBody;
use super::json_response;
use crate::config::Limits;
use crate::model::LoadedModel;
use crate::state::AppState;

/// What a model accepts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct InputInfo {
    /// Tokens beyond this many are ignored (null: unbounded).
    pub max_tokens: Option<u64>,
    /// Whether the model lower-cases text.
    pub lowercase: bool,
}

/// A served model.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Model name.
    #[schema(example = "news")]
    pub name: String,
    /// Model version.
    #[schema(example = "3f2a9c0d11b4")]
    pub version: String,
    /// Model type (`linear`, `lstm`, ...).
    #[schema(example = "linear")]
    pub model_type: String,
    /// Labels, in score order.
    pub labels: Vec<String>,
    /// Input limits.
    pub input: InputInfo,
    /// When this version finished loading (RFC 3339, UTC).
    #[schema(example = "2025-01-31T12:00:00Z")]
    pub loaded_at: String,
    /// Where the model comes from.
    #[schema(example = "folder ./model")]
    pub source: String,
}

/// `GET /v1/models` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelsResponse {
    /// The served models (one).
    pub models: Vec<ModelInfo>,
    /// The server's limits.
    pub limits: Limits,
}

/// The served model and the server's limits.
#[utoipa::path(
    get,
    path = "/v1/models",
    tag = "predict",
    security((), ("oauth2" = ["predict"])),
    responses(
        (status = 200, description = "The served model and the limits", body = ModelsResponse),
        (status = 401, description = "Auth on: missing, invalid, expired or revoked bearer token (WWW-Authenticate says which)", body = ErrorBody),
        (status = 403, description = "Auth on: the token lacks the `predict` scope", body = ErrorBody),
    )
)]
pub async fn models(State(state): State<AppState>) -> Response {
    let model = state.model();
    json_response(
        StatusCode::OK,
        &ModelsResponse {
            models: vec![info(&model, state.source())],
            limits: state.config().limits(),
        },
    )
}

fn info(model: &LoadedModel, source: &str) -> ModelInfo {
    ModelInfo {
        name: model.name.clone(),
        version: model.version.clone(),
        model_type: model.model_type.clone(),
        labels: model.labels.clone(),
        input: InputInfo {
            max_tokens: model.input.max_tokens,
            lowercase: model.input.lowercase,
        },
        loaded_at: rfc3339(model.loaded_at),
        source: source.to_string(),
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400 + 3661);
        assert_eq!(rfc3339(t), "2000-02-29T01:01:01Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_735_689_599);
        assert_eq!(rfc3339(t), "2024-12-31T23:59:59Z");
    }
}
