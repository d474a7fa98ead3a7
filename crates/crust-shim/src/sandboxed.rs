//! Containers inside a sandbox process (gVisor's runsc, and any runtime that runs a pod's
//! containers in one sandbox chosen by the `io.kubernetes.cri.container-type` and `sandbox-id`
//! annotations). After `create` such a runtime's pid file names the *sandbox* process, which is
//! not the shim's child, so the shim cannot wait for the container's init. Two things differ:
//! - the container's stdio is taken from the `start` call, not from `create`, so the shim runs
//!   `start` itself when crustd asks (SIGUSR2) and writes the outcome to `<bundle>/start.result`
//!   (`ok` or `error <message>`, atomically);
//! - its exit comes from `RUNTIME wait ID` (the shim's child, printing `{"exitStatus":N}`).
//!
//! SIGTERM before the start means crustd gave the container up (removed while created): the shim
//! ends with exit code 255 as containerd reports for a process that never ran.

use std::{
    io::Read,
    os::fd::{FromRawFd, OwnedFd},
    path::Path,
    process::Stdio,
};

use crate::{errno_err, runtime, unblocked, Args};

/// Name of the start outcome inside the bundle.
pub const START_RESULT: &str = "start.result";

/// True when `pid` is a child of this process (exited or not; nothing is reaped).
pub(crate) fn is_child(pid: i32) -> bool {
    // SAFETY: info is a valid out-pointer; WNOWAIT leaves the child's state untouched.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        ) == 0
    }
}

/// The container's stdio, held by the shim from `create` until `start` hands it over.
pub(crate) struct Pending {
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: OwnedFd,
    pub(crate) stderr: OwnedFd,
}

/// The `wait` child and the read end of its stdout.
pub(crate) struct Waiter {
    pub(crate) pid: i32,
    out: OwnedFd,
}

impl Waiter {
    /// The container's exit code: `exitStatus` of wait's answer, or 255 when it had none.
    pub(crate) fn exit_code(self) -> i32 {
        let mut text = String::new();
        let _ = std::fs::File::from(self.out).read_to_string(&mut text);
        parse_exit_status(&text).unwrap_or(255)
    }
}

/// `"exitStatus":N` in `runsc wait`'s JSON answer.
pub fn parse_exit_status(text: &str) -> Option<i32> {
    let at = text.find("\"exitStatus\"")? + "\"exitStatus\"".len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Runs `RUNTIME start ID` with the container's stdio, records the outcome for crustd and, when
/// it started, spawns the waiter.
pub(crate) fn start(args: &Args, pending: Pending) -> Option<Waiter> {
    let result = run_start(args, pending).and_then(|()| spawn_wait(args));
    let answer = match &result {
        Ok(_) => "ok\n".to_string(),
        Err(e) => format!("error {}\n", e.replace('\n', " ")),
    };
    write_result(&args.bundle, &answer);
    result.ok()
}

fn run_start(args: &Args, pending: Pending) -> Result<(), String> {
    let mut cmd = runtime(args);
    cmd.arg("start").arg(&args.id);
    cmd.stdin(match pending.stdin {
        Some(fd) => Stdio::from(fd),
        None => Stdio::null(),
    })
    .stdout(Stdio::from(pending.stdout))
    .stderr(Stdio::from(pending.stderr));
    unblocked(&mut cmd);
    let status = cmd
        .status()
        .map_err(|e| format!("run {}: {e}", args.runtime.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} start failed ({status})",
            args.runtime.display()
        ))
    }
}

fn spawn_wait(args: &Args) -> Result<Waiter, String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno_err("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    let (out, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let mut cmd = runtime(args);
    cmd.arg("wait")
        .arg(&args.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::null());
    unblocked(&mut cmd);
    let child = cmd
        .spawn()
        .map_err(|e| format!("run {} wait: {e}", args.runtime.display()))?;
    Ok(Waiter {
        pid: child.id() as i32,
        out,
    })
}

/// `<bundle>/start.result` via temp file, fsync, rename.
fn write_result(bundle: &Path, answer: &str) {
    let path = bundle.join(START_RESULT);
    let tmp = bundle.join(".start.result.tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut f| {
        std::io::Write::write_all(&mut f, answer.as_bytes())?;
        f.sync_all()
    });
    if written.is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    } else {
        let _ = std::fs::remove_file(&tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_answers_parse() {
        assert_eq!(
            parse_exit_status("{\"id\":\"c1\",\"exitStatus\":7}\n"),
            Some(7)
        );
        assert_eq!(parse_exit_status("{\"exitStatus\": 137}"), Some(137));
        assert_eq!(parse_exit_status("waiting on container: error"), None);
    }

    #[test]
    fn own_children_are_told_apart() {
        let child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(is_child(pid));
        // Exited but not reaped: still a child, and still there after the check.
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(is_child(pid));
        let mut child = child;
        child.wait().unwrap();
        assert!(!is_child(pid), "reaped");
        assert!(!is_child(1), "init is nobody's child");
    }
}
