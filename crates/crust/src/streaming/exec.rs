//! The process side of a streaming Exec: `runc exec --process` in the container (its own process
//! spec: user, capabilities, env, cwd; [`crate::oci_runtime::exec_process`]), with pipes, or with a terminal whose
//! master runc hands over on a console socket. The exec'd process's pid comes from runc's pid
//! file, so a session that ends early can SIGKILL the process itself (killing `runc exec` alone
//! would orphan it), as kubelet's server does when the stream breaks. For a container of a
//! shim-v2 handler the shim runs the exec instead ([`crate::oci_runtime::shim_v2::stream`]: its
//! FIFOs, ResizePty, CloseIO, Kill, Wait).

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    process::Stdio,
};

use tokio::io::{AsyncRead, AsyncWrite};

use super::{remotecommand::Size, ExecTarget, Io};
use crate::oci_runtime::{
    exec_process::ExecFiles,
    shim_v2::stream::{ExecControl, ExecStreams},
};

/// A boxed reader or writer of the process's streams.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A running exec.
pub struct Process {
    pub stdin: Option<Writer>,
    pub stdout: Option<Reader>,
    pub stderr: Option<Reader>,
    backend: Backend,
}

/// Who runs the exec'd process.
enum Backend {
    /// `runc exec` (or crust-shim exec-tty around it), a child of crustd.
    Cli {
        pty: Option<OwnedFd>,
        child: Box<tokio::process::Child>,
        /// The process spec and pid file, removed with the process.
        files: ExecFiles,
        /// The child is `crust-shim exec-tty`, which prints the exit code.
        helper: bool,
    },
    /// The runtime's shim (shim-v2 Exec).
    Task(ExecControl),
}

fn err(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Receives the terminal master the exec-tty helper passes on. Blocking.
fn recv_master(sock: std::os::unix::net::UnixStream) -> Result<OwnedFd, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("console socket: {e}"))?;
    for cmsg in msg.cmsgs().map_err(|e| format!("console socket: {e}"))? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    Err("the exec helper sent no terminal".into())
}

fn async_file(fd: OwnedFd) -> tokio::fs::File {
    tokio::fs::File::from_std(std::fs::File::from(fd))
}

impl Process {
    /// Starts `cmd` in the target container with the streams `io` asks for.
    pub async fn spawn(target: &ExecTarget, cmd: &[String], io: Io) -> Result<Process, String> {
        if let Some(runtime) = &target.task {
            return Self::spawn_task(runtime.as_ref(), &target.container_id, cmd, io).await;
        }
        let files = ExecFiles::write(&target.scratch, cmd, io.tty).map_err(|e| e.to_string())?;
        if io.tty {
            Self::spawn_tty(target, files).await
        } else {
            Self::spawn_pipes(target, io, files)
        }
    }

    /// The exec through the runtime's shim, on its FIFOs.
    async fn spawn_task(
        runtime: &dyn crate::oci_runtime::OciRuntime,
        id: &str,
        cmd: &[String],
        io: Io,
    ) -> Result<Process, String> {
        let streams = ExecStreams {
            stdin: io.stdin,
            stdout: io.stdout,
            stderr: io.stderr,
            tty: io.tty,
        };
        let exec = match runtime.exec_stream(id, cmd, streams).await {
            Some(started) => started.map_err(|e| e.to_string())?,
            None => return Err("the runtime runs no execs itself".into()),
        };
        Ok(Process {
            stdin: exec.stdin.map(|w| Box::new(w) as Writer),
            stdout: exec.stdout.map(|r| Box::new(r) as Reader),
            stderr: exec.stderr.map(|r| Box::new(r) as Reader),
            backend: Backend::Task(exec.control),
        })
    }

    fn spawn_pipes(target: &ExecTarget, io: Io, files: ExecFiles) -> Result<Process, String> {
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let mut child = files
            .command(&target.runtime, &target.container_id)
            .stdin(pipe(io.stdin))
            .stdout(pipe(io.stdout))
            .stderr(pipe(io.stderr))
            .spawn()
            .map_err(err("run runc exec"))?;
        Ok(Process {
            stdin: child.stdin.take().map(|w| Box::new(w) as Writer),
            stdout: child.stdout.take().map(|r| Box::new(r) as Reader),
            stderr: child.stderr.take().map(|r| Box::new(r) as Reader),
            backend: Backend::Cli {
                pty: None,
                child: Box::new(child),
                files,
                helper: false,
            },
        })
    }

    /// A terminal: `crust-shim exec-tty` runs `runc exec -d --tty`, hands the terminal's master
    /// back over a socket pair (descriptor 3) and prints the exit code when the process ends.
    async fn spawn_tty(target: &ExecTarget, files: ExecFiles) -> Result<Process, String> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().map_err(err("socket pair"))?;
        let fd = theirs.as_raw_fd();
        let mut command = tokio::process::Command::new(&target.shim);
        command
            .arg("exec-tty")
            .args(target.runtime.shim_flags())
            .arg("--id")
            .arg(&target.container_id)
            .arg("--pid-file")
            .arg(&files.pid)
            .arg("--process")
            .arg(&files.process)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        // SAFETY: dup2 is async-signal-safe; the helper finds the socket as descriptor 3.
        unsafe {
            command.pre_exec(move || {
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(err("run crust-shim exec-tty"))?;
        drop(theirs);
        let master = tokio::task::spawn_blocking(move || recv_master(ours))
            .await
            .map_err(|e| e.to_string())?;
        let master = match master {
            Ok(m) => m,
            Err(e) => {
                let report = helper_report(&mut child).await;
                return Err(report.err().unwrap_or(e));
            }
        };
        let reader = master.try_clone().map_err(err("dup terminal"))?;
        let writer = master.try_clone().map_err(err("dup terminal"))?;
        Ok(Process {
            stdin: Some(Box::new(async_file(writer))),
            stdout: Some(Box::new(async_file(reader))),
            stderr: None,
            backend: Backend::Cli {
                pty: Some(master),
                child: Box::new(child),
                files,
                helper: true,
            },
        })
    }

    /// A handle that resizes the terminal (none without one).
    pub fn resizer(&self) -> Option<Resizer> {
        match &self.backend {
            Backend::Cli { pty, .. } => pty.as_ref()?.try_clone().ok().map(Resizer::Pty),
            Backend::Task(control) => Some(Resizer::Task(control.clone())),
        }
    }

    /// What ends stdin once the session's stdin ended and the writer was shut down: nothing more
    /// for a pipe; CloseIO for a shim, which holds the FIFO open itself.
    pub fn stdin_closer(&self) -> Option<ExecControl> {
        match &self.backend {
            Backend::Cli { .. } => None,
            Backend::Task(control) => Some(control.clone()),
        }
    }

    /// Waits for the process; its exit code (128 + signal when killed).
    pub async fn wait(&mut self) -> Result<i32, String> {
        let (child, helper) = match &mut self.backend {
            Backend::Task(control) => return control.wait().await.map_err(|e| e.to_string()),
            Backend::Cli { child, helper, .. } => (child, *helper),
        };
        if helper {
            return helper_report(child).await;
        }
        let status = child.wait().await.map_err(err("wait for runc exec"))?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(255))
    }

    /// SIGKILLs the exec'd process (through runc's pid file, then runc exec; or the shim).
    pub async fn kill(&mut self) {
        match &mut self.backend {
            Backend::Cli { child, files, .. } => {
                crate::container::exec::kill_exec(&files.pid);
                let _ = child.start_kill();
            }
            Backend::Task(control) => control.kill().await,
        }
    }
}

/// What `crust-shim exec-tty` printed: `exit <code>` or `error <message>`.
async fn helper_report(child: &mut tokio::process::Child) -> Result<i32, String> {
    use tokio::io::AsyncReadExt as _;
    let mut text = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut text).await;
    }
    let _ = child.wait().await;
    let line = text.trim();
    match line.strip_prefix("exit ") {
        Some(code) => code
            .parse()
            .map_err(|_| format!("exec helper said {line:?}")),
        None => Err(line.strip_prefix("error ").unwrap_or(line).to_string()),
    }
}

/// Resizes a terminal: through its master, or by asking the shim that holds it.
pub enum Resizer {
    Pty(OwnedFd),
    Task(ExecControl),
}

impl Resizer {
    pub async fn resize(&self, size: Size) {
        let fd = match self {
            Resizer::Task(control) => return control.resize(size.width, size.height).await,
            Resizer::Pty(fd) => fd,
        };
        let ws = libc::winsize {
            ws_row: size.height,
            ws_col: size.width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer on our open terminal.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}
