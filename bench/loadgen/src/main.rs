//! `taxon-loadgen`: the command line around the load generator; prints a table or JSON and
//! exits 0, 1 when more requests failed than `--max-failures`, 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hyper::header::{HeaderName, HeaderValue};
use taxon_loadgen::options::{parse_duration, parse_header};
use taxon_loadgen::{Config, FieldPath, Target, Texts};

/// Load an HTTP endpoint (taxon serve's /v1/predict) with one JSON body per line of a texts
/// file, from C keep-alive connections, and report throughput, latency percentiles, 503s,
/// failures and the server's memory.
#[derive(Debug, Parser)]
#[command(name = "taxon-loadgen", version, max_term_width = 100)]
struct Args {
    /// The endpoint, e.g. http://127.0.0.1:8080/v1/predict.
    #[arg(long)]
    url: String,
    /// One text per line; request i sends `{"text": line i}` (cycling through the file).
    #[arg(long)]
    texts: PathBuf,
    /// Connections, each with one request in flight.
    #[arg(long, short = 'c', default_value_t = 1)]
    concurrency: usize,
    /// The measured window (e.g. 30s, 500ms, 2m).
    #[arg(long, short = 'd', default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Load before the window that is sent but not recorded.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    warmup: Duration,
    /// Open loop: send this many requests per second at fixed times over the connections,
    /// latency counted from each request's scheduled time; without it, a closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// An extra request header, 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header)]
    headers: Vec<(HeaderName, HeaderValue)>,
    /// A request without a full response after this long fails.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Sample this process's resident memory every 250 ms and its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Count the values of this dotted JSON field of 2xx bodies (e.g. model.version).
    #[arg(long, value_parser = FieldPath::parse)]
    track_field: Option<FieldPath>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Add per-second rows: ok, 503, failed, p99 of the ok responses.
    #[arg(long)]
    timeline: bool,
    /// Exit 1 when more requests than this failed (503s are not failures).
    #[arg(long)]
    max_failures: Option<u64>,
    /// Runtime threads (1: a single-threaded runtime, light next to the server).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("taxon-loadgen: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = match args.threads {
        0 => anyhow::bail!("--threads must be at least 1"),
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("starting the async runtime")?;
    let texts = Arc::new(Texts::load(&args.texts)?);
    let report = runtime.block_on(async {
        let target = Target::resolve(&args.url).await?;
        taxon_loadgen::run(Config {
            target,
            texts,
            concurrency: args.concurrency,
            duration: args.duration,
            warmup: args.warmup,
            rate: args.rate,
            headers: args.headers,
            timeout: args.timeout,
            server_pid: args.server_pid,
            track: args.track_field,
            timeline: args.timeline,
        })
        .await
    })?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.render());
    }
    if report.texts.repeated {
        eprintln!(
            "taxon-loadgen: warning: texts repeated ({} requests, {} distinct texts): a server cache could answer some",
            report.texts.sent, report.texts.distinct_in_file
        );
    }
    match args.max_failures {
        Some(max) if report.counts.failed > max => {
            eprintln!(
                "taxon-loadgen: {} requests failed, more than --max-failures {max}",
                report.counts.failed
            );
            Ok(ExitCode::from(1))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}
