//! Encryption subcommands (stub until built).
use clap::Args;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Args)]
pub struct KeygenArgs {}

pub fn keygen(_args: KeygenArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct EncryptArgs {}

pub fn encrypt(_args: EncryptArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}

#[derive(Debug, Args)]
pub struct DecryptArgs {}

pub fn decrypt(_args: DecryptArgs, _ctx: &Ctx) -> anyhow::Result<Outcome> {
    anyhow::bail!("not built yet")
}
