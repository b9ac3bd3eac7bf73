//! Versioning subcommands (stub until built).
use clap::Args;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct AddArgs {}

pub fn add(_args: AddArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct StatusArgs {}

pub fn status(_args: StatusArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct CheckoutArgs {}

pub fn checkout(_args: CheckoutArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct VersionsArgs {}

pub fn versions(_args: VersionsArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct DiffArgs {}

pub fn diff(_args: DiffArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
#[derive(Debug, Args)]
pub struct InitArgs {}

pub fn init(_args: InitArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
