//! `taxon serve`: the inference server. Serves a trained model folder (`--model DIR`) or a
//! registry alias (`--alias NAME`) over HTTP until SIGTERM or Ctrl-C, then drains in-flight
//! requests and exits 0. Start errors (a bad model folder, a busy port) exit 2.
//!
//! At start it prints the model, the limits and `listening on http://HOST:PORT` (the real
//! port, also with `--port 0`) on stderr, and with `--json` one line
//! `{"event":"listening","url":...}` on stdout.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use taxon_auth::{Auth, Scope};
use taxon_serve::monitor::MonitorConfig;
use taxon_serve::{AliasSource, AppState, DirSource, ModelSource, ServeConfig};

use crate::cmd::auth_args::AuthArgs;
use crate::ctx::{Ctx, Outcome};

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve this trained model folder (model.json and weights); a rewritten folder is picked
    /// up by POST /v1/admin/reload or `--poll-interval`.
    #[arg(
        long,
        env = "TAXON_SERVE_MODEL",
        value_name = "DIR",
        conflicts_with = "alias",
        required_unless_present = "alias"
    )]
    pub model: Option<PathBuf>,
    /// Serve, and follow, this registry alias (`production`, `staging`, ...).
    #[arg(long, env = "TAXON_SERVE_ALIAS", value_name = "ALIAS")]
    pub alias: Option<String>,
    /// The registered model whose alias to serve (with `--alias`).
    #[arg(
        long,
        env = "TAXON_SERVE_NAME",
        value_name = "NAME",
        requires = "alias"
    )]
    pub name: Option<String>,
    /// Address to listen on (a non-loopback address needs authentication, or `--insecure`).
    #[arg(long, env = "TAXON_SERVE_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "TAXON_SERVE_PORT", default_value_t = 8000)]
    pub port: u16,
    /// Most texts in one model batch.
    #[arg(long, env = "TAXON_SERVE_MAX_BATCH_SIZE", default_value_t = 64)]
    pub max_batch_size: usize,
    /// Longest a model batch waits for more requests after its first one, in milliseconds.
    #[arg(long, env = "TAXON_SERVE_MAX_WAIT_MS", default_value_t = 2.0)]
    pub max_wait_ms: f64,
    /// Most estimated tokens (words, capped at the model's max_tokens) in one model batch.
    #[arg(long, env = "TAXON_SERVE_MAX_BATCH_TOKENS", default_value_t = 16_384)]
    pub max_batch_tokens: usize,
    /// Texts admitted and not yet answered; beyond, requests get 503 with Retry-After.
    #[arg(long, env = "TAXON_SERVE_QUEUE_SIZE", default_value_t = 1024)]
    pub queue_size: usize,
    /// Longest accepted text, in characters.
    #[arg(long, env = "TAXON_SERVE_MAX_TEXT_CHARS", default_value_t = 20_000)]
    pub max_text_chars: usize,
    /// Most texts in one /v1/predict/batch request.
    #[arg(long, env = "TAXON_SERVE_MAX_BATCH_TEXTS", default_value_t = 256)]
    pub max_batch_texts: usize,
    /// Largest accepted request body, in bytes (default: what the largest batch the text and
    /// batch limits admit may need, 4 bytes a character: 20,481,088 for the defaults).
    #[arg(long, env = "TAXON_SERVE_BODY_LIMIT", value_name = "BYTES")]
    pub body_limit: Option<usize>,
    /// Prediction cache entries (0: no cache).
    #[arg(long, env = "TAXON_SERVE_CACHE_SIZE", default_value_t = 10_000)]
    pub cache_size: usize,
    /// Bytes the prediction cache may hold (keys are hashes of the texts, so a long text costs
    /// what a short one does; 0: no cache).
    #[arg(long, env = "TAXON_SERVE_CACHE_MAX_BYTES", value_name = "BYTES", default_value_t = 64 * 1024 * 1024)]
    pub cache_max_bytes: usize,
    /// Lifetime of a cached prediction, in seconds.
    #[arg(
        long,
        env = "TAXON_SERVE_CACHE_TTL",
        value_name = "SECONDS",
        default_value_t = 300.0
    )]
    pub cache_ttl: f64,
    /// Model worker threads.
    #[arg(long, env = "TAXON_SERVE_WORKERS", default_value_t = 1)]
    pub workers: usize,
    /// Compute threads of each model worker, for the model's parallel kernels (default: the
    /// cores this process may use, `taskset` included, divided among the workers).
    #[arg(long, env = "TAXON_SERVE_MODEL_THREADS")]
    pub model_threads: Option<usize>,
    /// HTTP worker threads (default: every core).
    #[arg(long, env = "TAXON_SERVE_THREADS")]
    pub threads: Option<usize>,
    /// Seconds between checks of the model source for a new version (0: never; default 5
    /// with --alias, never with --model).
    #[arg(long, env = "TAXON_SERVE_POLL_INTERVAL", value_name = "SECONDS")]
    pub poll_interval: Option<f64>,
    /// Most open HTTP connections; at the cap a new connection replaces the oldest idle or
    /// slow one (so /health still gets through), or is closed at once when all are busy.
    #[arg(long, env = "TAXON_SERVE_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a request head may take from its first byte before the connection is closed.
    #[arg(
        long,
        env = "TAXON_SERVE_HEADER_READ_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 10.0
    )]
    pub header_read_timeout: f64,
    /// Seconds a request body may take after its head (then 408).
    #[arg(
        long,
        env = "TAXON_SERVE_BODY_READ_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 30.0
    )]
    pub body_read_timeout: f64,
    /// Seconds a connection may wait for its next (or first) request before it is closed.
    #[arg(
        long,
        env = "TAXON_SERVE_IDLE_TIMEOUT",
        value_name = "SECONDS",
        default_value_t = 60.0
    )]
    pub idle_timeout: f64,
    /// Refuse (422 `unreadable_text`) a text the model knows no word of, instead of answering
    /// uniform scores with `known_tokens: 0`.
    #[arg(long, env = "TAXON_SERVE_REFUSE_UNREADABLE")]
    pub refuse_unreadable: bool,
    /// Accept Alertmanager notifications on `POST /v1/admin/retrain` (admin scope when auth is
    /// on): a firing alert starts `taxon pipeline retrain --file PIPELINE --log
    /// PREDICTION_LOG --cause alert:NAME` in the current folder, one at a time. Needs
    /// --prediction-log with --prediction-log-text (the feedback it learns from).
    #[arg(
        long,
        env = "TAXON_SERVE_RETRAIN_ON_ALERT",
        requires = "prediction_log_text"
    )]
    pub retrain_on_alert: bool,
    /// The pipeline --retrain-on-alert runs.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "dvc.yaml",
        requires = "retrain_on_alert"
    )]
    pub retrain_pipeline: PathBuf,
    /// Log line format (level from TAXON_LOG, default info; the access log is at debug).
    #[arg(long, env = "TAXON_SERVE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Allow listening on a non-loopback address although no authentication is configured.
    #[arg(long, env = "TAXON_SERVE_INSECURE")]
    pub insecure: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Append every prediction (time, request id, model and version, label, scores, model
    /// latency, token count) and every feedback to rotated JSONL files in this folder.
    /// Writing never blocks a request: records that find the writer's queue full are dropped
    /// and counted in taxon_prediction_log_dropped_total.
    #[arg(long, env = "TAXON_SERVE_PREDICTION_LOG", value_name = "DIR")]
    pub prediction_log: Option<PathBuf>,
    /// Also log each text (off by default: texts can be personal data).
    #[arg(
        long,
        env = "TAXON_SERVE_PREDICTION_LOG_TEXT",
        requires = "prediction_log"
    )]
    pub prediction_log_text: bool,
    /// Encrypt the logged texts (Fernet, one token per text, by the log's writer thread) with
    /// the data layer's key: from --prediction-log-key-file, else TAXON_FERNET_KEY.
    /// `taxon monitor export` decrypts them with the same key.
    #[arg(
        long,
        env = "TAXON_SERVE_PREDICTION_LOG_ENCRYPT",
        requires = "prediction_log_text"
    )]
    pub prediction_log_encrypt: bool,
    /// The key file for --prediction-log-encrypt (as written by `taxon data keygen --output`).
    #[arg(long, value_name = "FILE", requires = "prediction_log_encrypt")]
    pub prediction_log_key_file: Option<PathBuf>,
    /// Share of predictions logged, 0 to 1 (spread evenly; feedback is always logged).
    #[arg(
        long,
        env = "TAXON_SERVE_PREDICTION_LOG_SAMPLE",
        default_value_t = 1.0,
        value_name = "SHARE"
    )]
    pub prediction_log_sample: f64,
    /// Size at which a log file is closed and the next one started, in MiB.
    #[arg(
        long,
        env = "TAXON_SERVE_PREDICTION_LOG_FILE_MIB",
        default_value_t = 64,
        value_name = "MIB"
    )]
    pub prediction_log_file_mib: u64,
    /// Log files kept; the oldest beyond this are deleted.
    #[arg(long, env = "TAXON_SERVE_PREDICTION_LOG_FILES", default_value_t = 32)]
    pub prediction_log_files: usize,
    /// Recent predictions remembered for POST /v1/feedback.
    #[arg(long, env = "TAXON_SERVE_FEEDBACK_CAPACITY", default_value_t = 100_000)]
    pub feedback_capacity: usize,
    /// Feedback items per model version that model_accuracy and live recall are computed over.
    #[arg(long, env = "TAXON_SERVE_FEEDBACK_WINDOW", default_value_t = 1_000)]
    pub feedback_window: usize,
    /// Predictions in the online drift window, compared with the served model's reference
    /// profile at each scrape of /metrics (0: no online drift, no window).
    #[arg(long, env = "TAXON_SERVE_DRIFT_WINDOW", default_value_t = 1_000)]
    pub drift_window: usize,
    /// Only the drift window's predictions of the last this many seconds count (0: all of
    /// them, however old); with none left the drift series are dropped from /metrics.
    #[arg(long, env = "TAXON_SERVE_DRIFT_WINDOW_SECONDS", default_value_t = 0)]
    pub drift_window_seconds: u64,
    /// Turn the monitor stage off: no prediction log, feedback, live accuracy, per-label
    /// prediction counts or online drift (to measure what they cost).
    #[arg(
        long,
        env = "TAXON_SERVE_NO_MONITOR",
        conflicts_with = "prediction_log"
    )]
    pub no_monitor: bool,
    /// Embedded alerts: rules over drift, live accuracy, latency, error and shed ratios and
    /// authentication failures, sent to Slack, webhooks or e-mail (see the README's
    /// "Embedded alerts"). A file that does not load stops the server at start (exit 2).
    #[arg(long, env = "TAXON_SERVE_ALERTS", value_name = "PATH")]
    pub alerts: Option<PathBuf>,
}

impl ServeArgs {
    /// The server configuration the flags describe.
    fn config(&self) -> anyhow::Result<ServeConfig> {
        let max_wait = seconds("--max-wait-ms", self.max_wait_ms / 1e3)?;
        let cache_ttl = seconds("--cache-ttl", self.cache_ttl)?;
        let poll = match self.poll_interval {
            Some(0.0) => None,
            Some(s) => Some(seconds("--poll-interval", s)?),
            None if self.alias.is_some() => Some(Duration::from_secs(5)),
            None => None,
        };
        let config = ServeConfig {
            max_batch_size: self.max_batch_size,
            max_wait,
            max_batch_tokens: self.max_batch_tokens,
            queue_capacity: self.queue_size,
            max_text_chars: self.max_text_chars,
            max_batch_texts: self.max_batch_texts,
            body_limit_bytes: self.body_limit.unwrap_or_else(|| {
                taxon_serve::config::body_bytes_for(self.max_batch_texts, self.max_text_chars)
            }),
            cache_capacity: self.cache_size,
            cache_max_bytes: self.cache_max_bytes,
            cache_ttl,
            workers: self.workers,
            model_threads: self.model_threads,
            poll_interval: poll,
            monitor: self.monitor_config()?,
            max_connections: self.max_connections,
            header_read_timeout: seconds("--header-read-timeout", self.header_read_timeout)?,
            body_read_timeout: seconds("--body-read-timeout", self.body_read_timeout)?,
            idle_timeout: seconds("--idle-timeout", self.idle_timeout)?,
            refuse_unreadable: self.refuse_unreadable,
            retrain: self.retrain_command()?,
        };
        config.validate()?;
        Ok(config)
    }

    /// What a firing alert runs, with --retrain-on-alert: this binary, from this folder.
    fn retrain_command(&self) -> anyhow::Result<Option<taxon_serve::config::RetrainCommand>> {
        if !self.retrain_on_alert {
            return Ok(None);
        }
        let log = self
            .prediction_log
            .as_ref()
            .context("--retrain-on-alert needs --prediction-log")?;
        if !self.retrain_pipeline.is_file() {
            bail!(
                "--retrain-on-alert: no pipeline at {} (write one with `taxon pipeline init`)",
                self.retrain_pipeline.display()
            );
        }
        let abs = |p: &Path| std::path::absolute(p).map(|p| p.to_string_lossy().into_owned());
        let mut args = vec!["pipeline".to_string(), "retrain".to_string()];
        args.extend(["--file".into(), abs(&self.retrain_pipeline)?]);
        args.extend(["--log".into(), abs(log)?]);
        if let Some(k) = &self.prediction_log_key_file {
            args.extend(["--key-file".into(), abs(k)?]);
        }
        Ok(Some(taxon_serve::config::RetrainCommand {
            program: std::env::current_exe().context("locating the taxon binary")?,
            args,
            dir: std::env::current_dir()?,
        }))
    }

    fn monitor_config(&self) -> anyhow::Result<MonitorConfig> {
        let share = self.prediction_log_sample;
        if !(0.0..=1.0).contains(&share) {
            bail!("--prediction-log-sample must be between 0 and 1, got {share}");
        }
        if self.feedback_capacity == 0 || self.feedback_window == 0 {
            bail!("--feedback-capacity and --feedback-window must be at least 1");
        }
        if self.prediction_log_file_mib == 0 || self.prediction_log_files == 0 {
            bail!("--prediction-log-file-mib and --prediction-log-files must be at least 1");
        }
        let log_text_key = if self.prediction_log_encrypt {
            let key = taxon_fernet::Key::from_env_or_file(
                taxon_fernet::DEFAULT_KEY_ENV,
                self.prediction_log_key_file.as_deref(),
            )
            .context("--prediction-log-encrypt")?;
            Some(taxon_serve::monitor::TextKey(key))
        } else {
            None
        };
        Ok(MonitorConfig {
            prediction_log: self.prediction_log.clone(),
            log_text_key,
            log_max_file_bytes: self.prediction_log_file_mib << 20,
            log_max_files: self.prediction_log_files,
            log_text: self.prediction_log_text,
            log_sample_ppm: (share * 1e6).round() as u32,
            feedback_capacity: self.feedback_capacity,
            feedback_window: self.feedback_window,
            drift_window: self.drift_window,
            drift_window_seconds: self.drift_window_seconds,
            enabled: !self.no_monitor,
            ..MonitorConfig::default()
        })
    }

    fn source(&self) -> anyhow::Result<Arc<dyn ModelSource>> {
        match (&self.model, &self.alias) {
            (Some(dir), _) => Ok(Arc::new(DirSource::new(dir)?)),
            (None, Some(alias)) => {
                let name = self
                    .name
                    .as_deref()
                    .unwrap_or(taxon_registry::DEFAULT_MODEL);
                Ok(Arc::new(AliasSource::open(Path::new("."), name, alias)?))
            }
            (None, None) => bail!("give --model DIR (a trained model folder) or --alias ALIAS"),
        }
    }
}

/// A non-negative, finite number of seconds.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag}: expected a non-negative number, got {value}"))
}

pub fn run(args: ServeArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let dispatch = log_dispatch(args.log_format);
    let _log = tracing::dispatcher::set_default(&dispatch);
    let auth = args.auth.auth()?;
    taxon_auth::check_bind(&args.host, auth.is_some(), args.insecure)?;
    let config = args.config()?;
    let alerts = args
        .alerts
        .as_deref()
        .map(taxon_alerts::AlertsConfig::load)
        .transpose()?;
    let source = args.source()?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    });
    if threads == 0 {
        bail!("--threads: expected at least 1");
    }
    let runtime_dispatch = dispatch.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("taxon-serve")
        .enable_all()
        .on_thread_start(move || {
            // Runtime threads log like this command; the guard lives as long as the thread.
            std::mem::forget(tracing::dispatcher::set_default(&runtime_dispatch));
        })
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(args, config, source, auth, alerts, threads, ctx));
    runtime.shutdown_timeout(Duration::from_secs(5));
    result?;
    Ok(Outcome::Ok)
}

async fn serve(
    args: ServeArgs,
    config: ServeConfig,
    source: Arc<dyn ModelSource>,
    auth: Option<Auth>,
    alerts: Option<taxon_alerts::AlertsConfig>,
    threads: usize,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let described = source.describe();
    let state = AppState::start(source, config.clone())
        .await
        .with_context(|| format!("starting the server on {described}"))?;
    let model = state.model();
    ctx.info(format!(
        "model {} version {} ({}), labels: {}",
        model.name,
        model.version,
        model.model_type,
        model.labels.join(", ")
    ));
    ctx.info(format!("source: {described}"));
    if let Some(warning) = taxon_serve::conn::ensure_fd_room(config.max_connections) {
        tracing::warn!("{warning}");
    }
    if let Some(warning) = config.body_limit_warning() {
        tracing::warn!("{warning}");
    }
    ctx.info(format!(
        "limits: batches of {} texts / {} tokens / {} ms wait, queue {} texts, texts up to {} chars, batch requests up to {} texts, bodies up to {} bytes ({}), cache {}, {} model worker(s) of {} compute thread(s), {} HTTP thread(s), {}",
        config.max_batch_size,
        config.max_batch_tokens,
        config.max_wait.as_secs_f64() * 1e3,
        config.queue_capacity,
        config.max_text_chars,
        config.max_batch_texts,
        config.body_limit_bytes,
        if config.body_limit_warning().is_none() {
            "holds the largest batch"
        } else {
            "BELOW the largest batch"
        },
        if config.cache_capacity == 0 || config.cache_max_bytes == 0 {
            "off".to_string()
        } else {
            format!(
                "{} entries / {} bytes for {} s",
                config.cache_capacity,
                config.cache_max_bytes,
                config.cache_ttl.as_secs_f64()
            )
        },
        config.workers,
        config.model_threads_per_worker(),
        threads,
        match config.poll_interval {
            Some(p) => format!("source checked every {} s", p.as_secs_f64()),
            None => "source checked on POST /v1/admin/reload".to_string(),
        }
    ));
    ctx.info(format!(
        "texts the model knows no word of: {}",
        if config.refuse_unreadable {
            "refused (422 unreadable_text)"
        } else {
            "answered with uniform scores and known_tokens 0"
        }
    ));
    ctx.info(format!(
        "connections: at most {}, request heads within {} s, bodies within {} s, idle for {} s",
        config.max_connections,
        config.header_read_timeout.as_secs_f64(),
        config.body_read_timeout.as_secs_f64(),
        config.idle_timeout.as_secs_f64()
    ));
    let router = match &auth {
        Some(auth) => {
            ctx.info(format!(
                "auth: on ({:?} bearer tokens for {} s from POST /token; users in {})",
                auth.config().algorithm,
                auth.config().token_ttl.as_secs(),
                taxon_db::redact_url(&args.auth.users_db.display().to_string())
            ));
            state.metrics().auth_on();
            let counted = state.clone();
            auth.on_limited(move |limit| counted.metrics().login_limited(limit.label()));
            let counted = state.clone();
            auth.on_failure(move |failure| counted.metrics().auth_failure(failure.label()));
            taxon_serve::router(
                state.clone(),
                auth.token_router(),
                |r| auth.guard(r, Scope::Predict),
                |r| auth.guard(r, Scope::Admin),
            )
        }
        None => {
            // Loud on purpose, even with --quiet: anyone who reaches the port can use it.
            eprintln!("{}", taxon_auth::startup_banner(false));
            taxon_serve::app(state.clone())
        }
    };
    if let Some(alerts) = alerts {
        ctx.info(format!(
            "alerts: {} rule(s) from {}, evaluated every {} s, to {}; history in {}",
            alerts.rules.len(),
            alerts.path.display(),
            alerts.settings.evaluate_every.as_secs_f64(),
            alerts
                .channels
                .iter()
                .map(|(name, c)| format!("{name} ({})", c.kind()))
                .collect::<Vec<_>>()
                .join(", "),
            alerts.settings.db.display()
        ));
        for warning in super::alerts::unwatchable(
            &alerts,
            config.monitor.enabled,
            config.monitor.drift_window,
            auth.is_some(),
        ) {
            tracing::warn!("{warning}");
        }
        super::alerts::start_engine(alerts, &state)?;
    }
    let listener = super::listen::bind_and_announce(&args.host, args.port, ctx).await?;
    taxon_serve::run_router(listener, router, state, taxon_serve::shutdown_signal())
        .await
        .context("serving")?;
    ctx.info("drained in-flight requests; stopped");
    Ok(())
}

/// The log subscriber of the server: `TAXON_LOG` level (default info), text or JSON lines on
/// stderr.
fn log_dispatch(format: LogFormat) -> tracing::Dispatch {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAXON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => tracing::Dispatch::new(builder.finish()),
        LogFormat::Json => tracing::Dispatch::new(builder.json().finish()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_must_be_non_negative() {
        assert_eq!(seconds("--x", 1.5).unwrap(), Duration::from_millis(1500));
        let err = seconds("--cache-ttl", -1.0).unwrap_err().to_string();
        assert!(err.contains("--cache-ttl"), "{err}");
        assert!(seconds("--x", f64::NAN).is_err());
    }
}
