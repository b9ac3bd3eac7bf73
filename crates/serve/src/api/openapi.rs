//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! request and response types' `ToSchema` derives, served at `GET /openapi.json`.

use std::sync::OnceLock;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use utoipa::OpenApi;

use super::{admin, feedback, models, ops, predict};

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
        openapi_json,
        super::docs::docs_page,
    ),
    tags(
        (name = "predict", description = "Classify texts and describe the served model"),
        (name = "operations", description = "Liveness, readiness, metrics and documentation"),
        (name = "admin", description = "Model management"),
    )
)]
pub struct ApiDoc;

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

/// This API's OpenAPI 3 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub async fn openapi_json() -> Response {
    let mut response = Response::new(Body::from(document_json()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
