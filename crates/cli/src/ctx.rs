//! What every command receives: output mode, and how it reports its result.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Global output settings shared by all commands.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// `--json`: print one JSON document on stdout, nothing else.
    pub json: bool,
    /// `--quiet`: no progress bars or informational lines.
    pub quiet: bool,
}

/// How a command ended when it did not error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0.
    Ok,
    /// Exit code 1: the command ran and a check it performs failed (validation, integrity).
    CheckFailed,
}

impl Ctx {
    pub fn new(json: bool, quiet: bool) -> Self {
        Self { json, quiet }
    }

    /// An informational line on stderr, unless quiet.
    pub fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }

    /// A byte-counting progress bar on stderr (hidden when quiet or not a terminal).
    pub fn bytes_bar(&self, total: u64, msg: &str) -> ProgressBar {
        self.bar(
            total,
            msg,
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
    }

    /// An item-counting progress bar on stderr (hidden when quiet or not a terminal).
    pub fn items_bar(&self, total: u64, msg: &str) -> ProgressBar {
        self.bar(
            total,
            msg,
            "{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}",
        )
    }

    fn bar(&self, total: u64, msg: &str, template: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(msg.to_string());
        bar
    }
}
