//! ExecSync: `runc exec --process` in a running container (its own process spec: env, user,
//! capabilities; see [`crate::oci_runtime::exec_process`]),
//! output captured up to a cap per stream (the rest is read and dropped so the process never
//! blocks on a full pipe), a timeout after which the exec'd process itself is killed (through its
//! pid file: killing `runc exec` alone would orphan it), and the exit code returned.

use std::{path::Path, process::Stdio, time::Duration};

use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::ContainerError;
use crate::oci_runtime::{exec_process::ExecFiles, RuntimeCli};

/// Most bytes kept per stream (kubelet's limit).
pub const MAX_OUTPUT: usize = 16 << 20;

/// What an exec produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit_code: i32,
    pub timed_out: bool,
}

/// Reads all of `r`, keeping at most `cap` bytes.
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(mut r: R, cap: usize) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}

/// Runs `cmd` in container `id` with `runtime`; `timeout` zero = none.
pub async fn exec_sync(
    runtime: &RuntimeCli,
    id: &str,
    cmd: &[String],
    timeout: Duration,
    scratch: &Path,
) -> Result<ExecOutput, ContainerError> {
    let files = ExecFiles::write(scratch, cmd, false)?;
    let mut child = files
        .command(runtime, id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ContainerError::Io {
            what: "run",
            path: runtime.binary.clone(),
            source,
        })?;
    let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(ContainerError::Task("exec output is not piped".into()));
    };
    let stdout = tokio::spawn(read_capped(out, MAX_OUTPUT));
    let stderr = tokio::spawn(read_capped(err, MAX_OUTPUT));
    let mut timed_out = false;
    let status = if timeout.is_zero() {
        child.wait().await
    } else {
        match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                timed_out = true;
                kill_exec(&files.pid);
                child.wait().await
            }
        }
    };
    drop(files);
    let status = status.map_err(|source| ContainerError::Io {
        what: "wait for",
        path: runtime.binary.clone(),
        source,
    })?;
    let exit_code = status.code().unwrap_or(255);
    Ok(ExecOutput {
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
        exit_code,
        timed_out,
    })
}

/// SIGKILLs the exec'd process named in `pid_file` (runc then exits with it).
pub fn kill_exec(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok());
    if let Some(pid) = pid.filter(|p| *p > 0) {
        // SAFETY: kill with a pid we read and a constant signal.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn caps_but_drains() {
        let data = vec![7u8; 300_000];
        let kept = read_capped(&data[..], 100_000).await;
        assert_eq!(kept.len(), 100_000);
        let kept = read_capped(&data[..10], 100_000).await;
        assert_eq!(kept.len(), 10);
    }
}
