//! `taxon ui`: the read-only web UI (taxon-ui) over the project's stores, served until SIGTERM
//! or Ctrl-C. Like `taxon serve` it prints `listening on http://HOST:PORT` on stderr (the real
//! port, also with `--port 0`) and, with `--json`, `{"event":"listening","url":...}` on stdout.
//! With `--jwt-secret` (the same flags as `taxon serve`) every page needs a login as a user of
//! `taxon users`; without it a non-loopback address needs `--insecure`.
//! `/monitor` reads the prediction log `taxon serve --prediction-log DIR` writes
//! (`--prediction-log DIR`), the model it is compared with (`--model DIR`, else the registry
//! version the log names) and the alert history (`--alerts-db`, default `.taxon/alerts.db` in
//! the project).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

use crate::cmd::auth_args::AuthArgs;
use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct UiArgs {
    /// Address to listen on (a non-loopback address needs authentication, or `--insecure`).
    #[arg(long, env = "TAXON_UI_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port, printed at start).
    #[arg(long, env = "TAXON_UI_PORT", default_value_t = 8080)]
    pub port: u16,
    /// The project whose stores are shown (runs, registry, data versions).
    #[arg(long, env = "TAXON_UI_PROJECT", default_value = ".")]
    pub project: PathBuf,
    /// Allow listening on a non-loopback address although no authentication is configured.
    #[arg(long, env = "TAXON_UI_INSECURE")]
    pub insecure: bool,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// The prediction log folder of a server (`taxon serve --prediction-log DIR`), shown on
    /// /monitor over time: predictions by label, latency, live accuracy and drift.
    #[arg(long, env = "TAXON_UI_PREDICTION_LOG", value_name = "DIR")]
    pub prediction_log: Option<PathBuf>,
    /// The model folder whose reference profile the log's drift is measured against; without
    /// it, the registry version the log's newest prediction names (served with `--alias`).
    #[arg(long, env = "TAXON_UI_MODEL", value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// Drift thresholds (YAML, as `taxon monitor drift --thresholds`); defaults otherwise.
    #[arg(long, env = "TAXON_UI_THRESHOLDS", value_name = "FILE")]
    pub thresholds: Option<PathBuf>,
    /// The alert history shown on /monitor (`settings.db` of `taxon serve --alerts`); default
    /// `.taxon/alerts.db` in the project.
    #[arg(long, env = "TAXON_ALERTS_DB", value_name = "PATH")]
    pub alerts_db: Option<PathBuf>,
}

pub fn run(args: UiArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let auth = args.auth.auth()?;
    taxon_auth::check_bind(&args.host, auth.is_some(), args.insecure)?;
    let project = std::path::absolute(&args.project)
        .with_context(|| format!("resolving {}", args.project.display()))?;
    if !project.is_dir() {
        anyhow::bail!("--project {}: not a folder", project.display());
    }
    let monitor = monitor_sources(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("taxon-ui")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = super::listen::bind_and_announce(&args.host, args.port, ctx).await?;
        let mut state = taxon_ui::AppState::new(project).with_monitor(monitor);
        match auth {
            Some(auth) => {
                eprintln!(
                    "auth: on (sign in as a user of {}; sessions last {} s)",
                    taxon_db::redact_url(&args.auth.users_db.display().to_string()),
                    auth.config().token_ttl.as_secs()
                );
                state = state.with_auth(auth);
            }
            None => eprintln!(
                "auth: off (anyone who can reach this address reads the runs, models and data; \
                 set --jwt-secret or TAXON_JWT_SECRET and add users with `taxon users add`)"
            ),
        }
        taxon_ui::run(listener, state, taxon_serve::shutdown_signal())
            .await
            .context("serving the UI")
    })?;
    ctx.info("stopped");
    Ok(Outcome::Ok)
}

/// The `/monitor` sources, made absolute. A missing model folder or a bad thresholds file is
/// refused now; a log or alert history not there yet is said on the page (a server writes
/// them once it runs).
fn monitor_sources(args: &UiArgs) -> anyhow::Result<taxon_ui::monitor::Sources> {
    let abs = |p: &Option<PathBuf>| -> anyhow::Result<Option<PathBuf>> {
        p.as_ref()
            .map(|p| std::path::absolute(p).with_context(|| format!("resolving {}", p.display())))
            .transpose()
    };
    let sources = taxon_ui::monitor::Sources {
        prediction_log: abs(&args.prediction_log)?,
        model: abs(&args.model)?,
        alerts_db: abs(&args.alerts_db)?,
        thresholds: abs(&args.thresholds)?,
    };
    if let Some(d) = sources.model.as_ref().filter(|d| !d.is_dir()) {
        anyhow::bail!("--model {}: not a folder", d.display());
    }
    if let Some(t) = &sources.thresholds {
        taxon_monitor::drift::Thresholds::load(t)?;
    }
    Ok(sources)
}
