//! Containers of `shim-v2` handlers: the containerd shim holds the container, with FIFOs for its
//! stdio as containerd gives every shim. `crust-shim task-io` (started first, outliving crustd)
//! holds crust's ends: it writes the CRI log with the same rules as crust-shim's own monitor
//! (reopened on SIGUSR1), serves the attach socket and feeds stdin. The task's init pid is
//! watched through a pidfd like a crust-shim's, and the exit status comes from the shim (Wait),
//! kept in the container's `exit.json` so the rest of the manager reads exits one way.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use crust_shim::task_io::{self, Target};

use super::{
    manager::io,
    record::{ContainerRecord, ShimProcess},
    ContainerError,
};
use crate::oci_runtime::{monitor::start_time, OciRuntime, TaskIo};

/// Creates the task for the container `record` whose spec is written in `dir`, its stdio
/// served by `crust-shim task-io` (`shim`); `log_dir` is the pod's log directory.
pub(super) async fn create(
    runtime: &Arc<dyn OciRuntime>,
    shim: &Path,
    id: &str,
    dir: &Path,
    record: &ContainerRecord,
    log_dir: &str,
) -> Result<ShimProcess, ContainerError> {
    let config = &record.config;
    let target = Target {
        log: PathBuf::from(match record.log_path.as_str() {
            "" => "/dev/null",
            path => path,
        }),
        root: (!record.log_path.is_empty()).then(|| PathBuf::from(log_dir)),
        tty: config.tty,
        stdin: config.stdin,
        stdin_once: config.stdin_once,
    };
    let file = dir.join(task_io::TARGET_FILE);
    std::fs::write(&file, target.to_json()).map_err(io("write", &file))?;
    let io_pid = start_task_io(shim, dir).await?;
    let fifo = |on: bool, name: &str| match on {
        true => dir.join(name).to_string_lossy().into_owned(),
        false => String::new(),
    };
    let task_io = TaskIo {
        stdin: fifo(config.stdin, task_io::STDIN),
        stdout: fifo(true, task_io::STDOUT),
        stderr: fifo(!config.tty, task_io::STDERR),
        terminal: config.tty,
    };
    let pid = match runtime.create_task(id, dir, &task_io).await {
        Ok(pid) => pid,
        Err(e) => {
            // SAFETY: kill with the pid task-io just reported and a constant signal.
            unsafe { libc::kill(io_pid, libc::SIGKILL) };
            return Err(e.into());
        }
    };
    Ok(ShimProcess {
        pid,
        start_time: start_time(pid).ok().flatten().unwrap_or(0),
        sandboxed: false,
        task: true,
    })
}

/// Runs `crust-shim task-io DIR`; the pid of the process it left serving the FIFOs.
async fn start_task_io(shim: &Path, dir: &Path) -> Result<i32, ContainerError> {
    let out = tokio::process::Command::new(shim)
        .arg("task-io")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .await
        .map_err(io("run", shim))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.trim();
    match line.strip_prefix("ok ").and_then(|p| p.trim().parse().ok()) {
        Some(pid) => Ok(pid),
        None => Err(ContainerError::Shim(format!(
            "crust-shim task-io: {}",
            line.strip_prefix("error ").unwrap_or(line)
        ))),
    }
}

/// Once the task's init exited: its exit status from the runtime, written as the container's
/// exit file (unless one is there).
pub(super) async fn keep_exit_status(runtime: &Arc<dyn OciRuntime>, id: &str, exit_file: &Path) {
    if exit_file.exists() {
        return;
    }
    let Some(status) = runtime.exit_status(id).await else {
        return;
    };
    if let Err(e) = status.write(exit_file) {
        tracing::warn!(id, error = %e, "cannot keep the task's exit status");
    }
}

/// The pid of the container's task-io while it runs: from its pid file, and only if that pid
/// is still a `crust-shim task-io` of this dir (pids are reused).
fn task_io_pid(dir: &Path) -> Option<i32> {
    let pid = std::fs::read_to_string(dir.join(task_io::PID_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let ours = cmdline.split(|b| *b == 0).any(|arg| arg == b"task-io")
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg == dir.as_os_str().as_encoded_bytes());
    ours.then_some(pid)
}

/// SIGUSR1 to the container's task-io (ReopenContainerLog); false when it is not running.
pub(super) fn signal_logger(dir: &Path) -> bool {
    let Some(pid) = task_io_pid(dir) else {
        return false;
    };
    // SAFETY: kill with a pid checked to be task-io's and a constant signal.
    unsafe { libc::kill(pid, libc::SIGUSR1) == 0 }
}

/// Once the task is deleted: task-io ends by itself when the shim closes the FIFOs; one still
/// running (a shim that never opened them) is told to finish. Blocking-free.
pub(super) fn stop_task_io(dir: &Path) {
    if let Some(pid) = task_io_pid(dir) {
        tracing::debug!(pid, dir = %dir.display(), "task-io outlived its task; terminating it");
        // SAFETY: kill with a pid checked to be task-io's and a constant signal.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}
