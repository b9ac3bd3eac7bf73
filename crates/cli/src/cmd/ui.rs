//! `taxon ui`: the read-only web UI (taxon-ui) over the project's stores, served until SIGTERM
//! or Ctrl-C. Like `taxon serve` it prints `listening on http://HOST:PORT` on stderr (the real
//! port, also with `--port 0`) and, with `--json`, `{"event":"listening","url":...}` on stdout.
//! With `--jwt-secret` (the same flags as `taxon serve`) every page needs a login as a user of
//! `taxon users`; without it a non-loopback address needs `--insecure`.

use std::io::Write as _;
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
}

pub fn run(args: UiArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let auth = args.auth.auth()?;
    taxon_auth::check_bind(&args.host, auth.is_some(), args.insecure)?;
    let project = std::path::absolute(&args.project)
        .with_context(|| format!("resolving {}", args.project.display()))?;
    if !project.is_dir() {
        anyhow::bail!("--project {}: not a folder", project.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("taxon-ui")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("listening on {}:{}", args.host, args.port))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let url = format!("http://{addr}");
        // Always printed: scripts started with --port 0 read the port from it.
        eprintln!("listening on {url}");
        if ctx.json {
            let line = serde_json::json!({"event": "listening", "url": url});
            let mut out = std::io::stdout().lock();
            writeln!(out, "{line}").and_then(|()| out.flush())?;
        }
        let mut state = taxon_ui::AppState::new(project);
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
