//! The quickstart's last step: serve the production alias with `taxon serve`, ask it for one
//! prediction over HTTP as a client would, show the answer, then stop the server with SIGTERM
//! (or keep it serving with `--keep-serving`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::ctx::Ctx;

/// The text the quickstart sends to the server.
const SAMPLE: &str = "Shares in the carmaker rose after it reported record quarterly profits and raised its forecast.";

/// How long the server may take to load, warm up and self-test the model.
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Stops the server when the step ends early (an error); a no-op after it exited.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Runs `taxon serve --alias production` in `dir` on `port` (0: a free one), predicts one text,
/// prints the command lines and the answer, then stops it (exit 0 expected) unless
/// `keep_serving`.
pub fn serve_and_predict(
    dir: &Path,
    port: u16,
    keep_serving: bool,
    ctx: &Ctx,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the taxon binary")?;
    let port_arg = port.to_string();
    let argv = [
        "serve",
        "--alias",
        "production",
        "--port",
        port_arg.as_str(),
    ];
    ctx.info(format!("    $ taxon {}", argv.join(" ")));
    let child = Command::new(exe)
        .current_dir(dir)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting `taxon serve`")?;
    let mut server = Running(child);
    let stderr = server.0.stderr.take().context("reading the server's log")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let url = loop {
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => bail!(
                "`taxon serve` did not start listening within {} s",
                START_TIMEOUT.as_secs()
            ),
        };
        ctx.info(format!("    | {line}"));
        if let Some(url) = line.strip_prefix("listening on ") {
            break url.to_string();
        }
    };
    let addr = url.trim_start_matches("http://").to_string();
    let body = serde_json::json!({ "text": SAMPLE }).to_string();
    ctx.info(format!(
        "    $ curl -s {url}/v1/predict -H 'content-type: application/json' -d '{body}'"
    ));
    let answer = post_json(&addr, "/v1/predict", &body)
        .with_context(|| format!("asking {url}/v1/predict for a prediction"))?;
    let pretty = serde_json::from_str::<serde_json::Value>(&answer)
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or(answer);
    // The answer is the result of this step: on stdout, even with --quiet.
    println!("{pretty}");
    if keep_serving {
        ctx.info(format!(
            "    serving {url} until Ctrl-C (docs at {url}/docs, metrics at {url}/metrics)"
        ));
        let status = server.0.wait().context("waiting for `taxon serve`")?;
        if !status.success() {
            bail!("`taxon serve` ended with {status}");
        }
        return Ok(());
    }
    // Graceful stop, as an orchestrator would: SIGTERM, drain, exit 0.
    let pid = server.0.id().to_string();
    let sent = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .context("sending SIGTERM to `taxon serve`")?;
    if !sent.success() {
        bail!("could not send SIGTERM to `taxon serve` (pid {pid})");
    }
    let status = server
        .0
        .wait()
        .context("waiting for `taxon serve` to stop")?;
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
        ctx.info(format!("    | {line}"));
    }
    if !status.success() {
        bail!("`taxon serve` did not stop cleanly after SIGTERM ({status})");
    }
    Ok(())
}

/// POSTs `body` as JSON to `http://addr{path}` (HTTP/1.1, one request) and returns the body of
/// a 200 answer.
fn post_json(addr: &str, path: &str, body: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .with_context(|| format!("no HTTP answer from {addr}"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        bail!("{status}: {body}");
    }
    Ok(body.to_string())
}
