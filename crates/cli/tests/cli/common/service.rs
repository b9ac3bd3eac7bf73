//! [`Service`]: an external server a test starts (moto, mlflow, the Pushgateway), run in a
//! process group of its own and stopped with everything it forked.
//!
//! Killing only the PID a test spawned leaves what that process forked behind: `mlflow server`
//! runs its app in a uvicorn worker that outlived the suite (orphaned, holding its port and
//! ~260 MB). A `Service` is the leader of a new process group; on drop the whole group gets
//! SIGTERM, then SIGKILL for whatever is left after a grace period.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};

/// A spawned server process and its process group, stopped on drop.
pub struct Service {
    child: Child,
    name: &'static str,
}

impl Service {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn(name: &'static str, command: &mut Command) -> Self {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        Self { child, name }
    }

    /// The leader's PID (also the group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the whole group: SIGTERM, up to 10 s for the leader to exit, then SIGKILL to
    /// every process left in the group.
    pub fn stop(&mut self) {
        let Some(group) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) else {
            return;
        };
        let _ = kill_process_group(group, Signal::TERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Workers that ignore SIGTERM or outlive their parent (ESRCH when none is left).
        let _ = kill_process_group(group, Signal::KILL);
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            eprintln!("{}: killed after 10 s", self.name);
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether PID is a live (not zombie) process.
    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                let state = stat
                    .rsplit(')')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .next();
                state != Some("Z")
            })
            .unwrap_or(false)
    }

    #[test]
    fn stopping_a_service_stops_the_processes_it_forked() {
        let tmp = tempfile::tempdir().unwrap();
        let pidfile = tmp.path().join("worker.pid");
        // Like mlflow: a leader that forks a long-lived worker, and a worker that ignores TERM.
        let script = format!(
            "sh -c 'trap \"\" TERM; sleep 300' & echo $! > {}; wait",
            pidfile.display()
        );
        let mut service = Service::spawn("forking", Command::new("sh").args(["-c", &script]));
        let deadline = Instant::now() + Duration::from_secs(10);
        let worker = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                break pid;
            }
            assert!(Instant::now() < deadline, "the worker did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(alive(worker));
        let leader = service.pid();
        service.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(worker) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            !alive(worker),
            "worker {worker} of service {leader} outlived it"
        );
    }
}
