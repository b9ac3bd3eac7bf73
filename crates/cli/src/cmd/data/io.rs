//! Dataset file subcommands (stub until built).
use clap::Args;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct StatsArgs {}

pub fn stats(_args: StatsArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct ImportArgs {}

pub fn import(_args: ImportArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
