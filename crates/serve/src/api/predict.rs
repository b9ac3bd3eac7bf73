//! `POST /v1/predict` and `POST /v1/predict/batch`: parse and check the request, answer from
//! the cache (single predictions) or through the batching engine, and serialize the answer
//! straight from the model's labels and probabilities (no intermediate map).

use std::borrow::Cow;

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};

use super::error::{ApiError, ErrorBody};
use super::extract::{FieldKind, Shape, check_text, json_body, parse};
use super::json_response;
use crate::cache::normalize;
use crate::engine::{EngineError, Text, Texts};
use crate::model::LoadedModel;
use crate::request_id::RequestId;
use crate::state::AppState;

/// `POST /v1/predict` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest<'a> {
    /// The text to classify (not empty, at most the server's `max_text_chars` characters).
    #[serde(borrow)]
    #[schema(value_type = String, example = "Shares rose after the bank reported record profit")]
    pub text: Cow<'a, str>,
}

const PREDICT_SHAPE: Shape = Shape {
    fields: &[("text", FieldKind::String)],
    optional: &[],
    example: r#"{"text": "..."}"#,
};

/// `POST /v1/predict/batch` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest<'a> {
    /// The texts to classify (1 to the server's `max_batch_texts`).
    #[serde(borrow)]
    #[schema(value_type = Vec<String>, example = json!(["The striker scored twice", "Shares fell"]))]
    pub texts: Vec<Cow<'a, str>>,
}

const BATCH_SHAPE: Shape = Shape {
    fields: &[("texts", FieldKind::Strings)],
    optional: &[],
    example: r#"{"texts": ["...", "..."]}"#,
};

/// The model that answered.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ModelRef<'a> {
    /// Model name.
    #[schema(example = "news")]
    pub name: &'a str,
    /// Model version.
    #[schema(example = "3f2a9c0d11b4")]
    pub version: &'a str,
}

/// Every label's probability, in the model's label order (serialized as a JSON object).
#[derive(Debug)]
pub struct Scores<'a> {
    /// The model's labels.
    pub labels: &'a [String],
    /// One probability per label.
    pub probs: &'a [f32],
}

impl Serialize for Scores<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.labels.len()))?;
        for (label, p) in self.labels.iter().zip(self.probs) {
            map.serialize_entry(label, p)?;
        }
        map.end()
    }
}

/// `POST /v1/predict` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PredictResponse<'a> {
    /// The most probable label.
    #[schema(example = "business")]
    pub label: &'a str,
    /// Every label's probability (they sum to 1).
    #[schema(value_type = std::collections::BTreeMap<String, f32>, example = json!({"business": 0.91, "sport": 0.09}))]
    pub scores: Scores<'a>,
    /// The model (name and version) that computed the prediction.
    pub model: ModelRef<'a>,
    /// This request's id (also in the `x-request-id` header).
    #[schema(example = "3f9a2c1b-1a2f")]
    pub request_id: &'a str,
    /// Whether the answer came from the prediction cache.
    pub cached: bool,
}

/// One prediction of a batch.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Prediction<'a> {
    /// The most probable label.
    #[schema(example = "sport")]
    pub label: &'a str,
    /// Every label's probability (they sum to 1).
    #[schema(value_type = std::collections::BTreeMap<String, f32>, example = json!({"business": 0.04, "sport": 0.96}))]
    pub scores: Scores<'a>,
}

/// `POST /v1/predict/batch` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchResponse<'a> {
    /// One prediction per text, in request order.
    pub predictions: Vec<Prediction<'a>>,
    /// The model (name and version) that computed every prediction of the batch.
    pub model: ModelRef<'a>,
    /// This request's id (also in the `x-request-id` header).
    #[schema(example = "3f9a2c1b-1a2f")]
    pub request_id: &'a str,
}

/// Classify one text.
///
/// Concurrent requests are grouped into model batches. Repeated texts (after trimming,
/// collapsing whitespace and, for lower-casing models, lower-casing) are answered from the
/// prediction cache, with `"cached": true`.
#[utoipa::path(
    post,
    path = "/v1/predict",
    tag = "predict",
    request_body(content = PredictRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "The prediction", body = PredictResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Wrong fields or types; empty or too long text", body = ErrorBody),
        (status = 500, description = "model_error: the model failed on this text; no prediction was made in its place (other requests are answered)", body = ErrorBody),
        (status = 503, description = "Queue full (retry after the Retry-After seconds) or shutting down", body = ErrorBody),
    )
)]
pub async fn predict(State(state): State<AppState>, req: Request) -> Response {
    let id = request_id(&req);
    match predict_one(&state, req, &id).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn predict_one(state: &AppState, req: Request, id: &RequestId) -> Result<Response, ApiError> {
    let config = state.config();
    let (parts, body) = req.into_parts();
    let body = json_body(&parts.headers, body, config.body_limit_bytes).await?;
    let arrival = state.engine().arrival();
    let request: PredictRequest<'_> = parse(&body, &PREDICT_SHAPE)?;
    let text = request.text;
    check_text(&text, config.max_text_chars).map_err(|p| p.at("text"))?;

    let (key, seq, text) = {
        let model = state.slot().load();
        let key = state.cache().map(|cache| {
            let key = normalize(&text, model.input.lowercase);
            let hit = cache.get(model.seq, &key);
            state.metrics().cache_lookup(hit.is_some());
            (key, hit)
        });
        if let Some((_, Some(probs))) = &key {
            return Ok(single_response(&model, probs, id.as_str(), true));
        }
        let text = Text::encode(&model, String::from(&*text))
            .map_err(|e| engine_error(state, id, EngineError::model(&model, e)))?;
        (key.map(|(k, _)| k), model.seq, text)
    };
    let receiver = arrival.submit(Texts::One(text))?;
    let computed = receiver
        .await
        .map_err(|_| ApiError::internal("the model worker stopped before answering"))?
        .map_err(|e| engine_error(state, id, e))?;
    let probs = computed.probs.first().map(Vec::as_slice).unwrap_or(&[]);
    // Only what the model that made the key computed (a swap in between changes both).
    if let (Some(cache), Some(key), true) = (state.cache(), &key, computed.model.seq == seq) {
        cache.insert(seq, key, probs);
    }
    Ok(single_response(&computed.model, probs, id.as_str(), false))
}

/// The answer for an engine error. A model failure is counted in `taxon_model_errors_total`
/// and logged with the request id: the request gets a 500 `model_error`, never a guess.
fn engine_error(state: &AppState, id: &RequestId, e: EngineError) -> ApiError {
    if let EngineError::Model { model, message } = &e {
        state.metrics().model_error();
        tracing::error!(
            request_id = id.as_str(),
            model = %model,
            "prediction failed: {message}"
        );
    }
    ApiError::from(e)
}

fn single_response(model: &LoadedModel, probs: &[f32], id: &str, cached: bool) -> Response {
    json_response(
        StatusCode::OK,
        &PredictResponse {
            label: top_label(&model.labels, probs),
            scores: Scores {
                labels: &model.labels,
                probs,
            },
            model: ModelRef {
                name: &model.name,
                version: &model.version,
            },
            request_id: id,
            cached,
        },
    )
}

/// Classify a batch of texts.
///
/// The texts are computed together by one model version (named in `model`); the batch is
/// not served from the cache. At most the server's `max_batch_texts` texts.
#[utoipa::path(
    post,
    path = "/v1/predict/batch",
    tag = "predict",
    request_body(content = BatchRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "One prediction per text, in order", body = BatchResponse),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 413, description = "Body over the size limit", body = ErrorBody),
        (status = 415, description = "Content-Type is not application/json", body = ErrorBody),
        (status = 422, description = "Wrong fields or types; empty batch, batch over the limit, empty or too long text", body = ErrorBody),
        (status = 500, description = "model_error: the model failed on a text of the batch; no prediction was made in its place (other requests are answered)", body = ErrorBody),
        (status = 503, description = "Queue full (retry after the Retry-After seconds) or shutting down", body = ErrorBody),
    )
)]
pub async fn predict_batch(State(state): State<AppState>, req: Request) -> Response {
    let id = request_id(&req);
    match predict_many(&state, req, &id).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn predict_many(
    state: &AppState,
    req: Request,
    id: &RequestId,
) -> Result<Response, ApiError> {
    let config = state.config();
    let (parts, body) = req.into_parts();
    let body = json_body(&parts.headers, body, config.body_limit_bytes).await?;
    let arrival = state.engine().arrival();
    let request: BatchRequest<'_> = parse(&body, &BATCH_SHAPE)?;
    let texts = request.texts;
    if texts.is_empty() {
        return Err(ApiError::empty_batch());
    }
    if texts.len() > config.max_batch_texts {
        return Err(ApiError::batch_too_large(
            texts.len(),
            config.max_batch_texts,
        ));
    }
    for (i, text) in texts.iter().enumerate() {
        check_text(text, config.max_text_chars).map_err(|p| p.at(&format!("texts[{i}]")))?;
    }
    let model = state.slot().load();
    let texts = texts
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            Text::encode(&model, t.into_owned()).map_err(|e| {
                let e = EngineError::model(&model, format!("texts[{i}]: {e}"));
                engine_error(state, id, e)
            })
        })
        .collect::<Result<_, _>>()?;
    drop(model);
    let receiver = arrival.submit(Texts::Many(texts))?;
    let computed = receiver
        .await
        .map_err(|_| ApiError::internal("the model worker stopped before answering"))?
        .map_err(|e| engine_error(state, id, e))?;
    let model = &computed.model;
    let predictions = computed
        .probs
        .iter()
        .map(|probs| Prediction {
            label: top_label(&model.labels, probs),
            scores: Scores {
                labels: &model.labels,
                probs,
            },
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &BatchResponse {
            predictions,
            model: ModelRef {
                name: &model.name,
                version: &model.version,
            },
            request_id: id.as_str(),
        },
    ))
}

/// The label with the highest probability (the first one on ties).
fn top_label<'a>(labels: &'a [String], probs: &[f32]) -> &'a str {
    let mut best = 0;
    for (i, p) in probs.iter().enumerate() {
        if *p > probs[best] {
            best = i;
        }
    }
    labels.get(best).map_or("", String::as_str)
}

fn request_id(req: &Request) -> RequestId {
    req.extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(http::HeaderValue::from_static("none")))
}
