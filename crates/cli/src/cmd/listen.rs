//! Binding a server's address and saying where it listens, the same way for `taxon serve` and
//! `taxon ui`: `listening on http://HOST:PORT` on stderr (the real port, also with `--port 0`)
//! and, with `--json`, `{"event":"listening","url":...}` on stdout.

use std::io::Write as _;

use anyhow::Context as _;

use crate::ctx::Ctx;

/// Binds `host:port` and announces the bound address.
pub async fn bind_and_announce(
    host: &str,
    port: u16,
    ctx: &Ctx,
) -> anyhow::Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("listening on {host}:{port}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let url = format!("http://{addr}");
    // Always printed: scripts started with --port 0 read the port from it.
    eprintln!("listening on {url}");
    if ctx.json {
        let line = serde_json::json!({"event": "listening", "url": url});
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush())?;
    }
    Ok(listener)
}
