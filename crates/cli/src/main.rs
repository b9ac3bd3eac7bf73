//! The `taxon` binary: parses the command line, runs one stage command, maps the result to an
//! exit code that scripts can trust (0 ok, 1 a check ran and failed, 2 an error).

mod cmd;
mod ctx;
mod output;
mod s3file;

use std::process::ExitCode;

use clap::Parser;

use crate::cmd::Command;
use crate::ctx::{Ctx, Outcome};

/// taxon: one command line for the whole life of a text classifier (versioned data,
/// validation, training, evaluation, registry, serving, monitoring).
#[derive(Debug, Parser)]
#[command(
    name = "taxon",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true, env = "TAXON_JSON")]
    json: bool,
    /// Hide progress bars and informational messages.
    #[arg(long, short, global = true, env = "TAXON_QUIET")]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Environment variable candle sizes its own elementwise thread pool from.
const CANDLE_THREADS_ENV: &str = "CANDLE_NUM_THREADS";

/// Makes `--threads N` bind candle too. candle's CPU backend runs elementwise ops on a pool it
/// sizes once per process from `CANDLE_NUM_THREADS` (else `RAYON_NUM_THREADS`, else every
/// core), read only from the environment; changing the environment of a running process is
/// `unsafe` in Rust 2024 (other threads may read it). So when the variable does not already
/// say `n`, the binary replaces itself (`exec`, same PID, same arguments) with the variable
/// set; if that fails, it carries on with candle's default pool.
fn pin_candle_threads(n: usize) {
    use std::os::unix::process::CommandExt;
    let want = n.to_string();
    if std::env::var(CANDLE_THREADS_ENV).is_ok_and(|v| v == want) {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let err = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(CANDLE_THREADS_ENV, want)
        .exec();
    eprintln!(
        "warning: could not restart with {CANDLE_THREADS_ENV}={n} ({err}); the model's elementwise kernels may use every core"
    );
}

fn main() -> ExitCode {
    // `taxon ... | head` must end quietly like other Unix tools, not panic in println!.
    sigpipe::reset();
    // Before any thread starts: model buffers freed on one step are reused on the next.
    taxon_kernels::memory::keep_freed_buffers();
    let cli = Cli::parse();
    // A misspelt TAXON_KERNELS, or a level this CPU lacks, stops here with what the CPU runs
    // (the kernels on their own would fall back to the best level with a warning).
    if let Err(e) = taxon_kernels::Level::from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if let Some(n) = cli.command.compute_threads() {
        pin_candle_threads(n);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_env("TAXON_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let ctx = Ctx::new(cli.json, cli.quiet);
    match cmd::run(cli.command, &ctx) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::CheckFailed) => ExitCode::from(1),
        Err(err) => {
            let mut shown = err.to_string();
            eprintln!("error: {shown}");
            for cause in err.chain().skip(1) {
                // Many errors already end with their source's text: print each line once.
                let text = cause.to_string();
                if !shown.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                shown = text;
            }
            ExitCode::from(2)
        }
    }
}
