//! The `taxon` binary: parses the command line, runs one stage command, maps the result to an
//! exit code that scripts can trust (0 ok, 1 a check ran and failed, 2 an error).

mod cmd;
mod ctx;
mod output;

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

fn main() -> ExitCode {
    // `taxon ... | head` must end quietly like other Unix tools, not panic in println!.
    sigpipe::reset();
    let cli = Cli::parse();
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
