//! Streaming Exec (kubectl exec) through the shim: Exec with FIFOs in a scratch dir of the task
//! bundle, Start, then the session's streams on crustd's ends of the FIFOs, ResizePty for a
//! terminal, CloseIO when the client's stdin ends, Kill when the client leaves, and Wait for the
//! exit code; the exec is deleted from the shim and its FIFOs removed once it is over (also when
//! the session is dropped early).
//!
//! FIFO ends: outputs as in ExecSync ([`super::exec`]: a read end opened before the shim's writer
//! and a holder dropped once Start returned). crustd writes stdin through an `O_RDWR` end, which
//! never blocks; the shim holds a writer of its own so that its reader never sees EOF while its
//! client is away, which is why the end of stdin is CloseIO (after our end is closed, so what
//! was written is still read).

use std::{path::PathBuf, sync::Arc};

use shim_v2::api;
use tokio::net::unix::pipe;

use super::{exec::make_fifo, io_err, Conn, ShimV2Runtime};
use crate::oci_runtime::OciError;

/// The streams an exec is started with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecStreams {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// A started exec: crustd's ends of its FIFOs and the handle that controls it.
pub struct TaskExec {
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
    pub control: ExecControl,
}

/// Wait, kill, resize and stdin's end of one exec; cloneable. When the last clone goes, the exec
/// is deleted from the shim and its scratch dir removed.
#[derive(Clone)]
pub struct ExecControl(Arc<Handle>);

struct Handle {
    conn: Arc<Conn>,
    id: String,
    exec_id: String,
    scratch: PathBuf,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let (conn, id, exec_id) = (self.conn.clone(), self.id.clone(), self.exec_id.clone());
        let scratch = std::mem::take(&mut self.scratch);
        let cleanup = async move {
            let _ = conn
                .shim
                .kill(&id, &exec_id, libc::SIGKILL as u32, false)
                .await;
            let _ = conn.shim.delete(&id, &exec_id).await;
            let _ = tokio::fs::remove_dir_all(&scratch).await;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn(cleanup)),
            Err(_) => drop(std::fs::remove_dir_all(&self.scratch)),
        }
    }
}

impl ExecControl {
    /// Waits for the exec to exit: its exit status.
    pub async fn wait(&self) -> Result<i32, OciError> {
        let h = &self.0;
        Ok(h.conn.shim.wait(&h.id, &h.exec_id).await? as i32)
    }

    /// SIGKILLs the exec'd process.
    pub async fn kill(&self) {
        let h = &self.0;
        if let Err(e) = h
            .conn
            .shim
            .kill(&h.id, &h.exec_id, libc::SIGKILL as u32, false)
            .await
        {
            tracing::debug!(id = %h.id, exec_id = %h.exec_id, error = %e, "kill of the exec");
        }
    }

    /// Sets the exec's terminal size.
    pub async fn resize(&self, width: u16, height: u16) {
        let h = &self.0;
        let (w, hh) = (u32::from(width), u32::from(height));
        if let Err(e) = h.conn.shim.resize_pty(&h.id, &h.exec_id, w, hh).await {
            tracing::debug!(id = %h.id, exec_id = %h.exec_id, error = %e, "resize of the exec's terminal");
        }
    }

    /// Ends the exec's stdin (call once crustd's end of the FIFO is closed).
    pub async fn close_stdin(&self) {
        let h = &self.0;
        if let Err(e) = h.conn.shim.close_stdin(&h.id, &h.exec_id).await {
            tracing::debug!(id = %h.id, exec_id = %h.exec_id, error = %e, "CloseIO of the exec");
        }
    }
}

/// Starts `cmd` in task `id` with `streams`.
pub(super) async fn exec(
    rt: &ShimV2Runtime,
    id: &str,
    cmd: &[String],
    streams: ExecStreams,
) -> Result<TaskExec, OciError> {
    let conn = rt.conn_for(id).await?;
    let (exec_id, scratch) = super::exec::new_exec(rt, id)?;
    let control = ExecControl(Arc::new(Handle {
        conn,
        id: id.to_string(),
        exec_id,
        scratch,
    }));
    start(rt, control, cmd, streams).await
}

async fn start(
    rt: &ShimV2Runtime,
    control: ExecControl,
    cmd: &[String],
    streams: ExecStreams,
) -> Result<TaskExec, OciError> {
    let h = &control.0;
    let path = |name: &str| h.scratch.join(name);
    let out = streams
        .stdout
        .then(|| make_fifo(&path("stdout")))
        .transpose()?;
    let err = (streams.stderr && !streams.tty)
        .then(|| make_fifo(&path("stderr")))
        .transpose()?;
    let stdin = streams
        .stdin
        .then(|| stdin_fifo(&path("stdin")))
        .transpose()?;
    let name = |on: bool, file: &str| match on {
        true => path(file).to_string_lossy().into_owned(),
        false => String::new(),
    };
    let spec = super::exec::process_spec(&rt.task_dir(&h.id), cmd, streams.tty)?;
    let req = api::ExecProcessRequest {
        id: h.id.clone(),
        exec_id: h.exec_id.clone(),
        terminal: streams.tty,
        stdin: name(stdin.is_some(), "stdin"),
        stdout: name(out.is_some(), "stdout"),
        stderr: name(err.is_some(), "stderr"),
        spec: Some(shim_v2::process_spec(&spec)).into(),
        ..Default::default()
    };
    h.conn.shim.exec(&req).await?;
    h.conn.shim.start(&h.id, &h.exec_id).await?;
    let (stdout, stderr) = (out.map(|f| f.reader), err.map(|f| f.reader));
    Ok(TaskExec {
        stdin,
        stdout,
        stderr,
        control,
    })
}

/// Makes the stdin FIFO and opens crustd's end read-write (it never blocks on the shim).
fn stdin_fifo(path: &std::path::Path) -> Result<pipe::Sender, OciError> {
    super::exec::mkfifo(path)?;
    pipe::OpenOptions::new()
        .read_write(true)
        .open_sender(path)
        .map_err(io_err("open", path))
}
