//! `taxon quickstart`: the main job end to end on the embedded default.

use clap::Args;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct QuickstartArgs {}

pub fn run(_args: QuickstartArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
