//! Process exit monitoring: pidfds, or what the runtime reports.
//!
//! [`Process::open`] pins a pid with `pidfd_open` (checking its start time, so a recycled pid is
//! never mistaken for ours); [`Process::watch`] spawns one task that waits for the pidfd to become
//! readable (the process exited) and flips a watch channel. Signals go through `pidfd_send_signal`,
//! which cannot hit a recycled pid. A task of a runtime that reports its exits itself (a shim v2:
//! Wait; a VM runtime's pids are not the host's) is watched by [`ExitWatch::reported`] instead,
//! with no pid behind it.

use std::{
    future::Future,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::Arc,
    time::Duration,
};

use tokio::{io::unix::AsyncFd, sync::watch};

/// A live process pinned by a pidfd.
#[derive(Debug)]
pub struct Process {
    pid: i32,
    start_time: u64,
    fd: AsyncFd<OwnedFd>,
}

impl Process {
    /// Pins `pid`; `Ok(None)` when it is gone or (with `expected_start`) is another process now.
    pub fn open(pid: i32, expected_start: Option<u64>) -> io::Result<Option<Process>> {
        // SAFETY: plain syscall with integer arguments; the returned fd is owned below.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            let err = io::Error::last_os_error();
            return match err.raw_os_error() {
                Some(libc::ESRCH) => Ok(None),
                _ => Err(err),
            };
        }
        // SAFETY: `raw` is a fresh fd returned by pidfd_open that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw as i32) };
        if already_exited(&fd)? {
            return Ok(None); // a zombie nobody has reaped yet is gone for our purposes
        }
        let Some(start_time) = start_time(pid)? else {
            return Ok(None);
        };
        if expected_start.is_some_and(|s| s != start_time) {
            return Ok(None);
        }
        Ok(Some(Process {
            pid,
            start_time,
            // SAFETY: `fd` is an OwnedFd moved into the AsyncFd, which keeps it open and unchanged
            // for its whole lifetime.
            fd: unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(io::Error::from)?,
        }))
    }

    /// The pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The start time (clock ticks after boot, from /proc/PID/stat), the identity used on restart.
    pub fn start_time(&self) -> u64 {
        self.start_time
    }

    /// Sends `signal` through the pidfd (ESRCH, already exited, counts as success).
    pub fn signal(&self, signal: i32) -> io::Result<()> {
        // SAFETY: plain syscall on an fd we own; null siginfo is allowed.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                signal,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::ESRCH) {
                return Err(err);
            }
        }
        Ok(())
    }

    /// Waits until the process has exited.
    pub async fn exited(&self) -> io::Result<()> {
        let _guard = self.fd.readable().await?;
        Ok(())
    }

    /// Spawns the watcher task; the returned [`ExitWatch`] turns true once the process exited.
    pub fn watch(self) -> ExitWatch {
        let process = Arc::new(self);
        let watched = process.clone();
        ExitWatch::spawn(Some(process), async move {
            if let Err(e) = watched.exited().await {
                tracing::warn!(pid = watched.pid, error = %e, "pidfd wait failed");
            }
        })
    }
}

/// A watched process or task: signal it (a process), ask whether it exited, wait for the exit.
#[derive(Debug, Clone)]
pub struct ExitWatch {
    process: Option<Arc<Process>>,
    rx: watch::Receiver<bool>,
}

impl ExitWatch {
    /// A task whose runtime reports the exit: true once `exited` resolves.
    pub fn reported(exited: impl Future<Output = ()> + Send + 'static) -> ExitWatch {
        Self::spawn(None, exited)
    }

    /// The watch on a task: its runtime's report of the exit when it makes one (`reported`),
    /// else the pidfd on `process`; `None` when neither is there (the process is gone).
    pub fn of(
        reported: Option<futures_util::future::BoxFuture<'static, ()>>,
        process: Option<Process>,
    ) -> Option<ExitWatch> {
        match reported {
            Some(exited) => Some(Self::reported(exited)),
            None => process.map(Process::watch),
        }
    }

    fn spawn(
        process: Option<Arc<Process>>,
        exited: impl Future<Output = ()> + Send + 'static,
    ) -> ExitWatch {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            exited.await;
            let _ = tx.send(true);
        });
        ExitWatch { process, rx }
    }

    /// The watched process (none for a task its runtime reports on).
    pub fn process(&self) -> Option<&Process> {
        self.process.as_deref()
    }

    /// True once the exit was observed.
    pub fn has_exited(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits for the exit; false on timeout.
    pub async fn wait(&self, timeout: Duration) -> bool {
        let mut rx = self.rx.clone();
        let result = tokio::time::timeout(timeout, rx.wait_for(|exited| *exited)).await;
        matches!(result, Ok(Ok(_)))
    }

    /// A receiver that turns true on exit (for a task that reacts to it).
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.rx.clone()
    }
}

/// True when the pidfd is already readable (the process has terminated).
fn already_exited(fd: &OwnedFd) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, zero timeout.
    let n = unsafe { libc::poll(&mut pfd, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(n > 0 && pfd.revents & libc::POLLIN != 0)
}

/// Field 22 of /proc/PID/stat; `None` when the process is gone.
pub fn start_time(pid: i32) -> io::Result<Option<u64>> {
    let stat = match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    // The command name (field 2) may hold spaces and parens: count fields after the last ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let field = after.split_whitespace().nth(19);
    field
        .and_then(|f| f.parse().ok())
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed /proc/PID/stat"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notices_exit_and_signals_by_pidfd() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let proc_ = Process::open(pid, None).unwrap().unwrap();
        assert!(Process::open(pid, Some(proc_.start_time() + 1))
            .unwrap()
            .is_none());
        let w = proc_.watch();
        assert!(!w.wait(Duration::from_millis(50)).await);
        w.process().unwrap().signal(libc::SIGKILL).unwrap();
        // The pidfd turns readable when the child becomes a zombie, before it is reaped.
        assert!(w.wait(Duration::from_secs(5)).await);
        assert!(w.has_exited());
        assert!(
            Process::open(pid, None).unwrap().is_none(),
            "a zombie counts as gone"
        );
        child.wait().unwrap();
        w.process().unwrap().signal(libc::SIGKILL).unwrap();
        assert!(Process::open(pid, None).unwrap().is_none());
    }

    #[tokio::test]
    async fn a_reported_exit_turns_the_watch() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let w = ExitWatch::reported(async move {
            let _ = rx.await;
        });
        assert!(w.process().is_none());
        assert!(!w.wait(Duration::from_millis(50)).await);
        tx.send(()).unwrap();
        assert!(w.wait(Duration::from_secs(5)).await);
    }
}
