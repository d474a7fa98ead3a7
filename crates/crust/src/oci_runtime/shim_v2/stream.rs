//! Streaming Exec (kubectl exec) through the shim: Exec with FIFOs in a scratch dir of the task
//! bundle, Start, then the session's streams on crustd's ends of the FIFOs, ResizePty for a
//! terminal, CloseIO when the client's stdin ends, Kill when the client leaves, and Wait for the
//! exit code; the exec is deleted from the shim and its FIFOs removed once it is over (also when
//! the session is dropped early).
//!
//! FIFO ends: outputs as in ExecSync ([`super::exec`]: a read end opened before the shim's writer
//! and a holder dropped once Start returned). The shim opens both its ends of stdin (a reader
//! that copies to the process, and a writer of its own so that the reader never sees EOF while
//! its client is away) asynchronously, after Start has returned; crustd's writer is therefore a
//! plain `O_WRONLY` open, which completes only once the shim's reader is there (as containerd's
//! own client does). An end that could be closed before the shim's reader opened (an `O_RDWR`
//! one) loses what was written: a FIFO's buffer goes with its last open end. The end of stdin is
//! our end closed, then CloseIO for the shim's writer.

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
        .then(|| StdinOpen::begin(path("stdin")))
        .transpose()?;
    let name = |on: bool, file: &str| match on {
        true => path(file).to_string_lossy().into_owned(),
        false => String::new(),
    };
    let spec = crate::oci_runtime::exec_process::spec(&rt.task_dir(&h.id), cmd, streams.tty)?;
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
    let started = async {
        h.conn.shim.exec(&req).await?;
        h.conn.shim.start(&h.id, &h.exec_id).await
    };
    let stdin = match (started.await, stdin) {
        (Ok(_), Some(open)) => Some(open.finish().await?),
        (Ok(_), None) => None,
        (Err(e), open) => {
            if let Some(open) = open {
                open.abandon().await;
            }
            return Err(e.into());
        }
    };
    let (stdout, stderr) = (out.map(|f| f.reader), err.map(|f| f.reader));
    Ok(TaskExec {
        stdin,
        stdout,
        stderr,
        control,
    })
}

/// How long the shim may take to open its reader of stdin once Start has returned.
const STDIN_OPEN: std::time::Duration = std::time::Duration::from_secs(10);

/// crustd's writer of an exec's stdin FIFO, being opened: a blocking `O_WRONLY` open on a
/// blocking thread, which returns once the shim's reader is open.
struct StdinOpen {
    path: PathBuf,
    open: tokio::task::JoinHandle<std::io::Result<std::fs::File>>,
}

impl StdinOpen {
    /// Makes the FIFO and starts the open.
    fn begin(path: PathBuf) -> Result<Self, OciError> {
        super::exec::mkfifo(&path)?;
        let at = path.clone();
        let open =
            tokio::task::spawn_blocking(move || std::fs::OpenOptions::new().write(true).open(at));
        Ok(StdinOpen { path, open })
    }

    /// The writer, once the shim's reader is open (bounded by [`STDIN_OPEN`]).
    async fn finish(mut self) -> Result<pipe::Sender, OciError> {
        let opened = match tokio::time::timeout(STDIN_OPEN, &mut self.open).await {
            Ok(joined) => joined.map_err(std::io::Error::other).and_then(|r| r),
            Err(_) => {
                let path = self.path.clone();
                self.abandon().await;
                let e = std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the shim never opened its end of stdin",
                );
                return Err(io_err("open", &path)(e));
            }
        };
        opened
            .and_then(pipe::Sender::from_file)
            .map_err(io_err("open", &self.path))
    }

    /// Ends an open that no shim will answer: a reader of our own lets it return.
    async fn abandon(self) {
        let reader = pipe::OpenOptions::new().open_receiver(&self.path);
        let _ = self.open.await;
        drop(reader);
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use tokio::io::AsyncWriteExt as _;

    use super::*;

    /// The shim's side as containerd's fifo package has it: its reader opened on a goroutine of
    /// its own, here after crustd has already written and closed.
    #[tokio::test]
    async fn stdin_written_before_the_shims_reader_opens_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stdin");
        let open = StdinOpen::begin(path.clone()).unwrap();
        let shim = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            // Non-blocking so that a FIFO nobody writes to reads as EOF instead of hanging.
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(path)
                .unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
            nix::fcntl::fcntl(fd, nix::fcntl::F_SETFL(nix::fcntl::OFlag::empty())).unwrap();
            let mut read = String::new();
            f.read_to_string(&mut read).unwrap();
            read
        });
        let mut w = open.finish().await.unwrap();
        w.write_all(b"typed early\n").await.unwrap();
        drop(w);
        assert_eq!(shim.join().unwrap(), "typed early\n");
    }

    /// An exec that failed before the shim opened anything leaves no open waiting.
    #[tokio::test]
    async fn an_abandoned_open_returns() {
        let dir = tempfile::tempdir().unwrap();
        let open = StdinOpen::begin(dir.path().join("stdin")).unwrap();
        let abandoned = tokio::time::timeout(std::time::Duration::from_secs(5), open.abandon());
        abandoned.await.unwrap();
    }
}
