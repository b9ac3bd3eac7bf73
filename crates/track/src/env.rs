//! Where a run ran and on what: machine info, code version (git), the data's version id from
//! its `.dvc` pointer, this process's identity (to tell a killed run), and peak memory.

use std::path::{Path, PathBuf};
use std::process::Command;

use taxon_version::dvcfile::{DvcFile, dvc_path_for};

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

/// The version id of `data`: the md5 in `data.dvc`, or, for a file inside a tracked folder,
/// the folder's `.dir` hash in `folder.dvc`. `None` when the data is not tracked.
pub fn data_version(data: &Path) -> Option<String> {
    let data = std::path::absolute(data).ok()?;
    let mut cur: Option<&Path> = Some(&data);
    while let Some(p) = cur {
        let pointer = dvc_path_for(p);
        if pointer.is_file() {
            let name = p.file_name()?.to_string_lossy().into_owned();
            let file = DvcFile::load(&pointer).ok()?;
            return file
                .outs
                .iter()
                .find(|o| o.path == name)
                .or(file.outs.first())
                .map(|o| o.md5.to_string());
        }
        if p.join(".dvc").is_dir() {
            return None; // the repository root: nothing above is part of this repository
        }
        cur = p.parent();
    }
    None
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
    fn data_version_reads_the_dvc_pointer_of_a_file_and_of_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".dvc")).unwrap();
        let f = dir.path().join("train.jsonl");
        std::fs::write(&f, "{}\n").unwrap();
        assert_eq!(data_version(&f), None);
        std::fs::write(
            dir.path().join("train.jsonl.dvc"),
            "outs:\n- md5: 0123456789abcdef0123456789abcdef\n  size: 3\n  hash: md5\n  path: train.jsonl\n",
        )
        .unwrap();
        assert_eq!(
            data_version(&f).as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        let sub = dir.path().join("bbc");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("test.jsonl"), "{}\n").unwrap();
        std::fs::write(
            dir.path().join("bbc.dvc"),
            "outs:\n- md5: fedcba9876543210fedcba9876543210.dir\n  size: 3\n  nfiles: 1\n  hash: md5\n  path: bbc\n",
        )
        .unwrap();
        assert_eq!(
            data_version(&sub.join("test.jsonl")).as_deref(),
            Some("fedcba9876543210fedcba9876543210.dir")
        );
    }

    #[test]
    fn peak_rss_is_known_on_linux() {
        assert!(peak_rss_bytes() > 0);
    }
}
