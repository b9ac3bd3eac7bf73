//! `taxon data ...`: the data stage. Each group of subcommands lives in its own file.

pub mod crypto;
pub mod io;
pub mod remote;
pub mod sync;
pub mod validate;
pub mod version;

use clap::Subcommand;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum DataCmd {
    /// Create `.dvc/` (as `dvc init --no-scm` does) and `.taxon/` in the current folder.
    Init(version::InitArgs),
    /// Track a file or folder: hash it (md5, as DVC 3), store it in the cache, write PATH.dvc.
    Add(version::AddArgs),
    /// Upload cached objects of tracked paths to a remote.
    Push(sync::PushArgs),
    /// Download tracked objects from a remote (hash-verified) and check them out.
    Pull(sync::PullArgs),
    /// Manage remotes (stored in DVC's own `.dvc/config` and `.dvc/config.local`).
    #[command(subcommand)]
    Remote(remote::RemoteCmd),
    /// Show which tracked paths changed in the workspace, and (with --remote) what is not pushed.
    Status(version::StatusArgs),
    /// Restore tracked paths in the workspace from the cache (optionally an older version).
    Checkout(version::CheckoutArgs),
    /// List the recorded versions of a tracked path with their statistics.
    Versions(version::VersionsArgs),
    /// Content-level diff of two versions: rows added, removed, relabelled; label shift.
    Diff(version::DiffArgs),
    /// Check a dataset against expectations (YAML); exit code 1 when any fails.
    Validate(validate::ValidateArgs),
    /// Print statistics of a dataset file (rows, labels, lengths, vocabulary, duplicates).
    Stats(io::StatsArgs),
    /// Build train/test JSONL from a folder with one sub-folder of text files per label,
    /// with a seeded, stratified split.
    Import(io::ImportArgs),
    /// Generate a new Fernet key.
    Keygen(crypto::KeygenArgs),
    /// Encrypt a file into Fernet tokens (one per line, one per chunk).
    Encrypt(crypto::EncryptArgs),
    /// Decrypt a file of Fernet tokens.
    Decrypt(crypto::DecryptArgs),
}

pub fn run(cmd: DataCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        DataCmd::Add(a) => version::add(a, ctx),
        DataCmd::Init(a) => version::init(a, ctx),
        DataCmd::Push(a) => sync::push(a, ctx),
        DataCmd::Pull(a) => sync::pull(a, ctx),
        DataCmd::Remote(c) => remote::run(c, ctx),
        DataCmd::Status(a) => version::status(a, ctx),
        DataCmd::Checkout(a) => version::checkout(a, ctx),
        DataCmd::Versions(a) => version::versions(a, ctx),
        DataCmd::Diff(a) => version::diff(a, ctx),
        DataCmd::Validate(a) => validate::run(a, ctx),
        DataCmd::Stats(a) => io::stats(a, ctx),
        DataCmd::Import(a) => io::import(a, ctx),
        DataCmd::Keygen(a) => crypto::keygen(a, ctx),
        DataCmd::Encrypt(a) => crypto::encrypt(a, ctx),
        DataCmd::Decrypt(a) => crypto::decrypt(a, ctx),
    }
}
