//! `taxon alerts list | test`: the embedded alerts' history (what fired and resolved, and
//! each channel's outcome) and a check of every channel of an `alerts.yaml`. Also the glue
//! `taxon serve --alerts` uses: [`signals`] reads the server's metrics and monitor state
//! into the engine's `Signals`, and [`ServeAlertMetrics`] exports the engine's metrics on
//! `/metrics`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;
use taxon_alerts::{
    AlertMetrics, AlertsConfig, DeltaTracker, DriftFeature, DriftSignal, History, Sender, Signals,
    Totals, test_notice,
};
use taxon_serve::AppState;

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum AlertsCmd {
    /// The alerts `taxon serve --alerts` fired and resolved, newest first: rule, severity,
    /// model version, value and threshold, start and end, and each channel's outcome.
    List(ListArgs),
    /// Send a test notice to every channel of an alerts config and say whether each accepted
    /// it. Exit 1 when any did not.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// The alert history (`settings.db` of the alerts config).
    #[arg(long, env = "TAXON_ALERTS_DB", value_name = "PATH", default_value = taxon_alerts::config::DEFAULT_DB)]
    db: PathBuf,
    /// Only the alerts firing now.
    #[arg(long)]
    firing: bool,
    /// At most this many alerts.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The alerts config (`alerts.yaml`) whose channels to try.
    #[arg(long, value_name = "PATH")]
    config: PathBuf,
}

pub fn run(cmd: AlertsCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        AlertsCmd::List(a) => list(a, ctx),
        AlertsCmd::Test(a) => test(a, ctx),
    }
}

fn list(args: ListArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let history = History::open_existing(&args.db).with_context(|| {
        format!(
            "no alert history at {}: it is written by `taxon serve --alerts` (settings.db)",
            args.db.display()
        )
    })?;
    let rows = history.list(args.firing, args.limit)?;
    if ctx.json {
        print_json(&rows)?;
        return Ok(Outcome::Ok);
    }
    if rows.is_empty() {
        ctx.info(if args.firing {
            "no alert is firing"
        } else {
            "no alert has fired yet"
        });
        return Ok(Outcome::Ok);
    }
    let mut t = table([
        "id",
        "rule",
        "severity",
        "model version",
        "value",
        "threshold",
        "started",
        "ended",
        "channels",
    ]);
    for r in &rows {
        let ended = match (&r.resolved_at, r.ended.as_deref()) {
            (None, _) => "FIRING".to_string(),
            (Some(at), Some("server_stopped")) => format!("{at} (server stopped)"),
            (Some(at), _) => at.clone(),
        };
        let channels: Vec<String> = r
            .deliveries
            .iter()
            .map(|d| {
                let tries = if d.attempts > 1 {
                    format!(" after {} tries", d.attempts)
                } else {
                    String::new()
                };
                format!("{} {}: {}{tries}", d.kind, d.channel, d.outcome)
            })
            .collect();
        t.add_row(vec![
            r.id.to_string(),
            r.rule.clone(),
            r.severity.clone(),
            short(&r.model_version),
            format!("{:.4}", r.value),
            r.threshold.to_string(),
            r.started_at.clone(),
            ended,
            channels.join("\n"),
        ]);
    }
    println!("{t}");
    Ok(Outcome::Ok)
}

fn short(version: &str) -> String {
    version.chars().take(12).collect()
}

#[derive(Serialize)]
struct ChannelResult {
    channel: String,
    #[serde(rename = "type")]
    kind: &'static str,
    accepted: bool,
    error: Option<String>,
}

fn test(args: TestArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let config = AlertsConfig::load(&args.config)?;
    if config.channels.is_empty() {
        anyhow::bail!(
            "alerts config {} defines no channel to test",
            args.config.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let results: Vec<ChannelResult> = runtime.block_on(async {
        let sender = Sender::new().map_err(anyhow::Error::msg)?;
        let tries = config.channels.clone().into_iter().map(|(name, channel)| {
            let sender = sender.clone();
            async move {
                let outcome = sender.send(&channel, &test_notice(&name)).await;
                ChannelResult {
                    channel: name,
                    kind: channel.kind(),
                    accepted: outcome.is_ok(),
                    error: outcome.err(),
                }
            }
        });
        anyhow::Ok(futures_join_all(tries).await)
    })?;
    let failed = results.iter().filter(|r| !r.accepted).count();
    if ctx.json {
        print_json(&results)?;
    } else {
        let mut t = table(["channel", "type", "result"]);
        for r in &results {
            t.add_row(vec![
                r.channel.clone(),
                r.kind.to_string(),
                match &r.error {
                    None => "accepted".to_string(),
                    Some(e) => format!("FAILED: {e}"),
                },
            ]);
        }
        println!("{t}");
        if failed > 0 {
            eprintln!(
                "{failed} of {} channel(s) did not accept the test notice",
                results.len()
            );
        }
    }
    Ok(if failed == 0 {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        match h.await {
            Ok(v) => out.push(v),
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}

/// The engine's metrics, exported by the server.
pub struct ServeAlertMetrics(pub AppState);

impl AlertMetrics for ServeAlertMetrics {
    fn notice(&self, channel: &str, sent: bool) {
        self.0.metrics().alert_notice(channel, sent);
    }
    fn dropped(&self, channel: &str) {
        self.0.metrics().alert_notice_dropped(channel);
    }
    fn firing(&self, rule: &str, severity: &str, firing: bool) {
        self.0.metrics().alert_firing(rule, severity, firing);
    }
}

/// Reads the server's state into the engine's signals (deltas since the previous call).
pub fn signals(state: &AppState, tracker: &mut DeltaTracker) -> Signals {
    let model = state.model();
    let t = state.metrics().alert_totals();
    let (delta, interval) = tracker.delta(Totals {
        requests: t.predict_requests,
        errors: t.predict_5xx,
        shed: t.predict_503,
        auth_failures: t.auth_failures,
        login_limited: t.login_limited,
    });
    let monitoring = state.monitoring();
    let drift = monitoring
        .drift()
        .filter(|(version, _)| *version == model.version)
        .map(|(_, report)| DriftSignal {
            detected: report.drift,
            features: report
                .features
                .into_iter()
                .map(|f| DriftFeature {
                    name: f.name,
                    score: f.value,
                    threshold: f.threshold,
                    drifted: f.drift,
                })
                .collect(),
        });
    Signals {
        model_version: model.version.clone(),
        model_name: model.name.clone(),
        drift,
        accuracy: monitoring.live_accuracy(&model.version),
        latency_p99: monitoring.take_latency_p99(),
        delta,
        interval,
    }
}

/// Rules that can never fire with these server settings (a condition whose signal is off).
pub fn unwatchable(
    config: &AlertsConfig,
    monitor: bool,
    drift_window: usize,
    auth: bool,
) -> Vec<String> {
    use taxon_alerts::Condition;
    config
        .rules
        .iter()
        .filter_map(|r| {
            let why = match r.condition {
                Condition::Drift if !monitor || drift_window == 0 => {
                    "online drift is off (--no-monitor or --drift-window 0)"
                }
                Condition::AccuracyBelow | Condition::LatencyP99Above if !monitor => {
                    "the monitor stage is off (--no-monitor)"
                }
                Condition::AuthFailuresAbove | Condition::LoginLimitedAbove if !auth => {
                    "authentication is off (no --jwt-secret)"
                }
                _ => return None,
            };
            Some(format!(
                "alert rule `{}` ({}) can never fire: {why}",
                r.name, r.condition
            ))
        })
        .collect()
}

/// Starts the engine of `config` on the current runtime, reading `state`.
pub fn start_engine(config: AlertsConfig, state: &AppState) -> anyhow::Result<()> {
    let metrics: Arc<dyn AlertMetrics> = Arc::new(ServeAlertMetrics(state.clone()));
    let db = config.settings.db.clone();
    let engine = taxon_alerts::Engine::start(config, metrics)
        .with_context(|| format!("starting the alerts (history {})", db.display()))?;
    let reader = state.clone();
    let mut tracker = DeltaTracker::new();
    tokio::spawn(taxon_alerts::run(
        engine,
        move || signals(&reader, &mut tracker),
        std::future::pending(),
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn rules_whose_signal_is_off_are_named() {
        let config = AlertsConfig::parse(
            "channels:\n  h: {type: webhook, url: 'http://127.0.0.1:9/'}\nrules:\n  - {name: d, condition: drift, severity: info, channels: [h]}\n  - {name: a, condition: auth_failures_above, threshold: 1, severity: info, channels: [h]}\n  - {name: e, condition: error_ratio_above, threshold: 0.1, severity: info, channels: [h]}\n",
            Path::new("alerts.yaml"),
            |_| None,
        )
        .unwrap();
        assert!(unwatchable(&config, true, 1000, true).is_empty());
        let w = unwatchable(&config, true, 0, false);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].contains("`d`") && w[0].contains("--drift-window 0"),
            "{w:?}"
        );
        assert!(
            w[1].contains("`a`") && w[1].contains("--jwt-secret"),
            "{w:?}"
        );
    }
}
