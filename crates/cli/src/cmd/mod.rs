//! One variant per stage; each stage's subcommands live in their own module.

pub mod data;
pub mod quickstart;

use clap::Subcommand;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Versioned datasets: add, push, pull, status, checkout, versions, diff, validate,
    /// statistics, encryption.
    #[command(subcommand)]
    Data(data::DataCmd),
    /// Run the main job end to end on the BBC News benchmark (fetch, split, version,
    /// validate, statistics).
    Quickstart(quickstart::QuickstartArgs),
}

pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Data(c) => data::run(c, ctx),
        Command::Quickstart(a) => quickstart::run(a, ctx),
    }
}
