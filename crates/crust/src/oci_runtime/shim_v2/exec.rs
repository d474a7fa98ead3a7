//! ExecSync through the shim: a [`super::stream`] exec of the container's own process spec
//! (env, user, capabilities) with the new argv and the two outputs, read capped as the CLI path
//! caps them, killed after the timeout; and the FIFO helpers both use.
//!
//! An output FIFO is read from an `O_RDONLY | O_NONBLOCK` end opened before the shim opens its
//! writer; a second read-write end keeps that first read from seeing EOF before the shim has
//! connected, and is dropped once Start returned (the shim then holds its writer), so EOF comes
//! exactly when the shim has copied everything and closed.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use super::{io_err, stream::ExecStreams, ShimV2Runtime};
use crate::{
    container::exec::{read_capped, ExecOutput, MAX_OUTPUT},
    oci_runtime::OciError,
};

/// One output FIFO: the end read, and the end that holds it open until the shim connects.
pub(super) struct Fifo {
    pub(super) reader: tokio::net::unix::pipe::Receiver,
    /// Dropped with the Fifo once Start returned.
    _holder: std::fs::File,
}

pub(super) fn make_fifo(path: &Path) -> Result<Fifo, OciError> {
    mkfifo(path)?;
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    let reader = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(io_err("open", path))?;
    Ok(Fifo {
        reader,
        _holder: holder,
    })
}

/// Makes a FIFO at `path` (mode 0600).
pub(super) fn mkfifo(path: &Path) -> Result<(), OciError> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| {
        OciError::Io {
            what: "make the FIFO",
            path: path.to_path_buf(),
            source: e.into(),
        }
    })
}

/// A fresh exec id for task `id` and its scratch dir (made) in the task bundle.
pub(super) fn new_exec(rt: &ShimV2Runtime, id: &str) -> Result<(String, PathBuf), OciError> {
    let exec_id = format!("exec-{}", &crate::store::id::new_id()[..16]);
    let scratch = rt.task_dir(id).join(&exec_id);
    std::fs::create_dir_all(&scratch).map_err(io_err("create", &scratch))?;
    Ok((exec_id, scratch))
}

/// Runs `cmd` in task `id` (a streaming exec with the two outputs, read capped); `timeout`
/// zero = none.
pub(super) async fn exec_sync(
    rt: &ShimV2Runtime,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<ExecOutput, OciError> {
    let streams = ExecStreams {
        stdin: false,
        stdout: true,
        stderr: true,
        tty: false,
    };
    let exec = super::stream::exec(rt, id, cmd, streams).await?;
    let stdout = exec
        .stdout
        .map(|r| tokio::spawn(read_capped(r, MAX_OUTPUT)));
    let stderr = exec
        .stderr
        .map(|r| tokio::spawn(read_capped(r, MAX_OUTPUT)));
    let control = exec.control;
    let mut timed_out = false;
    let status = if timeout.is_zero() {
        control.wait().await?
    } else {
        match tokio::time::timeout(timeout, control.wait()).await {
            Ok(status) => status?,
            Err(_) => {
                timed_out = true;
                control.kill().await;
                control.wait().await?
            }
        }
    };
    let output = |task: Option<tokio::task::JoinHandle<Vec<u8>>>| async move {
        match task {
            Some(t) => t.await.unwrap_or_default(),
            None => Vec::new(),
        }
    };
    Ok(ExecOutput {
        stdout: output(stdout).await,
        stderr: output(stderr).await,
        exit_code: status,
        timed_out,
    })
}
