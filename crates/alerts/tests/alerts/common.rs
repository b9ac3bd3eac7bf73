//! A webhook sink (an axum server on 127.0.0.1:0 that keeps every JSON body it receives and
//! can refuse the first N with 503), signals that read like the situations they describe,
//! and metrics that count.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::Value;
use taxon_alerts::{AlertMetrics, AlertsConfig, Signals, Totals};

#[derive(Default)]
struct SinkState {
    bodies: Vec<(Instant, Value)>,
    refuse: usize,
    refused: usize,
}

/// An HTTP endpoint that records the JSON it is sent.
#[derive(Clone)]
pub struct Sink {
    pub url: String,
    state: Arc<Mutex<SinkState>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        if Arc::strong_count(&self.task) == 1 {
            self.task.abort();
        }
    }
}

impl Sink {
    /// A sink answering 200 to everything.
    pub async fn start() -> Sink {
        Self::refusing(0).await
    }

    /// A sink answering 503 to its first `n` requests.
    pub async fn refusing(n: usize) -> Sink {
        let state = Arc::new(Mutex::new(SinkState {
            refuse: n,
            ..SinkState::default()
        }));
        let app = axum::Router::new()
            .route(
                "/hook",
                post(
                    |State(s): State<Arc<Mutex<SinkState>>>, body: axum::Json<Value>| async move {
                        let mut s = s.lock().unwrap();
                        if s.refused < s.refuse {
                            s.refused += 1;
                            return StatusCode::SERVICE_UNAVAILABLE;
                        }
                        s.bodies.push((Instant::now(), body.0));
                        StatusCode::OK
                    },
                ),
            )
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Sink {
            url,
            state,
            task: Arc::new(task),
        }
    }

    /// The bodies received so far.
    pub fn bodies(&self) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .bodies
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// When each body arrived.
    pub fn arrivals(&self) -> Vec<Instant> {
        self.state
            .lock()
            .unwrap()
            .bodies
            .iter()
            .map(|(t, _)| *t)
            .collect()
    }

    /// Requests refused so far.
    pub fn refused(&self) -> usize {
        self.state.lock().unwrap().refused
    }

    /// Waits until `n` bodies arrived (at most `within`), and returns them.
    pub async fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let b = self.bodies();
            if b.len() >= n || Instant::now() > deadline {
                return b;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Parses a YAML config (no environment).
pub fn config(yaml: &str, db: &Path) -> AlertsConfig {
    let text = format!("{yaml}\n  db: {}\n", db.display());
    AlertsConfig::parse(&text, Path::new("test-alerts.yaml"), |_| None)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// The served model `version` seeing `failures` authentication failures in `secs` seconds.
pub fn auth_failures(version: &str, failures: u64, secs: u64) -> Signals {
    Signals {
        model_version: version.into(),
        model_name: "news".into(),
        delta: Totals {
            auth_failures: failures,
            ..Totals::default()
        },
        interval: Duration::from_secs(secs),
        ..Signals::default()
    }
}

/// Metrics that count, by channel / rule.
#[derive(Default)]
pub struct Counted {
    pub sent: Mutex<BTreeMap<String, u64>>,
    pub failed: Mutex<BTreeMap<String, u64>>,
    pub dropped: Mutex<BTreeMap<String, u64>>,
    pub firing: Mutex<BTreeMap<String, bool>>,
}

impl AlertMetrics for Counted {
    fn notice(&self, channel: &str, sent: bool) {
        let map = if sent { &self.sent } else { &self.failed };
        *map.lock().unwrap().entry(channel.into()).or_default() += 1;
    }
    fn dropped(&self, channel: &str) {
        *self
            .dropped
            .lock()
            .unwrap()
            .entry(channel.into())
            .or_default() += 1;
    }
    fn firing(&self, rule: &str, _severity: &str, firing: bool) {
        self.firing.lock().unwrap().insert(rule.into(), firing);
    }
}

impl Counted {
    pub fn get(map: &Mutex<BTreeMap<String, u64>>, key: &str) -> u64 {
        map.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}
