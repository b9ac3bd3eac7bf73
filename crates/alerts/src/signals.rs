//! [`Signals`]: what the server tells the engine at each evaluation (the served model's
//! version, drift, live accuracy, the interval's p99 latency and counter deltas), and the
//! value each [`Condition`] reads from it.

use std::time::{Duration, Instant};

use crate::config::Condition;

/// One feature of the online drift window.
#[derive(Clone, Debug, PartialEq)]
pub struct DriftFeature {
    pub name: String,
    pub score: f64,
    pub threshold: f64,
    pub drifted: bool,
}

/// The online drift comparison of the served model.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriftSignal {
    /// `taxon_drift_detected`: some feature drifted.
    pub detected: bool,
    pub features: Vec<DriftFeature>,
}

/// Counters since the server started (or deltas of them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Prediction requests answered.
    pub requests: u64,
    /// Of those, answered 5xx (model errors included).
    pub errors: u64,
    /// Of those, shed with 503 (queue full).
    pub shed: u64,
    /// Authentication failures (every reason).
    pub auth_failures: u64,
    /// Logins refused by a rate limit.
    pub login_limited: u64,
}

impl Totals {
    fn minus(self, earlier: Totals) -> Totals {
        Totals {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            shed: self.shed.saturating_sub(earlier.shed),
            auth_failures: self.auth_failures.saturating_sub(earlier.auth_failures),
            login_limited: self.login_limited.saturating_sub(earlier.login_limited),
        }
    }
}

/// Turns running totals into deltas over the time since the previous call (the first call:
/// since the tracker was made).
#[derive(Debug)]
pub struct DeltaTracker {
    last: Totals,
    at: Instant,
}

impl Default for DeltaTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl DeltaTracker {
    pub fn new() -> Self {
        Self {
            last: Totals::default(),
            at: Instant::now(),
        }
    }

    /// The deltas since the previous call and the time they span.
    pub fn delta(&mut self, now: Totals) -> (Totals, Duration) {
        let at = Instant::now();
        let d = now.minus(self.last);
        let span = at.duration_since(self.at);
        self.last = now;
        self.at = at;
        (d, span)
    }
}

/// A snapshot of the server, taken at each evaluation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signals {
    /// The served model's version.
    pub model_version: String,
    /// The served model's name.
    pub model_name: String,
    /// `None` when the model has no reference profile or the window is empty.
    pub drift: Option<DriftSignal>,
    /// Live accuracy of the served version; `None` before any feedback.
    pub accuracy: Option<f64>,
    /// p99 of the model's compute time per prediction over the interval, in seconds; `None`
    /// when nothing was computed.
    pub latency_p99: Option<f64>,
    /// Counter deltas over the interval.
    pub delta: Totals,
    /// The interval the deltas span.
    pub interval: Duration,
}

impl Signals {
    /// The value `condition` compares with its threshold; `None` when there is nothing to
    /// judge (no feedback, no traffic): the condition does not hold.
    pub fn value(&self, condition: Condition) -> Option<f64> {
        let ratio =
            |n: u64| (self.delta.requests > 0).then(|| n as f64 / self.delta.requests as f64);
        let per_minute = |n: u64| {
            let secs = self.interval.as_secs_f64();
            (secs > 0.0).then(|| n as f64 * 60.0 / secs)
        };
        match condition {
            Condition::Drift => self
                .drift
                .as_ref()
                .map(|d| d.features.iter().filter(|f| f.drifted).count() as f64),
            Condition::AccuracyBelow => self.accuracy,
            Condition::LatencyP99Above => self.latency_p99,
            Condition::ErrorRatioAbove => ratio(self.delta.errors),
            Condition::ShedRatioAbove => ratio(self.delta.shed),
            Condition::AuthFailuresAbove => per_minute(self.delta.auth_failures),
            Condition::LoginLimitedAbove => per_minute(self.delta.login_limited),
        }
    }

    /// A sentence on what `condition`'s `value` means, for notices.
    pub fn describe(&self, condition: Condition, value: f64, threshold: f64) -> String {
        match condition {
            Condition::Drift => {
                let drifted: Vec<String> = self
                    .drift
                    .iter()
                    .flat_map(|d| &d.features)
                    .filter(|f| f.drifted)
                    .map(|f| format!("{} {:.3} past {:.3}", f.name, f.score, f.threshold))
                    .collect();
                format!(
                    "{value} feature(s) of the online window drift from the reference profile: {}",
                    if drifted.is_empty() {
                        "none now".to_string()
                    } else {
                        drifted.join(", ")
                    }
                )
            }
            Condition::AccuracyBelow => {
                format!("live accuracy from feedback is {value:.3}, below {threshold}")
            }
            Condition::LatencyP99Above => format!(
                "p99 model latency over the last {:.0} s is {:.1} ms, above {:.1} ms",
                self.interval.as_secs_f64(),
                value * 1e3,
                threshold * 1e3
            ),
            Condition::ErrorRatioAbove => format!(
                "{:.1}% of {} prediction requests failed with 5xx over the last {:.0} s (threshold {:.1}%)",
                value * 100.0,
                self.delta.requests,
                self.interval.as_secs_f64(),
                threshold * 100.0
            ),
            Condition::ShedRatioAbove => format!(
                "{:.1}% of {} prediction requests were shed with 503 over the last {:.0} s (threshold {:.1}%)",
                value * 100.0,
                self.delta.requests,
                self.interval.as_secs_f64(),
                threshold * 100.0
            ),
            Condition::AuthFailuresAbove => format!(
                "{value:.1} authentication failures per minute ({} in {:.0} s), above {threshold}",
                self.delta.auth_failures,
                self.interval.as_secs_f64()
            ),
            Condition::LoginLimitedAbove => format!(
                "{value:.1} rate-limited logins per minute ({} in {:.0} s), above {threshold}",
                self.delta.login_limited,
                self.interval.as_secs_f64()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_per_condition() {
        let s = Signals {
            delta: Totals {
                requests: 200,
                errors: 10,
                shed: 50,
                auth_failures: 30,
                login_limited: 0,
            },
            interval: Duration::from_secs(30),
            accuracy: Some(0.75),
            drift: Some(DriftSignal {
                detected: true,
                features: vec![
                    DriftFeature {
                        name: "confidence".into(),
                        score: 0.4,
                        threshold: 0.2,
                        drifted: true,
                    },
                    DriftFeature {
                        name: "tokens".into(),
                        score: 0.1,
                        threshold: 0.2,
                        drifted: false,
                    },
                ],
            }),
            ..Signals::default()
        };
        assert_eq!(s.value(Condition::ErrorRatioAbove), Some(0.05));
        assert_eq!(s.value(Condition::ShedRatioAbove), Some(0.25));
        assert_eq!(s.value(Condition::AuthFailuresAbove), Some(60.0));
        assert_eq!(s.value(Condition::LoginLimitedAbove), Some(0.0));
        assert_eq!(s.value(Condition::Drift), Some(1.0));
        assert_eq!(s.value(Condition::AccuracyBelow), Some(0.75));
        assert_eq!(s.value(Condition::LatencyP99Above), None);
        assert!(
            s.describe(Condition::Drift, 1.0, 0.0)
                .contains("confidence 0.400 past 0.200")
        );
        let idle = Signals::default();
        assert_eq!(idle.value(Condition::ErrorRatioAbove), None);
    }

    #[test]
    fn deltas_follow_the_totals() {
        let mut t = DeltaTracker::new();
        let (d, _) = t.delta(Totals {
            requests: 5,
            ..Totals::default()
        });
        assert_eq!(d.requests, 5);
        let (d, _) = t.delta(Totals {
            requests: 12,
            errors: 1,
            ..Totals::default()
        });
        assert_eq!((d.requests, d.errors), (7, 1));
    }
}
