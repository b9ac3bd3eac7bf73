//! Where a run ran and on what: machine info, code version (git), this process's identity (to
//! tell a killed run), and peak memory. (The data's version id is
//! `taxon_version::dvcfile::data_version`, the rule the train driver records too.)

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::record::{CodeVersion, MachineInfo};

/// CPU model, cores, memory, OS and host name of this machine (best effort: a field that cannot
/// be read stays empty or zero).
pub fn machine_info() -> MachineInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name") || l.starts_with("Model"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| status_kib(&t, "MemTotal:"))
        .map_or(0, |k| k * 1024);
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let pretty = os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .ok();
    let os = match (pretty, kernel) {
        (Some(p), Some(k)) => format!("{p} (Linux {k})"),
        (Some(p), None) => p,
        (None, Some(k)) => format!("Linux {k}"),
        (None, None) => std::env::consts::OS.to_string(),
    };
    MachineInfo {
        hostname: hostname(),
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes,
        os,
    }
}

/// This machine's host name.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The git commit checked out in `dir` and whether tracked files have changes; `None`s when
/// `dir` is not in a git checkout or git is not installed.
pub fn code_version(dir: &Path, taxon_version: &str) -> CodeVersion {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let git_commit = git(&["rev-parse", "HEAD"]).filter(|s| !s.is_empty());
    let git_dirty = git_commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    CodeVersion {
        git_commit,
        git_dirty,
        taxon_version: taxon_version.to_string(),
    }
}

/// The folder runs are stored in: `.taxon/` of the repository around `start`, or
/// `start/.taxon/` outside a repository.
pub fn default_taxon_dir(start: &Path) -> PathBuf {
    match taxon_version::Repo::discover(start) {
        Ok(repo) => repo.taxon_dir(),
        Err(_) => start.join(".taxon"),
    }
}

/// A process's start time in clock ticks since boot (field 22 of `/proc/PID/stat`): with the
/// pid it names a process uniquely, even after the pid is reused.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` started at `start_ticks` is alive on this host. `None` when this
/// cannot be told (no `/proc`).
pub fn process_alive(pid: u32, start_ticks: u64) -> Option<bool> {
    if !Path::new("/proc/self/stat").exists() {
        return None;
    }
    Some(process_start_ticks(pid) == Some(start_ticks))
}

fn status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// This process's peak resident memory so far (`VmHWM`), in bytes; 0 when unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| status_kib(&t, "VmHWM:"))
        .map_or(0, |k| k * 1024)
}

/// Resets `VmHWM` to the current resident size (Linux `clear_refs` value 5), so the next
/// reading is the peak of what follows. False when the kernel refuses.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", b"5").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_wrong_start_time_is_not() {
        let pid = std::process::id();
        let ticks = process_start_ticks(pid).expect("own /proc/self/stat");
        assert_eq!(process_alive(pid, ticks), Some(true));
        assert_eq!(process_alive(pid, ticks + 1), Some(false));
    }

    #[test]
    fn peak_rss_is_known_on_linux() {
        assert!(peak_rss_bytes() > 0);
    }
}
