//! The outbox: one bounded queue and one task per channel, so a channel that is down delays
//! only its own notices. A message is tried until it is accepted, with exponential backoff
//! from `retry_initial` capped at `retry`; nothing is dropped while the process lives unless a
//! channel's queue is full (`outbox_capacity`), which is counted and logged. Each try's
//! outcome goes to [`AlertMetrics`] and the history.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use tokio::sync::mpsc;

use crate::config::{Channel, Settings};
use crate::history::History;
use crate::notice::Message;
use crate::send::Sender;

/// Where the outbox and the engine report (the server's Prometheus metrics).
pub trait AlertMetrics: Send + Sync {
    /// A try to send to `channel`: accepted (`sent`) or not (`failed`).
    fn notice(&self, channel: &str, sent: bool);
    /// A message dropped because `channel`'s queue was full.
    fn dropped(&self, channel: &str);
    /// Whether `rule` (of `severity`) has an alert firing.
    fn firing(&self, rule: &str, severity: &str, firing: bool);
}

/// Reports nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoMetrics;

impl AlertMetrics for NoMetrics {
    fn notice(&self, _: &str, _: bool) {}
    fn dropped(&self, _: &str) {}
    fn firing(&self, _: &str, _: &str, _: bool) {}
}

/// The queues of every channel.
pub struct Outbox {
    queues: BTreeMap<String, mpsc::Sender<Message>>,
    metrics: Arc<dyn AlertMetrics>,
    history: History,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("channels", &self.queues.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Outbox {
    /// Starts one task per channel on the current Tokio runtime.
    pub fn start(
        channels: &BTreeMap<String, Channel>,
        settings: &Settings,
        sender: Sender,
        history: History,
        metrics: Arc<dyn AlertMetrics>,
    ) -> Self {
        let mut queues = BTreeMap::new();
        for (name, channel) in channels {
            let (tx, rx) = mpsc::channel(settings.outbox_capacity);
            queues.insert(name.clone(), tx);
            tokio::spawn(deliver(
                name.clone(),
                channel.clone(),
                rx,
                sender.clone(),
                history.clone(),
                Arc::clone(&metrics),
                settings.clone(),
            ));
        }
        Self {
            queues,
            metrics,
            history,
        }
    }

    /// Queues `message` for `channel` without waiting; a full queue drops it (counted,
    /// logged, recorded). Returns whether it was queued.
    pub fn push(&self, channel: &str, message: Message) -> bool {
        let Some(queue) = self.queues.get(channel) else {
            tracing::error!(channel, "no such alert channel; notice not sent");
            return false;
        };
        match queue.try_send(message) {
            Ok(()) => true,
            Err(e) => {
                let (message, why) = match e {
                    mpsc::error::TrySendError::Full(m) => (m, "outbox full"),
                    mpsc::error::TrySendError::Closed(m) => (m, "channel task stopped"),
                };
                self.metrics.dropped(channel);
                tracing::error!(
                    channel,
                    notices = message.notices.len(),
                    why,
                    "alert notice dropped (a full outbox means the channel has been failing: fix it or raise settings.outbox_capacity)"
                );
                if let Err(e) =
                    self.history
                        .outcome(&message.deliveries, "dropped", 0, Some(why), Utc::now())
                {
                    tracing::warn!(error = %e, "could not record a dropped notice");
                }
                false
            }
        }
    }
}

/// Records an outcome off the async workers.
async fn record(
    history: &History,
    deliveries: Vec<i64>,
    outcome: &'static str,
    attempts: i64,
    error: Option<String>,
) {
    let history = history.clone();
    let done = tokio::task::spawn_blocking(move || {
        history.outcome(&deliveries, outcome, attempts, error.as_deref(), Utc::now())
    })
    .await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "could not record a notice's outcome"),
        Err(e) => tracing::warn!(error = %e, "recording a notice's outcome did not finish"),
    }
}

/// One channel's task: takes messages in order, merges those that arrive within
/// `group_wait`, and tries each until it is accepted.
async fn deliver(
    name: String,
    channel: Channel,
    mut queue: mpsc::Receiver<Message>,
    sender: Sender,
    history: History,
    metrics: Arc<dyn AlertMetrics>,
    settings: Settings,
) {
    while let Some(mut message) = queue.recv().await {
        if !settings.group_wait.is_zero() {
            tokio::time::sleep(settings.group_wait).await;
            while let Ok(more) = queue.try_recv() {
                message.notices.extend(more.notices);
                message.deliveries.extend(more.deliveries);
            }
        }
        let mut delay = settings.retry_initial;
        let mut attempts: i64 = 0;
        loop {
            attempts += 1;
            match sender.send(&channel, &message).await {
                Ok(()) => {
                    metrics.notice(&name, true);
                    tracing::info!(
                        channel = %name,
                        kind = channel.kind(),
                        notices = message.notices.len(),
                        attempts,
                        "alert notice sent"
                    );
                    record(&history, message.deliveries.clone(), "sent", attempts, None).await;
                    break;
                }
                Err(e) => {
                    metrics.notice(&name, false);
                    tracing::warn!(
                        channel = %name,
                        kind = channel.kind(),
                        attempts,
                        retry_in_ms = delay.as_millis() as u64,
                        error = %e,
                        "alert notice not accepted; will retry"
                    );
                    record(
                        &history,
                        message.deliveries.clone(),
                        "retrying",
                        attempts,
                        Some(e),
                    )
                    .await;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(settings.retry);
                }
            }
        }
    }
}
