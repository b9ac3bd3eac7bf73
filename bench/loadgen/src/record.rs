//! What a run measures: outcome counts, latency histograms (all responses and 2xx only), the
//! values of a tracked response field, and per-second rows for the timeline.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The largest latency the histograms hold, in microseconds (one hour); longer ones saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// How one request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx response; `tracked` holds the tracked field's value when `--track-field` is set.
    Ok {
        /// The status code.
        status: u16,
        /// The tracked field's value, if any.
        tracked: Option<String>,
    },
    /// A 503: the server refused the request because it is full.
    Rejected {
        /// Whether the response carried `Retry-After`.
        retry_after: bool,
    },
    /// Anything else: an error status, a broken connection or a timeout.
    Failed(Failure),
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A status that is neither 2xx nor 503.
    Status(u16),
    /// The connection could not be opened.
    Connect,
    /// The connection broke while the request was in flight.
    Io,
    /// No full response within `--timeout`.
    Timeout,
}

/// Request counts by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// All recorded requests: `ok + rejected + failed`.
    pub requests: u64,
    /// 2xx responses.
    pub ok: u64,
    /// 503 responses.
    pub rejected: u64,
    /// 503 responses without a `Retry-After` header.
    pub rejected_without_retry_after: u64,
    /// Failed requests, all causes.
    pub failed: u64,
    /// Failed with a status other than 2xx and 503.
    pub failed_status: u64,
    /// Failed to connect.
    pub failed_connect: u64,
    /// Failed because the connection broke.
    pub failed_io: u64,
    /// Failed because no response came within the timeout.
    pub failed_timeout: u64,
}

/// Latency percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Number of latencies recorded.
    pub count: u64,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest.
    pub max_us: u64,
}

impl LatencySummary {
    /// Summarises a histogram of microseconds; all zeros when it is empty.
    pub fn of<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean_us: h.mean(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
        }
    }
}

/// One value of the tracked field: how often and when (seconds after the measured window
/// opened) it was seen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackedValue {
    /// The value (strings as they are, other JSON values as JSON text).
    pub value: String,
    /// Responses that carried it.
    pub count: u64,
    /// First response with it.
    pub first_s: f64,
    /// Last response with it.
    pub last_s: f64,
}

/// One second of the timeline (by response time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TimelineRow {
    /// Seconds after the measured window opened.
    pub second: u64,
    /// 2xx responses.
    pub ok: u64,
    /// 503 responses.
    pub rejected: u64,
    /// Failed requests.
    pub failed: u64,
    /// 99th percentile latency of the 2xx responses of that second, in microseconds.
    pub ok_p99_us: u64,
}

/// Everything a run recorded, ready for the report.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Outcome counts.
    pub counts: Counts,
    /// Responses per status code.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of every recorded request (failures included).
    pub latency_all: LatencySummary,
    /// Latency of 2xx responses.
    pub latency_ok: LatencySummary,
    /// Latency of 2xx responses from the moment they were sent (equal to `latency_ok` in a
    /// closed loop; in an open loop it leaves out the wait for a free connection).
    pub latency_ok_service: LatencySummary,
    /// Values of the tracked field in order of first appearance (empty without tracking).
    pub tracked: Vec<TrackedValue>,
    /// Per-second rows when the timeline was asked for.
    pub timeline: Option<Vec<TimelineRow>>,
}

/// One second's counters and latencies.
struct Second {
    ok: u64,
    rejected: u64,
    failed: u64,
    ok_latency: Histogram<u32>,
}

/// Collects outcomes; a run shares one behind a mutex (a lock costs far less than a request).
pub struct Recorder {
    all: Histogram<u64>,
    ok: Histogram<u64>,
    ok_service: Histogram<u64>,
    counts: Counts,
    statuses: BTreeMap<u16, u64>,
    tracked: BTreeMap<String, TrackedValue>,
    timeline: Option<Vec<Second>>,
    last_second: u64,
}

impl Recorder {
    /// A recorder for a window of `window` (responses after its end count in its last second);
    /// with `timeline`, it keeps per-second rows.
    pub fn new(window: Duration, timeline: bool) -> Self {
        Self {
            all: histogram(3),
            ok: histogram(3),
            ok_service: histogram(3),
            counts: Counts::default(),
            statuses: BTreeMap::new(),
            tracked: BTreeMap::new(),
            timeline: timeline.then(Vec::new),
            last_second: window.as_secs_f64().ceil().max(1.0) as u64 - 1,
        }
    }

    /// Records a request that ended `at` after the window opened, `latency` after it was
    /// sent.
    pub fn record(&mut self, at: Duration, latency: Duration, outcome: &Outcome) {
        self.record_with_service(at, latency, latency, outcome);
    }

    /// Records a request that ended `at` after the window opened, `latency` after it was
    /// due (an open loop's scheduled time) and `service` after it was sent.
    pub fn record_with_service(
        &mut self,
        at: Duration,
        latency: Duration,
        service: Duration,
        outcome: &Outcome,
    ) {
        let us = micros(latency);
        self.all.saturating_record(us);
        let c = &mut self.counts;
        c.requests += 1;
        match outcome {
            Outcome::Ok { status, tracked } => {
                c.ok += 1;
                *self.statuses.entry(*status).or_default() += 1;
                self.ok.saturating_record(us);
                self.ok_service.saturating_record(micros(service));
                if let Some(value) = tracked {
                    let t = at.as_secs_f64();
                    let seen = self
                        .tracked
                        .entry(value.clone())
                        .or_insert_with(|| TrackedValue {
                            value: value.clone(),
                            count: 0,
                            first_s: t,
                            last_s: t,
                        });
                    seen.count += 1;
                    seen.first_s = seen.first_s.min(t);
                    seen.last_s = seen.last_s.max(t);
                }
            }
            Outcome::Rejected { retry_after } => {
                c.rejected += 1;
                c.rejected_without_retry_after += u64::from(!retry_after);
                *self.statuses.entry(503).or_default() += 1;
            }
            Outcome::Failed(failure) => {
                c.failed += 1;
                match failure {
                    Failure::Status(status) => {
                        c.failed_status += 1;
                        *self.statuses.entry(*status).or_default() += 1;
                    }
                    Failure::Connect => c.failed_connect += 1,
                    Failure::Io => c.failed_io += 1,
                    Failure::Timeout => c.failed_timeout += 1,
                }
            }
        }
        if let Some(seconds) = &mut self.timeline {
            let index = at.as_secs().min(self.last_second) as usize;
            while seconds.len() <= index {
                seconds.push(Second {
                    ok: 0,
                    rejected: 0,
                    failed: 0,
                    ok_latency: histogram(2),
                });
            }
            let s = &mut seconds[index];
            match outcome {
                Outcome::Ok { .. } => {
                    s.ok += 1;
                    s.ok_latency.saturating_record(us);
                }
                Outcome::Rejected { .. } => s.rejected += 1,
                Outcome::Failed(_) => s.failed += 1,
            }
        }
    }

    /// The counts so far.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    /// Summarises what was recorded.
    pub fn finish(self) -> Recorded {
        let mut tracked: Vec<TrackedValue> = self.tracked.into_values().collect();
        tracked.sort_by(|a, b| {
            a.first_s
                .total_cmp(&b.first_s)
                .then_with(|| a.value.cmp(&b.value))
        });
        let timeline = self.timeline.map(|seconds| {
            seconds
                .iter()
                .enumerate()
                .map(|(i, s)| TimelineRow {
                    second: i as u64,
                    ok: s.ok,
                    rejected: s.rejected,
                    failed: s.failed,
                    ok_p99_us: LatencySummary::of(&s.ok_latency).p99_us,
                })
                .collect()
        });
        Recorded {
            latency_all: LatencySummary::of(&self.all),
            latency_ok: LatencySummary::of(&self.ok),
            latency_ok_service: LatencySummary::of(&self.ok_service),
            counts: self.counts,
            statuses: self.statuses,
            tracked,
            timeline,
        }
    }
}

/// Whole microseconds, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A histogram of microseconds from 1 us to an hour with `sigfig` significant digits.
fn histogram<T: hdrhistogram::Counter>(sigfig: u8) -> Histogram<T> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, sigfig)
        .expect("1 us .. 1 h with 2-3 significant digits are valid histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Outcome {
        Outcome::Ok {
            status: 200,
            tracked: None,
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn summary_percentiles_follow_the_data() {
        let mut r = Recorder::new(Duration::from_secs(1), false);
        for i in 1..=1000 {
            r.record(ms(10), Duration::from_micros(i * 10), &ok());
        }
        let s = r.finish().latency_ok;
        assert_eq!(s.count, 1000);
        let near = |got: u64, want: u64| got.abs_diff(want) * 100 <= want;
        assert!(near(s.p50_us, 5000), "p50 {}", s.p50_us);
        assert!(near(s.p90_us, 9000), "p90 {}", s.p90_us);
        assert!(near(s.p99_us, 9900), "p99 {}", s.p99_us);
        assert!(near(s.max_us, 10000), "max {}", s.max_us);
        assert!((s.mean_us - 5005.0).abs() < 50.0, "mean {}", s.mean_us);
    }

    #[test]
    fn service_time_leaves_out_the_wait_for_a_connection() {
        let mut r = Recorder::new(Duration::from_secs(1), false);
        r.record_with_service(ms(10), ms(50), ms(2), &ok());
        let out = r.finish();
        assert!(
            out.latency_ok.p50_us.abs_diff(50_000) <= 50,
            "{}",
            out.latency_ok.p50_us
        );
        assert!(
            out.latency_ok_service.p50_us.abs_diff(2_000) <= 2,
            "{}",
            out.latency_ok_service.p50_us
        );
    }

    #[test]
    fn empty_summary_is_zero() {
        let s = Recorder::new(Duration::from_secs(1), false)
            .finish()
            .latency_ok;
        assert_eq!(s, LatencySummary::default());
    }

    #[test]
    fn outcomes_are_counted_by_kind() {
        let mut r = Recorder::new(Duration::from_secs(1), false);
        r.record(ms(1), ms(1), &ok());
        r.record(ms(1), ms(1), &Outcome::Rejected { retry_after: true });
        r.record(ms(1), ms(1), &Outcome::Rejected { retry_after: false });
        r.record(ms(1), ms(1), &Outcome::Failed(Failure::Status(500)));
        r.record(ms(1), ms(1), &Outcome::Failed(Failure::Status(404)));
        r.record(ms(1), ms(1), &Outcome::Failed(Failure::Connect));
        r.record(ms(1), ms(1), &Outcome::Failed(Failure::Io));
        r.record(ms(1), ms(1), &Outcome::Failed(Failure::Timeout));
        let out = r.finish();
        let c = out.counts;
        assert_eq!((c.requests, c.ok, c.rejected, c.failed), (8, 1, 2, 5));
        assert_eq!(c.rejected_without_retry_after, 1);
        assert_eq!(
            (
                c.failed_status,
                c.failed_connect,
                c.failed_io,
                c.failed_timeout
            ),
            (2, 1, 1, 1)
        );
        let statuses: Vec<(u16, u64)> = out.statuses.into_iter().collect();
        assert_eq!(statuses, vec![(200, 1), (404, 1), (500, 1), (503, 2)]);
        assert_eq!(out.latency_all.count, 8);
        assert_eq!(out.latency_ok.count, 1);
        assert_eq!(out.latency_ok_service.count, 1);
    }

    #[test]
    fn timeline_buckets_by_second_and_clamps_stragglers() {
        let mut r = Recorder::new(Duration::from_millis(2500), true);
        r.record(ms(100), ms(1), &ok());
        r.record(ms(999), ms(3), &ok());
        r.record(ms(1000), ms(1), &Outcome::Rejected { retry_after: true });
        r.record(ms(2600), ms(7), &ok()); // after the window: counted in its last second
        r.record(ms(9000), ms(1), &Outcome::Failed(Failure::Io));
        let rows = r.finish().timeline.unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].ok, rows[0].rejected, rows[0].failed), (2, 0, 0));
        assert!(
            rows[0].ok_p99_us.abs_diff(3000) <= 30,
            "{}",
            rows[0].ok_p99_us
        );
        assert_eq!((rows[1].ok, rows[1].rejected, rows[1].failed), (0, 1, 0));
        assert_eq!(rows[1].ok_p99_us, 0);
        assert_eq!((rows[2].second, rows[2].ok, rows[2].failed), (2, 1, 1));
    }

    #[test]
    fn tracked_values_keep_counts_and_first_last_times() {
        let mut r = Recorder::new(Duration::from_secs(10), false);
        let v = |s: &str| Outcome::Ok {
            status: 200,
            tracked: Some(s.to_owned()),
        };
        r.record(ms(500), ms(1), &v("1"));
        r.record(ms(4000), ms(1), &v("2"));
        r.record(ms(3000), ms(1), &v("1"));
        r.record(ms(9000), ms(1), &v("2"));
        let tracked = r.finish().tracked;
        assert_eq!(tracked.len(), 2);
        assert_eq!((tracked[0].value.as_str(), tracked[0].count), ("1", 2));
        assert_eq!((tracked[0].first_s, tracked[0].last_s), (0.5, 3.0));
        assert_eq!((tracked[1].value.as_str(), tracked[1].count), ("2", 2));
        assert_eq!((tracked[1].first_s, tracked[1].last_s), (4.0, 9.0));
    }
}
