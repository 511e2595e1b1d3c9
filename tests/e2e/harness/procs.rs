//! Child processes of the suite: free loopback ports, spawning (wrangler in its own process
//! group so its node and workerd children can be stopped together), stopping, and a watchdog
//! that cleans up if the test process itself dies (Ctrl-C, SIGKILL, a panic outside a test).
//!
//! Signals go through the `kill` command, so no libc binding is needed.

use std::io;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, read, released: the caller binds it right after).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Sends `signal` (e.g. `-TERM`, `-0`) to `target` (a pid, or `-<pgid>` for a group).
fn kill(signal: &str, target: &str) -> bool {
    Command::new("kill")
        .args([signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A spawned process the suite owns.
pub struct Managed {
    pub name: &'static str,
    child: Child,
    /// Leads its own process group: stopping it signals the whole group.
    group: bool,
}

impl Managed {
    /// Spawns `command` as the leader of a new process group.
    pub fn spawn_group(name: &'static str, command: &mut Command) -> io::Result<Managed> {
        command.process_group(0);
        Ok(Managed {
            name,
            child: command.spawn()?,
            group: true,
        })
    }

    /// Spawns `command` in the test process's own group (it gets the terminal's Ctrl-C too).
    pub fn spawn(name: &'static str, command: &mut Command) -> io::Result<Managed> {
        Ok(Managed {
            name,
            child: command.spawn()?,
            group: false,
        })
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What `kill` addresses to reach this process (and its group).
    pub fn kill_target(&self) -> String {
        if self.group {
            format!("-{}", self.pid())
        } else {
            self.pid().to_string()
        }
    }

    /// `Some(status)` once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// TERM, up to `grace` for the process (and its group) to go, then KILL; reaps the child.
    pub fn stop(&mut self, grace: Duration) {
        let target = self.kill_target();
        kill("-TERM", &target);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            let reaped = self.exited().is_some();
            let group_gone = !self.group || !kill("-0", &target);
            if reaped && group_gone {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "e2e: {} did not stop within {grace:?}; killing it",
            self.name
        );
        kill("-KILL", &target);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a detached shell that waits for this test process to exit and then stops `targets`
/// (as given by [`Managed::kill_target`]) and removes `dir` (unless `None`). It runs in its
/// own process group so that a Ctrl-C aimed at the tests does not stop it first.
///
/// It learns of the exit from its stdin: a pipe whose write end only this process holds (never
/// closed, and close-on-exec, so no other child inherits it), which reads end-of-file once the
/// process is gone, however it ends. (No pid polling: a pid can be reused.) The shell is
/// `/bin/sh`, which may be dash: its `kill` takes no `--`.
pub fn watchdog(targets: &[String], dir: Option<&Path>) -> io::Result<Managed> {
    const SCRIPT: &str = r#"dir=$1; shift
cat >/dev/null
for t in "$@"; do kill -TERM "$t" 2>/dev/null; done
sleep 3
for t in "$@"; do kill -KILL "$t" 2>/dev/null; done
if [ -n "$dir" ]; then rm -rf -- "$dir"; fi"#;
    let dir = dir.map(|d| d.display().to_string()).unwrap_or_default();
    let mut command = Command::new("sh");
    command
        .args(["-c", SCRIPT, "onecode-e2e-watchdog"])
        .arg(dir)
        .args(targets)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // `sh -c SCRIPT NAME ARGS...`: NAME becomes $0, so the directory is $1.
    let mut watchdog = Managed::spawn_group("watchdog", &mut command)?;
    // Held open until this process exits, by design.
    std::mem::forget(watchdog.child_mut().stdin.take());
    Ok(watchdog)
}
