//! `taxon users`: the users of the inference server.

use clap::Subcommand;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Not built yet.
    List,
}

pub fn run(_cmd: UsersCmd, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
