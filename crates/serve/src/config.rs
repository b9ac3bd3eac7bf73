//! The server's tuning knobs ([`ServeConfig`]): batching, queue, request limits, cache and
//! source polling, with the defaults `taxon serve` starts from and a check of their ranges.

use std::time::Duration;

use serde::Serialize;

use crate::error::ServeError;

/// Everything that shapes how the server batches, admits, caches and reloads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeConfig {
    /// Most texts in one model batch.
    pub max_batch_size: usize,
    /// Longest a batch waits for more requests after its first one was queued.
    pub max_wait: Duration,
    /// Most estimated tokens in one model batch (the first request is always taken whole).
    pub max_batch_tokens: usize,
    /// Texts admitted and not yet answered; beyond this, requests get 503 + `Retry-After`.
    pub queue_capacity: usize,
    /// Longest accepted text, in characters (Unicode scalar values).
    pub max_text_chars: usize,
    /// Most texts in one `/v1/predict/batch` request.
    pub max_batch_texts: usize,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Entries in the prediction cache (0 turns the cache off).
    pub cache_capacity: usize,
    /// Bytes the prediction cache may hold (its keys are hashes, so texts do not count).
    pub cache_max_bytes: usize,
    /// How long a cached prediction stays valid.
    pub cache_ttl: Duration,
    /// Model worker threads: each gathers and computes its own batches.
    pub workers: usize,
    /// Compute threads of each model worker (its own rayon pool, which the model's parallel
    /// kernels use); `None`: the cores this process may run on (its CPU affinity, so `taskset`
    /// counts) divided among the workers, at least 1.
    pub model_threads: Option<usize>,
    /// How often the source is asked what to serve (`None`: only at start and on admin reload).
    pub poll_interval: Option<Duration>,
    /// Prediction log, feedback and live accuracy.
    pub monitor: crate::monitor::MonitorConfig,
    /// Most open connections; at the cap a new one replaces the oldest idle or slow one.
    pub max_connections: usize,
    /// Longest a request head may take from its first byte.
    pub header_read_timeout: Duration,
    /// Longest a request body may take from the end of its head.
    pub body_read_timeout: Duration,
    /// Longest a connection may wait for its next request (or its first).
    pub idle_timeout: Duration,
    /// Answer 422 `unreadable_text` for a text the model knows no token of, instead of uniform
    /// scores with `known_tokens: 0`.
    pub refuse_unreadable: bool,
    /// What `POST /v1/admin/retrain` (an Alertmanager webhook) runs; `None`: the route answers
    /// 404 `retrain_not_configured`.
    pub retrain: Option<RetrainCommand>,
}

/// The command a firing alert starts: `program ARGS --cause alert:NAMES` in `dir`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrainCommand {
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    pub dir: std::path::PathBuf,
}

/// The request body that holds a batch of `texts` texts of `chars` characters each: 4 bytes
/// per character (the longest UTF-8 encoding), the quotes and commas around each text, and 64
/// bytes of envelope (`{"texts": [...]}` and whitespace).
pub fn body_bytes_for(texts: usize, chars: usize) -> usize {
    texts
        .saturating_mul(chars.saturating_mul(4).saturating_add(4))
        .saturating_add(64)
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            max_batch_size: 64,
            max_wait: Duration::from_millis(2),
            max_batch_tokens: 16_384,
            queue_capacity: 1024,
            max_text_chars: 20_000,
            max_batch_texts: 256,
            body_limit_bytes: body_bytes_for(256, 20_000),
            cache_capacity: 10_000,
            cache_max_bytes: 64 * 1024 * 1024,
            cache_ttl: Duration::from_secs(300),
            workers: 1,
            model_threads: None,
            poll_interval: None,
            monitor: crate::monitor::MonitorConfig::default(),
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            refuse_unreadable: false,
            retrain: None,
        }
    }
}

impl ServeConfig {
    /// Checks that every limit is usable; the error names the field and the accepted range.
    pub fn validate(&self) -> Result<(), ServeError> {
        let positive = [
            ("max_batch_size", self.max_batch_size),
            ("max_batch_tokens", self.max_batch_tokens),
            ("queue_capacity", self.queue_capacity),
            ("max_text_chars", self.max_text_chars),
            ("max_batch_texts", self.max_batch_texts),
            ("body_limit_bytes", self.body_limit_bytes),
            ("workers", self.workers),
            ("max_connections", self.max_connections),
        ];
        for (field, value) in positive {
            if value == 0 {
                return Err(ServeError::Config {
                    field,
                    message: "must be at least 1".into(),
                });
            }
        }
        if let Some(threads) = self.model_threads
            && !(1..=1024).contains(&threads)
        {
            return Err(ServeError::Config {
                field: "model_threads",
                message: format!("must be in 1..=1024, got {threads}"),
            });
        }
        if self.workers > 256 {
            return Err(ServeError::Config {
                field: "workers",
                message: format!("must be at most 256, got {}", self.workers),
            });
        }
        if self.max_batch_texts > self.queue_capacity {
            return Err(ServeError::Config {
                field: "max_batch_texts",
                message: format!(
                    "({}) must not exceed queue_capacity ({}): such a batch could never be admitted",
                    self.max_batch_texts, self.queue_capacity
                ),
            });
        }
        if self.max_wait > Duration::from_secs(10) {
            return Err(ServeError::Config {
                field: "max_wait",
                message: format!("must be at most 10 s, got {:?}", self.max_wait),
            });
        }
        if self.cache_capacity > 0 && self.cache_ttl.is_zero() {
            return Err(ServeError::Config {
                field: "cache_ttl",
                message:
                    "must be positive when the cache is on (set cache_capacity to 0 to turn it off)"
                        .into(),
            });
        }
        for (field, value) in [
            ("header_read_timeout", self.header_read_timeout),
            ("body_read_timeout", self.body_read_timeout),
            ("idle_timeout", self.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(ServeError::Config {
                    field,
                    message: "must be positive".into(),
                });
            }
        }
        if self
            .poll_interval
            .is_some_and(|p| p < Duration::from_millis(100))
        {
            return Err(ServeError::Config {
                field: "poll_interval",
                message: format!("must be at least 100 ms, got {:?}", self.poll_interval),
            });
        }
        Ok(())
    }

    /// The body the largest batch request this configuration admits may need
    /// ([`body_bytes_for`] of `max_batch_texts` texts of `max_text_chars` characters).
    pub fn largest_batch_bytes(&self) -> usize {
        body_bytes_for(self.max_batch_texts, self.max_text_chars)
    }

    /// A warning when `body_limit_bytes` cannot hold the largest batch request the text and
    /// batch limits admit (such requests are refused 413 before their texts are looked at).
    pub fn body_limit_warning(&self) -> Option<String> {
        let needed = self.largest_batch_bytes();
        (self.body_limit_bytes < needed).then(|| {
            format!(
                "the body limit ({} bytes) is below what a batch of {} texts of {} characters may need ({needed} bytes): such batches are refused with 413 (raise --body-limit or lower --max-batch-texts / --max-text-chars)",
                self.body_limit_bytes, self.max_batch_texts, self.max_text_chars
            )
        })
    }

    /// The compute threads of each model worker: `model_threads`, or the available cores
    /// divided among the workers.
    pub fn model_threads_per_worker(&self) -> usize {
        self.model_threads.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
            (cores / self.workers.max(1)).max(1)
        })
    }

    /// The limits a client needs to know, as `/v1/models` reports them.
    pub fn limits(&self) -> Limits {
        Limits {
            max_text_chars: self.max_text_chars,
            max_batch_texts: self.max_batch_texts,
            body_limit_bytes: self.body_limit_bytes,
            max_batch_size: self.max_batch_size,
            max_wait_ms: self.max_wait.as_secs_f64() * 1e3,
            max_batch_tokens: self.max_batch_tokens,
            queue_capacity: self.queue_capacity,
            cache_capacity: self.cache_capacity,
            cache_max_bytes: self.cache_max_bytes,
            cache_ttl_seconds: self.cache_ttl.as_secs_f64(),
            workers: self.workers,
            model_threads: self.model_threads_per_worker(),
            poll_interval_seconds: self.poll_interval.map(|p| p.as_secs_f64()),
            max_connections: self.max_connections,
            header_read_timeout_seconds: self.header_read_timeout.as_secs_f64(),
            body_read_timeout_seconds: self.body_read_timeout.as_secs_f64(),
            idle_timeout_seconds: self.idle_timeout.as_secs_f64(),
            refuse_unreadable: self.refuse_unreadable,
        }
    }
}

/// The configured limits, as reported by `GET /v1/models`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Limits {
    /// Longest accepted text, in characters.
    pub max_text_chars: usize,
    /// Most texts in one batch request.
    pub max_batch_texts: usize,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// Most texts in one model batch.
    pub max_batch_size: usize,
    /// Longest a batch waits for more requests, in milliseconds.
    pub max_wait_ms: f64,
    /// Most estimated tokens in one model batch.
    pub max_batch_tokens: usize,
    /// Texts admitted and not yet answered before requests are refused with 503.
    pub queue_capacity: usize,
    /// Prediction cache entries (0: off).
    pub cache_capacity: usize,
    /// Bytes the prediction cache may hold.
    pub cache_max_bytes: usize,
    /// Lifetime of a cached prediction, in seconds.
    pub cache_ttl_seconds: f64,
    /// Model worker threads.
    pub workers: usize,
    /// Compute threads of each model worker.
    pub model_threads: usize,
    /// Seconds between source polls (null: no polling).
    pub poll_interval_seconds: Option<f64>,
    /// Most open connections.
    pub max_connections: usize,
    /// Seconds a request head may take from its first byte.
    pub header_read_timeout_seconds: f64,
    /// Seconds a request body may take after its head.
    pub body_read_timeout_seconds: f64,
    /// Seconds a connection may wait for its next request.
    pub idle_timeout_seconds: f64,
    /// Whether texts the model knows no token of are refused (422) rather than answered with
    /// uniform scores.
    pub refuse_unreadable: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        ServeConfig::default().validate().unwrap();
    }

    #[test]
    fn the_default_body_limit_holds_the_largest_batch_of_the_default_limits() {
        let config = ServeConfig::default();
        assert_eq!(config.body_limit_warning(), None);
        // 256 texts of 20,000 four-byte characters, as JSON.
        let text = "\u{1F600}".repeat(config.max_text_chars);
        let body = serde_json::to_vec(&serde_json::json!({
            "texts": vec![text; config.max_batch_texts]
        }))
        .unwrap();
        assert!(
            body.len() <= config.body_limit_bytes,
            "{} > {}",
            body.len(),
            config.body_limit_bytes
        );
        let small = ServeConfig {
            body_limit_bytes: 2 * 1024 * 1024,
            ..ServeConfig::default()
        };
        let warning = small.body_limit_warning().unwrap();
        assert!(
            warning.contains("256 texts of 20000 characters"),
            "{warning}"
        );
    }

    #[test]
    fn zero_limits_are_refused_with_the_field_name() {
        let config = ServeConfig {
            max_batch_size: 0,
            ..ServeConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("max_batch_size"), "{err}");
        let config = ServeConfig {
            max_batch_texts: 2048,
            ..ServeConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("queue_capacity"), "{err}");
        let config = ServeConfig {
            model_threads: Some(0),
            ..ServeConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("model_threads"), "{err}");
    }

    #[test]
    fn model_threads_split_the_cores_among_workers_unless_given() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let config = ServeConfig::default();
        assert_eq!(config.model_threads_per_worker(), cores);
        let config = ServeConfig {
            workers: cores + 1,
            ..ServeConfig::default()
        };
        assert_eq!(config.model_threads_per_worker(), 1);
        let config = ServeConfig {
            workers: 2,
            model_threads: Some(3),
            ..ServeConfig::default()
        };
        assert_eq!(config.model_threads_per_worker(), 3);
    }
}
