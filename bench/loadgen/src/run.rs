//! The run: C workers, each with one keep-alive connection, in a closed loop (send, await,
//! repeat) or an open loop (requests at fixed times, latency from the scheduled time so that a
//! slow server cannot hide its queueing: no coordinated omission); a monitor samples the
//! server's memory and both processes' CPU time during the measured window.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::header::{HeaderName, HeaderValue};
use tokio::time::{Instant, MissedTickBehavior};

use crate::client::{Connection, RequestTemplate};
use crate::error::Error;
use crate::options::{FieldPath, Target};
use crate::procfs::{self, RssSummary};
use crate::record::{Failure, Outcome, Recorder};
use crate::report::{Observed, Report, ServerReport, TextUsage};
use crate::texts::Texts;

/// How often the server's memory is sampled.
const RSS_EVERY: Duration = Duration::from_millis(250);
/// The pause after a failed connect, so a dead server is not dialled in a busy loop.
const CONNECT_BACKOFF: Duration = Duration::from_millis(10);

/// One run's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where requests go.
    pub target: Target,
    /// The request bodies.
    pub texts: Arc<Texts>,
    /// Connections (and workers).
    pub concurrency: usize,
    /// The measured window.
    pub duration: Duration,
    /// Load before the window that is not recorded.
    pub warmup: Duration,
    /// Requests per second for an open loop; `None` for a closed loop.
    pub rate: Option<f64>,
    /// Extra request headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The longest a request may take before it counts as failed.
    pub timeout: Duration,
    /// The server process whose memory and CPU time to sample.
    pub server_pid: Option<u32>,
    /// The field of 2xx bodies whose values to count.
    pub track: Option<FieldPath>,
    /// Whether to keep per-second rows.
    pub timeline: bool,
}

/// What the workers share.
struct Shared {
    target: Target,
    template: RequestTemplate,
    texts: Arc<Texts>,
    timeout: Duration,
    schedule: Option<Schedule>,
    start: Instant,
    window_open: Instant,
    end: Instant,
    /// The next request index (text and, in an open loop, scheduled time).
    next: AtomicU64,
    /// Requests sent, warmup included.
    sent: AtomicU64,
    /// Connections opened.
    opened: AtomicU64,
    recorder: Mutex<Recorder>,
}

/// The open loop's clock: request `i` is due `i / rate` seconds after the start.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    rate: f64,
}

impl Schedule {
    fn due(self, i: u64) -> Duration {
        Duration::from_secs_f64(i as f64 / self.rate)
    }

    /// How many requests are due strictly before `limit` after the start.
    fn count_before(self, limit: Duration) -> u64 {
        let (mut lo, mut hi) = (0u64, (limit.as_secs_f64() * self.rate).ceil() as u64 + 2);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.due(mid) < limit {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Checks the settings, runs the load and returns the report.
pub async fn run(config: Config) -> Result<Report, Error> {
    validate(&config)?;
    let template = RequestTemplate::new(
        config.target.path.clone(),
        &config.target.authority,
        &config.headers,
        config.track.clone(),
    )
    .map_err(|e| Error::Url {
        url: config.target.url.clone(),
        reason: format!("its host is not a valid Host header: {e}"),
    })?;
    let start = Instant::now();
    let window_open = start + config.warmup;
    let end = window_open + config.duration;
    let shared = Arc::new(Shared {
        target: config.target.clone(),
        template,
        texts: config.texts.clone(),
        timeout: config.timeout,
        schedule: config.rate.map(|rate| Schedule { rate }),
        start,
        window_open,
        end,
        next: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        opened: AtomicU64::new(0),
        recorder: Mutex::new(Recorder::new(config.duration, config.timeline)),
    });
    let monitor = tokio::spawn(monitor(config.server_pid, window_open, end));
    let workers: Vec<_> = (0..config.concurrency)
        .map(|_| tokio::spawn(worker(shared.clone())))
        .collect();
    for w in workers {
        w.await
            .map_err(|e| Error::Invalid(format!("a load worker stopped: {e}")))?;
    }
    let elapsed = window_open.elapsed();
    let monitored = monitor
        .await
        .map_err(|e| Error::Invalid(format!("the monitor stopped: {e}")))?;
    let shared = Arc::into_inner(shared)
        .ok_or_else(|| Error::Invalid("a worker outlived the run".to_owned()))?;
    let recorded = shared
        .recorder
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
        .finish();
    let sent = shared.sent.load(Ordering::Relaxed);
    let (distinct_sent, repeated) = config.texts.usage(sent);
    let unsent = shared.schedule.map(|s| {
        let due = s.count_before(config.warmup + config.duration) - s.count_before(config.warmup);
        due.saturating_sub(recorded.counts.requests)
    });
    let observed = Observed {
        elapsed,
        unsent,
        texts: TextUsage {
            lines: config.texts.len(),
            distinct_in_file: config.texts.distinct(),
            sent,
            distinct_sent,
            repeated,
        },
        connections_opened: shared.opened.load(Ordering::Relaxed),
        server: config.server_pid.map(|pid| ServerReport {
            pid,
            rss: RssSummary::of(&monitored.rss, config.duration),
            cpu_seconds: monitored.server_cpu,
            exited: monitored.server_exited,
        }),
        client_cpu_seconds: monitored.client_cpu,
    };
    Ok(Report::new(&config, recorded, observed))
}

fn validate(config: &Config) -> Result<(), Error> {
    if config.texts.is_empty() {
        return Err(Error::Invalid("no texts to send".to_owned()));
    }
    if config.concurrency == 0 {
        return Err(Error::Invalid(
            "--concurrency must be at least 1".to_owned(),
        ));
    }
    if config.duration.is_zero() {
        return Err(Error::Invalid("--duration must be more than 0".to_owned()));
    }
    if config.timeout.is_zero() {
        return Err(Error::Invalid("--timeout must be more than 0".to_owned()));
    }
    if let Some(rate) = config.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return Err(Error::Invalid(format!(
                "--rate must be a positive number of requests per second, not {rate}"
            )));
        }
    }
    if let Some(pid) = config.server_pid {
        procfs::rss_kib(pid).map_err(|source| Error::ServerPid { pid, source })?;
    }
    Ok(())
}

/// One connection's loop until the window closes.
async fn worker(shared: Arc<Shared>) {
    let mut conn: Option<Connection> = None;
    loop {
        let now = Instant::now();
        if now >= shared.end {
            break;
        }
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        let reference = match shared.schedule {
            None => now,
            Some(schedule) => {
                let due = shared.start + schedule.due(i);
                if due >= shared.end {
                    break;
                }
                if due > now {
                    tokio::time::sleep_until(due).await;
                }
                due
            }
        };
        shared.sent.fetch_add(1, Ordering::Relaxed);
        let sent_at = Instant::now();
        let outcome = send(&shared, &mut conn, i).await;
        let done = Instant::now();
        if reference >= shared.window_open {
            shared
                .recorder
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record_with_service(
                    done.saturating_duration_since(shared.window_open),
                    done.saturating_duration_since(reference),
                    done.saturating_duration_since(sent_at),
                    &outcome,
                );
        }
        if outcome == Outcome::Failed(Failure::Connect) {
            tokio::time::sleep(CONNECT_BACKOFF).await;
        }
    }
}

/// Sends request `i` on `conn`, (re)connecting first when needed.
async fn send(shared: &Shared, conn: &mut Option<Connection>, i: u64) -> Outcome {
    for _attempt in 0..2 {
        let c = match conn {
            Some(c) => c,
            None => {
                match tokio::time::timeout(shared.timeout, Connection::open(shared.target.addr))
                    .await
                {
                    Ok(Ok(c)) => {
                        shared.opened.fetch_add(1, Ordering::Relaxed);
                        conn.insert(c)
                    }
                    Ok(Err(_)) => return Outcome::Failed(Failure::Connect),
                    Err(_) => return Outcome::Failed(Failure::Timeout),
                }
            }
        };
        if !c.ready().await {
            // The server closed this keep-alive connection between requests: nothing was
            // sent, so dial again.
            *conn = None;
            continue;
        }
        let (outcome, reusable) = c
            .exchange(&shared.template, shared.texts.body(i), shared.timeout)
            .await;
        if !reusable {
            *conn = None;
        }
        return outcome;
    }
    Outcome::Failed(Failure::Io)
}

/// What the monitor saw during the window.
struct Monitored {
    rss: Vec<(Duration, u64)>,
    server_cpu: Option<f64>,
    server_exited: bool,
    client_cpu: Option<f64>,
}

/// Samples the server's memory every 250 ms and both processes' CPU time at the window's
/// open and close.
async fn monitor(pid: Option<u32>, window_open: Instant, end: Instant) -> Monitored {
    let pid_text = pid.map(|p| p.to_string());
    tokio::time::sleep_until(window_open).await;
    let client0 = procfs::cpu_seconds("self").ok();
    let server0 = pid_text
        .as_deref()
        .and_then(|p| procfs::cpu_seconds(p).ok());
    let mut rss = Vec::new();
    let mut server_exited = false;
    if let Some(pid) = pid {
        let mut ticks = tokio::time::interval_at(window_open, RSS_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            let tick = ticks.tick().await;
            if tick >= end {
                break;
            }
            match procfs::rss_kib(pid) {
                Ok(kib) => rss.push((tick.saturating_duration_since(window_open), kib)),
                Err(_) => {
                    server_exited = true;
                    break;
                }
            }
        }
    }
    tokio::time::sleep_until(end).await;
    let client1 = procfs::cpu_seconds("self").ok();
    let server1 = pid_text
        .as_deref()
        .and_then(|p| procfs::cpu_seconds(p).ok());
    Monitored {
        rss,
        server_cpu: server0.zip(server1).map(|(a, b)| b - a),
        server_exited,
        client_cpu: client0.zip(client1).map(|(a, b)| b - a),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_counts_requests_due_before_a_time() {
        let s = Schedule { rate: 200.0 };
        assert_eq!(s.count_before(Duration::ZERO), 0);
        assert_eq!(s.count_before(Duration::from_secs(1)), 200);
        assert_eq!(s.count_before(Duration::from_millis(2500)), 500);
        let odd = Schedule { rate: 3.0 };
        // Due at 0, 1/3, 2/3, 1, 4/3: four before 1.2 s.
        assert_eq!(odd.count_before(Duration::from_millis(1200)), 4);
        for i in 0..1000 {
            assert!(odd.due(i) < odd.due(i + 1));
        }
    }
}
