//! Push/pull subcommands (stub until built).
use clap::Args;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct PushArgs {}

pub fn push(_args: PushArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct PullArgs {}

pub fn pull(_args: PullArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
