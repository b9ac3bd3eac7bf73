//! Embedded alerts for `taxon serve --alerts alerts.yaml`: rules over the server's own signals
//! (drift, live accuracy, latency, error and shed ratios, authentication failures, login rate
//! limits), evaluated on a timer, sent to Slack, webhooks and e-mail with no other service.
//!
//! How an alert flows:
//!
//! ```text
//! alerts.yaml --(config: load, validate, env secrets)--> AlertsConfig
//! server metrics/monitor --(the server, every evaluate_every)--> Signals
//! Signals --(engine: per rule pending -> firing after `for`, resolved; dedup per
//!            (rule, model version), repeat after repeat_interval; grouping per channel)-->
//!   history (SQLite, one transaction per write) + one Message per channel
//! Message --(outbox: a bounded queue and a task per channel, retries with capped
//!            exponential backoff)--> send (Slack / webhook over HTTP, e-mail over SMTP)
//! ```
//!
//! Nothing here runs on the request path: the server only reads its counters into
//! [`Signals`], and a channel that is down delays only its own notices.

pub mod config;
pub mod engine;
pub mod error;
pub mod history;
pub mod notice;
pub mod outbox;
pub mod send;
pub mod signals;

pub use config::{
    AlertsConfig, Channel, Condition, EmailChannel, Rule, Secret, Settings, Severity, Tls,
};
pub use engine::{Engine, run};
pub use error::{AlertsError, ConfigError};
pub use history::{AlertRow, Delivery, History};
pub use notice::{Message, Notice, Status};
pub use outbox::{AlertMetrics, NoMetrics, Outbox};
pub use send::{Sender, test_notice};
pub use signals::{DeltaTracker, DriftFeature, DriftSignal, Signals, Totals};
