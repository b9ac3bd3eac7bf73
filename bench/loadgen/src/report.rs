//! The run's result: one serialisable [`Report`] for `--json`, and its human rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::procfs::RssSummary;
use crate::record::{Counts, LatencySummary, Recorded, TimelineRow, TrackedValue};
use crate::run::Config;

/// How the run used the texts file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextUsage {
    /// Texts in the file.
    pub lines: usize,
    /// Distinct texts in the file.
    pub distinct_in_file: usize,
    /// Requests sent, warmup included.
    pub sent: u64,
    /// Distinct texts among them.
    pub distinct_sent: usize,
    /// Whether any text was sent twice (a server cache could then answer).
    pub repeated: bool,
}

/// What was seen of the server process.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerReport {
    /// Its process id.
    pub pid: u32,
    /// Its resident memory during the window.
    pub rss: Option<RssSummary>,
    /// The CPU time it used during the window, in seconds.
    pub cpu_seconds: Option<f64>,
    /// Whether it went away during the window.
    pub exited: bool,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The target URL.
    pub url: String,
    /// `closed` (send, await, repeat) or `open` (fixed rate).
    pub mode: &'static str,
    /// Connections.
    pub concurrency: usize,
    /// Unrecorded load before the window, in seconds.
    pub warmup_s: f64,
    /// The measured window as asked, in seconds.
    pub duration_s: f64,
    /// From the window's opening to the last response, in seconds (the rates divide by it).
    pub elapsed_s: f64,
    /// Open loop: the requests per second asked for.
    pub offered_rps: Option<f64>,
    /// Recorded requests per second (all outcomes).
    pub achieved_rps: f64,
    /// 2xx responses per second.
    pub ok_rps: f64,
    /// Open loop: requests due in the window that no connection was free to send in time.
    pub unsent: Option<u64>,
    /// Outcome counts.
    #[serde(flatten)]
    pub counts: Counts,
    /// Responses per HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Latency of 2xx responses (open loop: from each request's scheduled time).
    pub latency_ok: LatencySummary,
    /// Latency of 2xx responses from the moment each was sent (open loop: without the wait
    /// for a free connection; closed loop: the same as `latency_ok`).
    pub latency_ok_service: LatencySummary,
    /// Latency of every recorded request.
    pub latency_all: LatencySummary,
    /// How the texts were used.
    pub texts: TextUsage,
    /// Connections opened in all.
    pub connections_opened: u64,
    /// Connections opened beyond the first per worker.
    pub reconnects: u64,
    /// The tracked field, if any.
    pub tracked_field: Option<String>,
    /// Its values, in order of first appearance.
    pub tracked: Vec<TrackedValue>,
    /// The server process, with `--server-pid`.
    pub server: Option<ServerReport>,
    /// The CPU time this load generator used during the window, in seconds.
    pub client_cpu_seconds: Option<f64>,
    /// Per-second rows, with `--timeline`.
    pub timeline: Option<Vec<TimelineRow>>,
}

/// What the run saw besides the recorder's counts: the facts the report adds to them.
#[derive(Debug, Clone)]
pub(crate) struct Observed {
    /// From the window's opening to the last response.
    pub elapsed: Duration,
    /// Open loop: requests due in the window but never sent.
    pub unsent: Option<u64>,
    /// How the texts were used.
    pub texts: TextUsage,
    /// Connections opened in all.
    pub connections_opened: u64,
    /// The server process, if watched.
    pub server: Option<ServerReport>,
    /// This process's CPU time during the window.
    pub client_cpu_seconds: Option<f64>,
}

impl Report {
    /// Assembles the report of a finished run.
    pub(crate) fn new(config: &Config, recorded: Recorded, observed: Observed) -> Self {
        let Observed {
            elapsed,
            unsent,
            texts,
            connections_opened,
            server,
            client_cpu_seconds,
        } = observed;
        let elapsed_s = elapsed.as_secs_f64().max(config.duration.as_secs_f64());
        let per_s = |n: u64| n as f64 / elapsed_s;
        Self {
            url: config.target.url.clone(),
            mode: if config.rate.is_some() {
                "open"
            } else {
                "closed"
            },
            concurrency: config.concurrency,
            warmup_s: config.warmup.as_secs_f64(),
            duration_s: config.duration.as_secs_f64(),
            elapsed_s,
            offered_rps: config.rate,
            achieved_rps: per_s(recorded.counts.requests),
            ok_rps: per_s(recorded.counts.ok),
            unsent,
            statuses: recorded.statuses,
            latency_ok: recorded.latency_ok,
            latency_ok_service: recorded.latency_ok_service,
            latency_all: recorded.latency_all,
            texts,
            connections_opened,
            reconnects: connections_opened.saturating_sub(config.concurrency as u64),
            tracked_field: config.track.as_ref().map(|t| t.as_str().to_owned()),
            tracked: recorded.tracked,
            server,
            client_cpu_seconds,
            timeline: recorded.timeline,
            counts: recorded.counts,
        }
    }

    /// The report as aligned lines for a terminal.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let c = &self.counts;
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "{name:<14}{value}");
        };
        row(
            "target",
            format!(
                "{} ({} loop, {} connection{})",
                self.url,
                self.mode,
                self.concurrency,
                if self.concurrency == 1 { "" } else { "s" }
            ),
        );
        row(
            "duration",
            format!(
                "{:.1} s measured after {:.1} s warmup",
                self.elapsed_s, self.warmup_s
            ),
        );
        let rate = match self.offered_rps {
            Some(offered) => format!(
                "{:.0} req/s achieved of {offered:.0} offered",
                self.achieved_rps
            ),
            None => format!("{:.0} req/s", self.achieved_rps),
        };
        row("requests", format!("{} ({rate})", c.requests));
        row("ok", format!("{} ({:.0} req/s)", c.ok, self.ok_rps));
        let missing = if c.rejected_without_retry_after > 0 {
            format!(", {} without Retry-After", c.rejected_without_retry_after)
        } else {
            String::new()
        };
        row(
            "503",
            format!(
                "{} ({:.1}%{missing})",
                c.rejected,
                percent(c.rejected, c.requests)
            ),
        );
        row(
            "failed",
            format!(
                "{} (status {}, connect {}, broken {}, timeout {})",
                c.failed, c.failed_status, c.failed_connect, c.failed_io, c.failed_timeout
            ),
        );
        if let Some(unsent) = self.unsent {
            row(
                "unsent",
                format!("{unsent} due but no free connection before the end"),
            );
        }
        if self.offered_rps.is_some() {
            row(
                "latency ok",
                percentiles(&self.latency_ok) + "  (from scheduled time)",
            );
            row("  from send", percentiles(&self.latency_ok_service));
        } else {
            row("latency ok", percentiles(&self.latency_ok));
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        row("statuses", statuses.join(", "));
        let t = &self.texts;
        row(
            "texts",
            format!(
                "{} distinct of {} lines sent in {} requests; repeated: {}",
                t.distinct_sent,
                t.lines,
                t.sent,
                if t.repeated { "yes" } else { "no" }
            ),
        );
        row(
            "connections",
            format!(
                "{} opened, {} reconnects",
                self.connections_opened, self.reconnects
            ),
        );
        if let Some(server) = &self.server {
            if let Some(r) = &server.rss {
                row(
                    "server RSS",
                    format!(
                        "first {}  max {}  last {}  (max first half {}, second half {})",
                        mib(r.first_kib),
                        mib(r.max_kib),
                        mib(r.last_kib),
                        mib(r.max_first_half_kib),
                        mib(r.max_second_half_kib)
                    ),
                );
            }
            if let Some(cpu) = server.cpu_seconds {
                row(
                    "server CPU",
                    format!("{cpu:.1} s ({:.2} cores)", cpu / self.duration_s),
                );
            }
            if server.exited {
                row(
                    "server",
                    format!("process {} exited during the run", server.pid),
                );
            }
        }
        if let Some(cpu) = self.client_cpu_seconds {
            row(
                "loadgen CPU",
                format!("{cpu:.1} s ({:.2} cores)", cpu / self.duration_s),
            );
        }
        if let Some(field) = &self.tracked_field {
            for v in &self.tracked {
                row(
                    field,
                    format!(
                        "{:?}: {} responses, {:.1} s .. {:.1} s",
                        v.value, v.count, v.first_s, v.last_s
                    ),
                );
            }
        }
        if let Some(rows) = &self.timeline {
            let _ = writeln!(
                out,
                "\n{:>6} {:>9} {:>9} {:>7} {:>10}",
                "second", "ok", "503", "failed", "ok p99"
            );
            for r in rows {
                let _ = writeln!(
                    out,
                    "{:>6} {:>9} {:>9} {:>7} {:>10}",
                    r.second,
                    r.ok,
                    r.rejected,
                    r.failed,
                    ms(r.ok_p99_us)
                );
            }
        }
        out
    }
}

fn percentiles(l: &LatencySummary) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(l.p50_us),
        ms(l.p90_us),
        ms(l.p99_us),
        ms(l.p999_us),
        ms(l.max_us)
    )
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// Microseconds as milliseconds with two decimals.
fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// KiB as MiB with one decimal.
fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_format_for_reading() {
        assert_eq!(ms(1234), "1.23 ms");
        assert_eq!(ms(0), "0.00 ms");
        assert_eq!(mib(2048), "2.0 MiB");
        assert_eq!(percent(1, 4), 25.0);
        assert_eq!(percent(0, 0), 0.0);
    }
}
