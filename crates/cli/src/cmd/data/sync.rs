//! `taxon data push` and `taxon data pull`: parallel transfers between the cache and a remote,
//! with a progress bar in objects and bytes and a one-line summary (or `--json`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use indicatif::ProgressBar;
use serde::Serialize;
use taxon_version::Repo;
use taxon_version::config::resolve_remote;
use taxon_version::remote::Remote;
use taxon_version::transfer::{self, Progress, TransferOptions};

use crate::ctx::{Ctx, Outcome};
use crate::output::print_json;

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Tracked paths (or their .dvc files) to push; all tracked paths when none.
    targets: Vec<PathBuf>,
    /// Remote name (default: `[core] remote` of .dvc/config).
    #[arg(short, long)]
    remote: Option<String>,
    /// Concurrent uploads (default: the remote's `jobs`, else 4 x cores, as DVC).
    #[arg(short, long, env = "TAXON_JOBS")]
    jobs: Option<usize>,
    /// Only show what would be uploaded (and what is missing locally); change nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Tracked paths (or their .dvc files) to pull; all tracked paths when none.
    targets: Vec<PathBuf>,
    /// Remote name (default: `[core] remote` of .dvc/config).
    #[arg(short, long)]
    remote: Option<String>,
    /// Concurrent downloads (default: the remote's `jobs`, else 4 x cores, as DVC).
    #[arg(short, long, env = "TAXON_JOBS")]
    jobs: Option<usize>,
}

/// Drives an indicatif bar: objects as position, bytes in the message.
struct BarProgress {
    bar: ProgressBar,
    bytes: std::sync::atomic::AtomicU64,
}

impl Progress for BarProgress {
    fn start(&self, objects: u64, _bytes: u64) {
        self.bar.set_length(objects);
        self.bar.set_position(0);
    }
    fn object_done(&self, bytes: u64) {
        let total = self
            .bytes
            .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed)
            + bytes;
        self.bar.inc(1);
        self.bar.set_message(human_bytes(total));
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// The repository around the current folder and the named (or default) remote.
pub(crate) fn open(remote: Option<&str>) -> anyhow::Result<(Repo, Remote)> {
    let repo = Repo::discover(Path::new("."))?;
    let cfg = resolve_remote(&repo, remote)?;
    let remote = Remote::open(&cfg)?;
    Ok((repo, remote))
}

fn options(ctx: &Ctx, jobs: Option<usize>, verb: &str) -> (TransferOptions, ProgressBar) {
    let bar = if ctx.json {
        ProgressBar::hidden()
    } else {
        ctx.items_bar(0, verb)
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {pos}/{len} objects, {msg} {per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(verb.to_string());
    let progress = Arc::new(BarProgress {
        bar: bar.clone(),
        bytes: Default::default(),
    });
    (
        TransferOptions {
            jobs: jobs.unwrap_or(0),
            progress,
        },
        bar,
    )
}

#[derive(Serialize)]
struct DryRun<'a> {
    dry_run: bool,
    #[serde(flatten)]
    status: &'a transfer::RemoteStatus,
}

pub fn push(args: PushArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if args.jobs == Some(0) {
        anyhow::bail!("--jobs must be at least 1");
    }
    let (repo, remote) = open(args.remote.as_deref())?;
    if args.dry_run {
        let status = transfer::remote_status(&repo, &remote, &args.targets)?;
        if ctx.json {
            print_json(&DryRun {
                dry_run: true,
                status: &status,
            })?;
        } else {
            println!(
                "would upload {} object(s) to {:?} ({}); {} object(s) needed are not in the cache",
                status.missing_on_remote.len(),
                remote.name(),
                remote.url(),
                status.missing_locally.len()
            );
            for h in &status.missing_on_remote {
                println!("  {h}");
            }
        }
        return Ok(Outcome::Ok);
    }
    let (opts, bar) = options(ctx, args.jobs, "push");
    let summary = transfer::push(&repo, &remote, &args.targets, &opts);
    bar.finish_and_clear();
    let summary = summary?;
    if ctx.json {
        print_json(&summary)?;
    } else {
        println!(
            "pushed to {:?}: {} uploaded, {} already there, {} in {:.2}s",
            summary.remote,
            summary.uploaded,
            summary.already_there,
            human_bytes(summary.bytes),
            summary.seconds
        );
    }
    Ok(Outcome::Ok)
}

pub fn pull(args: PullArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if args.jobs == Some(0) {
        anyhow::bail!("--jobs must be at least 1");
    }
    let (repo, remote) = open(args.remote.as_deref())?;
    let (opts, bar) = options(ctx, args.jobs, "pull");
    let summary = transfer::pull(&repo, &remote, &args.targets, &opts);
    bar.finish_and_clear();
    let summary = summary?;
    if ctx.json {
        print_json(&summary)?;
    } else {
        println!(
            "pulled from {:?}: {} downloaded, {} already in the cache, {} in {:.2}s; workspace checked out",
            summary.remote,
            summary.downloaded,
            summary.already_cached,
            human_bytes(summary.bytes),
            summary.seconds
        );
    }
    Ok(Outcome::Ok)
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 1), "5.0 MiB");
    }
}
