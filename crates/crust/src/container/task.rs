//! Containers of `shim-v2` handlers: the containerd shim holds the container and its stdio.
//! crust-shim runs as the shim's logging binary (`crust-shim cri-log DIR`, writing the CRI log
//! with the same rules as its own monitor, reopened on SIGUSR1), the task's init pid is watched
//! through a pidfd like a crust-shim's, and the exit status comes from the shim (Wait), kept in
//! the container's `exit.json` so the rest of the manager reads exits one way.

use std::{path::Path, sync::Arc};

use super::{manager::io, record::ShimProcess, ContainerError};
use crate::oci_runtime::{monitor::start_time, OciRuntime, TaskIo};

/// Creates the task for a container whose spec is written in `dir`: its output goes to the
/// CRI log `log_path` (below `log_root`) through the logging binary at `uri`.
pub(super) async fn create(
    runtime: &Arc<dyn OciRuntime>,
    id: &str,
    dir: &Path,
    uri: String,
    log: (&Path, Option<&Path>),
    tty: bool,
) -> Result<ShimProcess, ContainerError> {
    let target = dir.join(crust_shim::binary_log::TARGET_FILE);
    let body = crust_shim::binary_log::target_json(log.0, log.1);
    std::fs::write(&target, body).map_err(io("write", &target))?;
    let task_io = TaskIo {
        stdin: String::new(),
        stdout: uri.clone(),
        stderr: uri,
        terminal: tty,
    };
    let pid = runtime.create_task(id, dir, &task_io).await?;
    Ok(ShimProcess {
        pid,
        start_time: start_time(pid).ok().flatten().unwrap_or(0),
        sandboxed: false,
        task: true,
    })
}

/// What a shim-v2 container cannot have yet.
pub(super) fn check_config(config: &cri_api::v1::ContainerConfig) -> Result<(), ContainerError> {
    if config.stdin {
        return Err(ContainerError::Precondition {
            field: "config.stdin",
            reason: "containers of shim-v2 handlers cannot read stdin yet (attach is not wired to the shim)".into(),
        });
    }
    Ok(())
}

/// Streaming exec and attach are not wired to shims yet.
pub(super) fn no_streaming(what: &'static str) -> ContainerError {
    ContainerError::Precondition {
        field: what,
        reason: "not yet available for containers of shim-v2 handlers (ExecSync is)".into(),
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

/// SIGUSR1 to the logging binary (ReopenContainerLog); false when it is not running.
pub(super) fn signal_logger(dir: &Path) -> bool {
    let pid = std::fs::read_to_string(dir.join(crust_shim::binary_log::PID_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
        .filter(|p| *p > 0);
    let Some(pid) = pid else { return false };
    // SAFETY: kill with a pid from the logger's own pid file and a constant signal.
    unsafe { libc::kill(pid, libc::SIGUSR1) == 0 }
}
