//! Per-stage wall time and peak memory. A stage's peak is `VmHWM` read at its end after a reset
//! at its start (`/proc/self/clear_refs`); where the kernel refuses the reset, the peak is the
//! process's peak up to the stage's end.

use std::sync::Mutex;
use std::time::Instant;

use crate::env::{peak_rss_bytes, reset_peak_rss};
use crate::record::StageRecord;

/// Times stages one after another; safe to drive from several threads.
#[derive(Default)]
pub struct StageClock {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    current: Option<Open>,
    done: Vec<StageRecord>,
}

struct Open {
    name: String,
    start: Instant,
    /// The stage's peak over the part before the last [`StageClock::checkpoint`].
    peak: u64,
    /// Time and peak of the last checkpoint: where the stage ends if it is closed by
    /// [`StageClock::begin_after_checkpoint`].
    checkpoint: Option<(Instant, u64)>,
}

impl StageClock {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends the current stage (if any) now and starts `name`.
    pub fn begin(&self, name: &str) {
        let mut g = self.lock();
        let now = Instant::now();
        if let Some(open) = g.current.take() {
            let peak = open.peak.max(peak_rss_bytes());
            g.done.push(StageRecord {
                name: open.name,
                seconds: (now - open.start).as_secs_f64(),
                peak_rss_bytes: peak,
            });
        }
        reset_peak_rss();
        g.current = Some(Open {
            name: name.to_string(),
            start: now,
            peak: 0,
            checkpoint: None,
        });
    }

    /// Starts `name` unless it is already the current stage.
    pub fn enter(&self, name: &str) {
        let same = self.lock().current.as_ref().is_some_and(|o| o.name == name);
        if !same {
            self.begin(name);
        }
    }

    /// Marks a point where the current stage may turn out to have ended (the end of an epoch):
    /// folds the peak so far into the stage and resets the high-water mark.
    pub fn checkpoint(&self) {
        let mut g = self.lock();
        if let Some(open) = g.current.as_mut() {
            open.peak = open.peak.max(peak_rss_bytes());
            open.checkpoint = Some((Instant::now(), open.peak));
            reset_peak_rss();
        }
    }

    /// Closes the current stage at its last checkpoint (or now, without one) and starts `name`
    /// at that point, so the time since the checkpoint counts toward `name`.
    pub fn begin_after_checkpoint(&self, name: &str) {
        let mut g = self.lock();
        let now = Instant::now();
        let Some(open) = g.current.take() else {
            drop(g);
            return self.begin(name);
        };
        let (end, peak) = open
            .checkpoint
            .unwrap_or((now, open.peak.max(peak_rss_bytes())));
        g.done.push(StageRecord {
            name: open.name,
            seconds: (end - open.start).as_secs_f64(),
            peak_rss_bytes: peak,
        });
        g.current = Some(Open {
            name: name.to_string(),
            start: end,
            peak: 0,
            checkpoint: None,
        });
    }

    /// Ends the current stage and returns every stage, in order.
    pub fn finish(&self) -> Vec<StageRecord> {
        let mut g = self.lock();
        if let Some(open) = g.current.take() {
            let peak = open.peak.max(peak_rss_bytes());
            g.done.push(StageRecord {
                name: open.name,
                seconds: open.start.elapsed().as_secs_f64(),
                peak_rss_bytes: peak,
            });
        }
        std::mem::take(&mut g.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_recorded_in_order_with_their_peak() {
        let clock = StageClock::new();
        clock.begin("load data");
        clock.enter("train");
        clock.enter("train");
        // 64 MiB touched in the train stage must show in its peak.
        let big = vec![1u8; 64 << 20];
        assert_eq!(big.iter().map(|&b| b as u64).sum::<u64>(), 64 << 20);
        clock.checkpoint();
        drop(big);
        clock.begin_after_checkpoint("validate+save");
        let stages = clock.finish();
        let names: Vec<&str> = stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["load data", "train", "validate+save"]);
        assert!(stages[1].peak_rss_bytes >= 64 << 20, "{stages:?}");
        assert!(stages.iter().all(|s| s.seconds >= 0.0));
    }
}
