//! `taxon registry`: model versions, aliases and their history.

use clap::Subcommand;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Not built yet.
    List,
}

pub fn run(_cmd: RegistryCmd, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
