//! Remote management subcommands (stub until built).
use clap::Subcommand;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum RemoteCmd {
    /// List configured remotes.
    List,
}

pub fn run(_cmd: RemoteCmd, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
