//! `taxon serve`: the inference server.

use clap::Args;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct ServeArgs {}

pub fn run(_args: ServeArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
