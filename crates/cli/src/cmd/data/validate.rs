//! Validation subcommand (stub until built).
use clap::Args;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct ValidateArgs {}

pub fn run(_args: ValidateArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
