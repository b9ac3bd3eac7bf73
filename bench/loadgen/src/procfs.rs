//! Reading a process's memory and CPU time from Linux's `/proc`, and the summary of the server's
//! resident memory over a run (first, max, last, and each half's max to show it stays flat).

use std::time::Duration;

use serde::Serialize;

/// Clock ticks per second of `/proc/PID/stat` times (`USER_HZ`, 100 on every Linux ABI).
const TICKS_PER_SECOND: f64 = 100.0;

/// The resident set size of `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> std::io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_vm_rss(&status).ok_or_else(|| std::io::Error::other("no VmRSS line"))
}

/// The user + system CPU time `pid` has used so far (`/proc/PID/stat`), in seconds.
pub fn cpu_seconds(pid: &str) -> std::io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| ticks as f64 / TICKS_PER_SECOND)
        .ok_or_else(|| std::io::Error::other("unexpected /proc stat format"))
}

/// The `VmRSS:  1234 kB` value of a `/proc/PID/status` text.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line; the command name (field 2)
/// may hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // field 3 is the first after ')'
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The server's resident memory during the measured window, in KiB.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RssSummary {
    /// Samples taken (every 250 ms).
    pub samples: usize,
    /// The first sample.
    pub first_kib: u64,
    /// The largest sample.
    pub max_kib: u64,
    /// The last sample.
    pub last_kib: u64,
    /// The largest sample of the window's first half.
    pub max_first_half_kib: u64,
    /// The largest sample of the window's second half (close to the first half's: flat).
    pub max_second_half_kib: u64,
}

impl RssSummary {
    /// Summarises `(time since the window opened, KiB)` samples of a window of `window`;
    /// `None` without samples.
    pub fn of(samples: &[(Duration, u64)], window: Duration) -> Option<Self> {
        let (_, first) = *samples.first()?;
        let (_, last) = *samples.last()?;
        let half = window / 2;
        let max_of = |keep: &dyn Fn(Duration) -> bool| {
            samples
                .iter()
                .filter(|(t, _)| keep(*t))
                .map(|&(_, kib)| kib)
                .max()
                .unwrap_or(0)
        };
        Some(Self {
            samples: samples.len(),
            first_kib: first,
            max_kib: max_of(&|_| true),
            last_kib: last,
            max_first_half_kib: max_of(&|t| t < half),
            max_second_half_kib: max_of(&|t| t >= half),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_from_status() {
        let status = "Name:\ttaxon\nVmPeak:\t  99999 kB\nVmRSS:\t   45120 kB\nThreads:\t4\n";
        assert_eq!(parse_vm_rss(status), Some(45120));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
    }

    #[test]
    fn cpu_ticks_skip_a_command_name_with_spaces() {
        let stat = "42 (tokio (worker) 1) S 1 42 42 0 -1 4194304 100 0 0 0 250 30 0 0 20 0 4 0";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_can_be_read() {
        assert!(rss_kib(std::process::id()).unwrap() > 0);
        assert!(cpu_seconds("self").unwrap() >= 0.0);
    }

    #[test]
    fn rss_summary_splits_the_window_in_halves() {
        let s = |ms: u64, kib: u64| (Duration::from_millis(ms), kib);
        let samples = [
            s(0, 100),
            s(250, 180),
            s(500, 120),
            s(1000, 150),
            s(1250, 130),
        ];
        let sum = RssSummary::of(&samples, Duration::from_secs(2)).unwrap();
        assert_eq!(sum.samples, 5);
        assert_eq!((sum.first_kib, sum.max_kib, sum.last_kib), (100, 180, 130));
        assert_eq!(
            (sum.max_first_half_kib, sum.max_second_half_kib),
            (180, 150)
        );
        assert_eq!(RssSummary::of(&[], Duration::from_secs(1)), None);
    }
}
