//! A mirror of runs on an MLflow tracking server, through its REST API (`/api/2.0/mlflow/...`):
//! experiment get-or-create by name, run create, params / metrics (with steps and timestamps) /
//! tags in `log-batch` requests within the server's limits, artifacts, and the final status.
//!
//! Artifacts go where the run's `artifact_uri` says, as MLflow's own client does: through the
//! server's artifact proxy (`mlflow-artifacts:` URIs, `PUT /api/2.0/mlflow-artifacts/artifacts/`,
//! the default of `mlflow server` 2+) or, for a local-path artifact store, by copying into it.
//! Other stores (s3://, gs://, ...) are reported as skipped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::error::{Result, TrackError};

/// Params per `log-batch` request (MLflow's limit).
pub const MAX_PARAMS_PER_BATCH: usize = 100;
/// Tags per `log-batch` request.
pub const MAX_TAGS_PER_BATCH: usize = 100;
/// Metrics per `log-batch` request.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Longest param value MLflow 2+ accepts.
pub const PARAM_VALUE_LIMIT: usize = 6000;
/// Longest param value older servers accept.
pub const OLD_PARAM_VALUE_LIMIT: usize = 500;
/// Longest param key.
pub const PARAM_KEY_LIMIT: usize = 250;

/// A metric value at a step.
#[derive(Clone, Debug, PartialEq)]
pub struct Metric {
    pub key: String,
    pub value: f64,
    pub timestamp_ms: i64,
    pub step: u64,
}

/// A run created on the server.
#[derive(Clone, Debug, PartialEq)]
pub struct RemoteRun {
    pub run_id: String,
    pub experiment_id: String,
    pub artifact_uri: String,
}

/// A client of one MLflow tracking server.
pub struct MlflowClient {
    base: String,
    http: reqwest::blocking::Client,
    param_value_limit: AtomicUsize,
}

/// An error answer of the REST API.
struct ApiError {
    code: String,
    message: String,
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    s.chars().take(max).collect()
}

impl MlflowClient {
    /// A client of the server at `uri` (`http://host:port`, optionally with a path prefix).
    /// Credentials come from `MLFLOW_TRACKING_TOKEN` (bearer) or `MLFLOW_TRACKING_USERNAME` /
    /// `MLFLOW_TRACKING_PASSWORD` (basic), as MLflow's own client reads them.
    pub fn new(uri: &str) -> Result<Self> {
        let base = uri.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(TrackError::Mlflow {
                url: base,
                message: "the tracking URI must start with http:// or https://".into(),
            });
        }
        let mut headers = reqwest::header::HeaderMap::new();
        let auth = if let Ok(token) = std::env::var("MLFLOW_TRACKING_TOKEN") {
            Some(format!("Bearer {token}"))
        } else if let (Ok(u), Ok(p)) = (
            std::env::var("MLFLOW_TRACKING_USERNAME"),
            std::env::var("MLFLOW_TRACKING_PASSWORD"),
        ) {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            Some(format!("Basic {b64}"))
        } else {
            None
        };
        if let Some(a) = auth.and_then(|a| reqwest::header::HeaderValue::from_str(&a).ok()) {
            headers.insert(reqwest::header::AUTHORIZATION, a);
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .default_headers(headers)
            .build()
            .map_err(|e| TrackError::Mlflow {
                url: base.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            base,
            http,
            param_value_limit: AtomicUsize::new(PARAM_VALUE_LIMIT),
        })
    }

    fn fail(&self, endpoint: &str, message: impl Into<String>) -> TrackError {
        TrackError::Mlflow {
            url: format!("{}{endpoint}", self.base),
            message: message.into(),
        }
    }

    /// One API call; `Err(Ok(api_error))` for an error answer, `Err(Err(e))` for transport.
    fn call(
        &self,
        method: reqwest::Method,
        endpoint: &str,
        body: Option<&Value>,
        query: &[(&str, &str)],
    ) -> std::result::Result<Value, std::result::Result<ApiError, TrackError>> {
        let mut url = format!("{}/api/2.0/mlflow/{endpoint}", self.base);
        for (i, (k, v)) in query.iter().enumerate() {
            let v: String = url::form_urlencoded::byte_serialize(v.as_bytes()).collect();
            url.push_str(if i == 0 { "?" } else { "&" });
            url.push_str(&format!("{k}={v}"));
        }
        let mut req = self.http.request(method, &url);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req
            .send()
            .map_err(|e| Err(self.fail(endpoint, format!("cannot reach the server: {e}"))))?;
        let status = resp.status();
        let text = resp
            .text()
            .map_err(|e| Err(self.fail(endpoint, e.to_string())))?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(v);
        }
        match v.get("error_code").and_then(Value::as_str) {
            Some(code) => Err(Ok(ApiError {
                code: code.to_string(),
                message: v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })),
            None => Err(Err(self.fail(
                endpoint,
                format!("HTTP {status}: {}", truncate(text.trim(), 300)),
            ))),
        }
    }

    fn post(&self, endpoint: &str, body: &Value) -> Result<Value> {
        self.call(reqwest::Method::POST, endpoint, Some(body), &[])
            .map_err(|e| self.flatten(endpoint, e))
    }

    fn flatten(&self, endpoint: &str, e: std::result::Result<ApiError, TrackError>) -> TrackError {
        match e {
            Ok(api) => self.fail(endpoint, format!("{}: {}", api.code, api.message)),
            Err(t) => t,
        }
    }

    /// The id of experiment `name`, created when it does not exist.
    pub fn get_or_create_experiment(&self, name: &str) -> Result<String> {
        let ep = "experiments/get-by-name";
        let id_of = |v: &Value| -> Option<String> {
            v.pointer("/experiment/experiment_id")
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        match self.call(reqwest::Method::GET, ep, None, &[("experiment_name", name)]) {
            Ok(v) => {
                return id_of(&v).ok_or_else(|| self.fail(ep, "answer without experiment_id"));
            }
            Err(Ok(api)) if api.code == "RESOURCE_DOES_NOT_EXIST" => {}
            Err(e) => return Err(self.flatten(ep, e)),
        }
        let ep = "experiments/create";
        match self.call(
            reqwest::Method::POST,
            ep,
            Some(&json!({ "name": name })),
            &[],
        ) {
            Ok(v) => v
                .get("experiment_id")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| self.fail(ep, "answer without experiment_id")),
            // Another client created it in between: read it.
            Err(Ok(api)) if api.code == "RESOURCE_ALREADY_EXISTS" => {
                let v = self
                    .call(
                        reqwest::Method::GET,
                        "experiments/get-by-name",
                        None,
                        &[("experiment_name", name)],
                    )
                    .map_err(|e| self.flatten("experiments/get-by-name", e))?;
                id_of(&v).ok_or_else(|| self.fail(ep, "answer without experiment_id"))
            }
            Err(e) => Err(self.flatten(ep, e)),
        }
    }

    /// Creates a run (status RUNNING) in `experiment_id`.
    pub fn create_run(
        &self,
        experiment_id: &str,
        name: &str,
        start_ms: i64,
        tags: &[(String, String)],
    ) -> Result<RemoteRun> {
        let ep = "runs/create";
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        let v = self.post(
            ep,
            &json!({"experiment_id": experiment_id, "run_name": name, "start_time": start_ms,
                    "tags": tags}),
        )?;
        let info = v
            .pointer("/run/info")
            .ok_or_else(|| self.fail(ep, "answer without run.info"))?;
        let s = |k: &str| info.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(RemoteRun {
            run_id: s("run_id")
                .or_else(|| s("run_uuid"))
                .ok_or_else(|| self.fail(ep, "answer without run_id"))?,
            experiment_id: experiment_id.to_string(),
            artifact_uri: s("artifact_uri").unwrap_or_default(),
        })
    }

    /// Logs params (values cut to the server's limit), in batches of 100.
    pub fn log_params(&self, run_id: &str, params: &[(String, String)]) -> Result<()> {
        for chunk in params.chunks(MAX_PARAMS_PER_BATCH) {
            let body = |limit: usize| -> Value {
                let ps: Vec<Value> = chunk
                    .iter()
                    .map(|(k, v)| {
                        json!({"key": truncate(k, PARAM_KEY_LIMIT), "value": truncate(v, limit)})
                    })
                    .collect();
                json!({"run_id": run_id, "params": ps})
            };
            let limit = self.param_value_limit.load(Ordering::Relaxed);
            match self.call(
                reqwest::Method::POST,
                "runs/log-batch",
                Some(&body(limit)),
                &[],
            ) {
                Ok(_) => {}
                // Servers before MLflow 2 accept 500 characters: retry with that limit.
                Err(Ok(api))
                    if api.code == "INVALID_PARAMETER_VALUE"
                        && limit > OLD_PARAM_VALUE_LIMIT
                        && chunk
                            .iter()
                            .any(|(_, v)| v.chars().count() > OLD_PARAM_VALUE_LIMIT) =>
                {
                    self.param_value_limit
                        .store(OLD_PARAM_VALUE_LIMIT, Ordering::Relaxed);
                    self.post("runs/log-batch", &body(OLD_PARAM_VALUE_LIMIT))?;
                }
                Err(e) => return Err(self.flatten("runs/log-batch", e)),
            }
        }
        Ok(())
    }

    /// Logs metrics with steps and timestamps (non-finite values are left out), in batches.
    pub fn log_metrics(&self, run_id: &str, metrics: &[Metric]) -> Result<()> {
        let finite: Vec<&Metric> = metrics.iter().filter(|m| m.value.is_finite()).collect();
        for chunk in finite.chunks(MAX_METRICS_PER_BATCH) {
            let ms: Vec<Value> = chunk
                .iter()
                .map(|m| {
                    json!({"key": m.key, "value": m.value, "timestamp": m.timestamp_ms,
                           "step": m.step})
                })
                .collect();
            self.post("runs/log-batch", &json!({"run_id": run_id, "metrics": ms}))?;
        }
        Ok(())
    }

    /// Sets tags, in batches of 100.
    pub fn set_tags(&self, run_id: &str, tags: &[(String, String)]) -> Result<()> {
        for chunk in tags.chunks(MAX_TAGS_PER_BATCH) {
            let ts: Vec<Value> = chunk
                .iter()
                .map(|(k, v)| json!({"key": k, "value": v}))
                .collect();
            self.post("runs/log-batch", &json!({"run_id": run_id, "tags": ts}))?;
        }
        Ok(())
    }

    /// Ends the run: `FINISHED`, `FAILED` or `KILLED`.
    pub fn update_run(&self, run_id: &str, status: &str, end_ms: i64) -> Result<()> {
        self.post(
            "runs/update",
            &json!({"run_id": run_id, "status": status, "end_time": end_ms}),
        )?;
        Ok(())
    }

    /// Stores `local` as artifact `rel` (a `/`-separated path) of a run whose artifact root is
    /// `artifact_uri`. Returns false when the artifact store is one taxon does not write to.
    pub fn upload_artifact(&self, artifact_uri: &str, rel: &str, local: &Path) -> Result<bool> {
        if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
            // `mlflow-artifacts:/path` or `mlflow-artifacts://host:port/path`.
            let path = match rest.strip_prefix("//") {
                Some(r) => r.split_once('/').map_or("", |(_, p)| p),
                None => rest.trim_start_matches('/'),
            };
            let url = format!(
                "{}/api/2.0/mlflow-artifacts/artifacts/{}/{}",
                self.base,
                path.trim_end_matches('/'),
                rel
            );
            let bytes = std::fs::read(local).map_err(|source| TrackError::Io {
                path: local.to_path_buf(),
                source,
            })?;
            let resp = self
                .http
                .put(&url)
                .body(bytes)
                .send()
                .map_err(|e| TrackError::Mlflow {
                    url: url.clone(),
                    message: format!("artifact upload: {e}"),
                })?;
            if !resp.status().is_success() {
                let status = resp.status();
                let text = resp.text().unwrap_or_default();
                return Err(TrackError::Mlflow {
                    url,
                    message: format!("artifact upload: HTTP {status}: {}", truncate(&text, 300)),
                });
            }
            return Ok(true);
        }
        let local_root = if let Some(p) = artifact_uri.strip_prefix("file://") {
            Some(PathBuf::from(p))
        } else if artifact_uri.starts_with('/') {
            Some(PathBuf::from(artifact_uri))
        } else {
            None
        };
        let Some(root) = local_root else {
            return Ok(false);
        };
        let dest = root.join(rel);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| TrackError::Io { path, source }
        };
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::copy(local, &dest).map_err(io(&dest))?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_counts_characters_not_bytes() {
        assert_eq!(truncate("héllo", 2), "hé");
        assert_eq!(truncate("abc", 5), "abc");
    }

    #[test]
    fn a_tracking_uri_must_be_http() {
        assert!(MlflowClient::new("ftp://x").is_err());
        assert!(MlflowClient::new("http://127.0.0.1:5000/").is_ok());
    }
}
