//! The engine: at each evaluation, every rule's condition is read from the [`Signals`]; one
//! that holds is pending until it has held for the rule's `for`, then fires; one that stops
//! holding resolves. Alerts are deduplicated per (rule, model version): one firing notice,
//! repeated only after `repeat_interval`, and one resolved notice (a hot swap to another
//! version resolves the old version's alert). The notices due at one evaluation for one
//! channel go out as one message. Every alert and notice is written to the history.
//!
//! [`Engine::tick`] takes the time as an argument, so tests drive it without sleeping;
//! [`run`] calls it on a timer.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{AlertsConfig, Condition, Rule};
use crate::error::AlertsError;
use crate::history::{Fired, History};
use crate::notice::{Message, Notice, Status};
use crate::outbox::{AlertMetrics, Outbox};
use crate::send::Sender;
use crate::signals::Signals;

/// An alert firing.
#[derive(Clone, Debug)]
struct Firing {
    alert_id: i64,
    started_at: DateTime<Utc>,
    last_notified: DateTime<Utc>,
    value: f64,
    description: String,
}

/// One rule's state, for the model version it was last evaluated on.
#[derive(Clone, Debug, Default)]
struct RuleState {
    version: String,
    pending_since: Option<DateTime<Utc>>,
    firing: Option<Firing>,
}

/// Evaluates rules and queues their notices.
pub struct Engine {
    config: AlertsConfig,
    history: History,
    outbox: Outbox,
    metrics: Arc<dyn AlertMetrics>,
    states: HashMap<String, RuleState>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config.path)
            .field("rules", &self.config.rules.len())
            .finish_non_exhaustive()
    }
}

fn to_chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Engine {
    /// Opens the history (closing alerts a stopped server left open) and starts the outbox's
    /// channel tasks on the current Tokio runtime.
    pub fn start(
        config: AlertsConfig,
        metrics: Arc<dyn AlertMetrics>,
    ) -> Result<Self, AlertsError> {
        let history = History::open(&config.settings.db)?;
        let closed = history.close_orphans(Utc::now())?;
        if closed > 0 {
            tracing::info!(closed, "closed alerts left firing by a previous server");
        }
        let sender = Sender::new().map_err(|message| AlertsError::Send {
            channel: "*".into(),
            message,
        })?;
        let outbox = Outbox::start(
            &config.channels,
            &config.settings,
            sender,
            history.clone(),
            Arc::clone(&metrics),
        );
        for rule in &config.rules {
            metrics.firing(&rule.name, rule.severity.name(), false);
        }
        Ok(Self {
            config,
            history,
            outbox,
            metrics,
            states: HashMap::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AlertsConfig {
        &self.config
    }

    /// The history.
    pub fn history(&self) -> &History {
        &self.history
    }

    /// Evaluates every rule on `signals` at `now`, queues the notices that are due (grouped
    /// per channel) and returns them.
    pub fn tick(&mut self, signals: &Signals, now: DateTime<Utc>) -> BTreeMap<String, Message> {
        let mut due: BTreeMap<String, Message> = BTreeMap::new();
        let rules = self.config.rules.clone();
        for rule in &rules {
            let value = signals.value(rule.condition);
            let holds = value.is_some_and(|v| rule.condition.holds(v, rule.threshold));
            let mut state = self.states.remove(&rule.name).unwrap_or_default();
            if state.version != signals.model_version {
                // Another model is served: its alerts are its own.
                if let Some(f) = state.firing.take() {
                    self.resolve(rule, &state.version, signals, f, now, &mut due);
                }
                state = RuleState {
                    version: signals.model_version.clone(),
                    ..RuleState::default()
                };
            }
            if holds {
                let value = value.unwrap_or_default();
                let description = signals.describe(rule.condition, value, rule.threshold);
                match &mut state.firing {
                    Some(f) => {
                        f.value = value;
                        f.description = description;
                        if now - f.last_notified >= to_chrono(self.config.settings.repeat_interval)
                        {
                            f.last_notified = now;
                            let f = f.clone();
                            self.notify(
                                rule,
                                &state.version,
                                signals,
                                &f,
                                None,
                                "repeat",
                                now,
                                &mut due,
                            );
                        }
                    }
                    None => {
                        let since = *state.pending_since.get_or_insert(now);
                        if now - since >= to_chrono(rule.for_) {
                            let f = self.fire(rule, &state.version, value, description, since, now);
                            self.notify(
                                rule,
                                &state.version,
                                signals,
                                &f,
                                None,
                                "firing",
                                now,
                                &mut due,
                            );
                            state.firing = Some(f);
                            state.pending_since = None;
                        }
                    }
                }
            } else {
                state.pending_since = None;
                if let Some(mut f) = state.firing.take() {
                    if let Some(v) = value {
                        f.value = v;
                    }
                    let version = state.version.clone();
                    self.resolve(rule, &version, signals, f, now, &mut due);
                }
            }
            self.states.insert(rule.name.clone(), state);
        }
        for (channel, message) in &due {
            self.outbox.push(channel, message.clone());
        }
        due
    }

    /// Records a new alert and reports it firing.
    fn fire(
        &self,
        rule: &Rule,
        version: &str,
        value: f64,
        description: String,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Firing {
        let summary = summary(rule, value);
        let alert_id = match self.history.fired(&Fired {
            rule: &rule.name,
            condition: rule.condition.name(),
            severity: rule.severity.name(),
            model_version: version,
            value,
            threshold: rule.threshold,
            summary: &summary,
            started_at: since,
        }) {
            Ok(id) => id,
            Err(e) => {
                tracing::error!(error = %e, rule = %rule.name, "could not record a firing alert");
                0
            }
        };
        self.metrics.firing(&rule.name, rule.severity.name(), true);
        tracing::warn!(
            rule = %rule.name,
            severity = %rule.severity,
            model_version = version,
            value,
            threshold = rule.threshold,
            "alert firing: {description}"
        );
        Firing {
            alert_id,
            started_at: since,
            last_notified: now,
            value,
            description,
        }
    }

    fn resolve(
        &self,
        rule: &Rule,
        version: &str,
        signals: &Signals,
        f: Firing,
        now: DateTime<Utc>,
        due: &mut BTreeMap<String, Message>,
    ) {
        if let Err(e) = self.history.resolved(f.alert_id, now) {
            tracing::error!(error = %e, rule = %rule.name, "could not record a resolved alert");
        }
        self.metrics.firing(&rule.name, rule.severity.name(), false);
        tracing::info!(rule = %rule.name, model_version = version, "alert resolved");
        let mut f = f;
        f.description = if version == signals.model_version {
            format!(
                "The condition no longer holds (now {}; threshold {}).",
                (f.value * 1e4).round() / 1e4,
                rule.threshold
            )
        } else {
            format!(
                "Model version {version} is no longer served ({} is); its alert is closed.",
                signals.model_version
            )
        };
        self.notify(rule, version, signals, &f, Some(now), "resolved", now, due);
    }

    /// Adds the notice of `f` to each of the rule's channels' messages, recording each.
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &self,
        rule: &Rule,
        version: &str,
        signals: &Signals,
        f: &Firing,
        resolved_at: Option<DateTime<Utc>>,
        kind: &str,
        now: DateTime<Utc>,
        due: &mut BTreeMap<String, Message>,
    ) {
        let notice = Notice {
            status: if resolved_at.is_some() {
                Status::Resolved
            } else {
                Status::Firing
            },
            alert: rule.name.clone(),
            severity: rule.severity.name().into(),
            summary: summary(rule, f.value),
            description: f.description.clone(),
            value: f.value,
            threshold: rule.threshold,
            model_version: version.into(),
            started_at: f.started_at,
            resolved_at,
            labels: BTreeMap::from([
                ("rule".to_string(), rule.name.clone()),
                ("condition".to_string(), rule.condition.name().to_string()),
                ("severity".to_string(), rule.severity.name().to_string()),
                ("model".to_string(), signals.model_name.clone()),
            ]),
            alert_id: f.alert_id,
        };
        for channel in &rule.channels {
            let delivery = match self.history.queued(f.alert_id, kind, channel, now) {
                Ok(id) => Some(id),
                Err(e) => {
                    tracing::error!(error = %e, channel, "could not record a queued notice");
                    None
                }
            };
            let m = due.entry(channel.clone()).or_insert_with(|| Message {
                notices: Vec::new(),
                deliveries: Vec::new(),
            });
            m.notices.push(notice.clone());
            m.deliveries.extend(delivery);
        }
    }
}

/// The rule's summary, or one made of its condition.
fn summary(rule: &Rule, value: f64) -> String {
    if let Some(s) = &rule.summary {
        return s.clone();
    }
    let op = match rule.condition {
        Condition::AccuracyBelow => "below",
        _ => "above",
    };
    match rule.condition {
        Condition::Drift => format!("{}: online drift detected", rule.name),
        c => format!(
            "{}: {} {} {op} {}",
            rule.name,
            c.name()
                .trim_end_matches("_above")
                .trim_end_matches("_below"),
            (value * 1e4).round() / 1e4,
            rule.threshold
        ),
    }
}

/// Evaluates `engine`'s rules every `evaluate_every` on what `signals` returns, until
/// `shutdown` completes. The rules and history writes run on a blocking thread, never on
/// the request path.
pub async fn run<F, S>(engine: Engine, signals: F, shutdown: S)
where
    F: FnMut() -> Signals + Send + 'static,
    S: Future<Output = ()>,
{
    let mut every = tokio::time::interval(engine.config.settings.evaluate_every);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick of an interval is immediate: skip it, so deltas span a whole interval.
    every.tick().await;
    tokio::pin!(shutdown);
    // The engine and the signal reader move to a blocking thread at each evaluation (the
    // drift comparison and the history writes take milliseconds) and come back.
    let mut parts = Some((engine, signals));
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = &mut shutdown => break,
        }
        let Some((mut engine, mut signals)) = parts.take() else {
            break;
        };
        match tokio::task::spawn_blocking(move || {
            let snapshot = signals();
            engine.tick(&snapshot, Utc::now());
            (engine, signals)
        })
        .await
        {
            Ok(back) => parts = Some(back),
            Err(err) => {
                tracing::error!(error = %err, "alert evaluation failed; alerts are off");
                break;
            }
        }
    }
}
