//! `crust-shim task-io DIR`: the stdio of a container of a `shim-v2` handler. The containerd
//! shim runs the container with FIFOs for its stdio, as containerd gives every shim; this
//! process holds crust's ends of them, as containerd itself does, but in a process of its own so
//! that it outlives crustd (restarts, `kill -9`). Before the task is created it makes and opens
//! `DIR/stdout`, `DIR/stderr` (not for a terminal, whose output is all on stdout) and `DIR/stdin`
//! (when the container reads stdin), binds the attach socket `DIR/attach.sock` (the protocol of
//! [`crate::attach`]), writes its pid to `DIR/task-io.pid` and says `ok <pid>` on stdout. Then,
//! until the shim closes the outputs (the container exited): both streams go into the CRI log
//! named by `DIR/log-target.json` (same format and symlink rules as crust-shim's own monitor),
//! and to attached clients; what clients send goes to stdin (closed when the first client leaves
//! with `stdin_once`); SIGUSR1 reopens the log (ReopenContainerLog); SIGTERM drains briefly and
//! ends.
//!
//! A FIFO's read end opened before any writer is never "hung up" on Linux until a writer has
//! come and gone, so the outputs can be polled from the start; stdin is held read-write, which
//! never blocks and keeps the shim's reader from seeing EOF while no client is attached.

use std::{
    fs::File,
    io::Write,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::{Path, PathBuf},
    process::exit,
    time::{Duration, Instant},
};

use crate::{
    attach::Attach,
    log::{CriLog, LogTarget},
};

/// The file in DIR naming the log and the streams (written by crustd before it starts us).
pub const TARGET_FILE: &str = "log-target.json";
/// The file in DIR holding our pid (the daemon child's).
pub const PID_FILE: &str = "task-io.pid";
/// The FIFOs in DIR, as the shim is told them.
pub const STDIN: &str = "stdin";
pub const STDOUT: &str = "stdout";
pub const STDERR: &str = "stderr";

/// How long to drain after SIGTERM before giving up on streams that stay open.
const DRAIN: Duration = Duration::from_secs(2);

/// What `log-target.json` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub log: PathBuf,
    /// The pod's log directory, below which no symlink is followed.
    pub root: Option<PathBuf>,
    pub tty: bool,
    pub stdin: bool,
    pub stdin_once: bool,
}

fn esc(p: &Path) -> String {
    let s = p.to_string_lossy();
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

impl Target {
    /// `{"path": "...", "root": "..."|null, "tty": B, "stdin": B, "stdin_once": B}`.
    pub fn to_json(&self) -> String {
        let root = self
            .root
            .as_deref()
            .map_or("null".to_string(), |r| format!("\"{}\"", esc(r)));
        format!(
            "{{\"path\":\"{}\",\"root\":{root},\"tty\":{},\"stdin\":{},\"stdin_once\":{}}}",
            esc(&self.log),
            self.tty,
            self.stdin,
            self.stdin_once
        )
    }

    fn parse(text: &str) -> Result<Target, String> {
        let string = |name: &str| -> Option<String> {
            let key = format!("\"{name}\":\"");
            let start = text.find(&key)? + key.len();
            let mut out = String::new();
            let mut chars = text[start..].chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.push(chars.next()?),
                    '"' => return Some(out),
                    c => out.push(c),
                }
            }
            None
        };
        let flag = |name: &str| text.contains(&format!("\"{name}\":true"));
        let log = string("path").ok_or("log-target.json names no path")?;
        Ok(Target {
            log: PathBuf::from(log),
            root: string("root").map(PathBuf::from),
            tty: flag("tty"),
            stdin: flag("stdin"),
            stdin_once: flag("stdin_once"),
        })
    }

    /// Reads `DIR/log-target.json`.
    pub fn read(dir: &Path) -> Result<Target, String> {
        let file = dir.join(TARGET_FILE);
        let text =
            std::fs::read_to_string(&file).map_err(|e| format!("read {}: {e}", file.display()))?;
        Target::parse(&text)
    }

    fn log_target(&self) -> LogTarget {
        LogTarget {
            path: self.log.clone(),
            root: self.root.clone(),
        }
    }
}

/// Crust's ends of the container's FIFOs.
struct Fifos {
    /// stdout, and stderr unless the container has a terminal.
    outputs: Vec<OwnedFd>,
    stdin: Option<OwnedFd>,
}

fn mkfifo(path: &Path) -> Result<(), String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: NUL in path", path.display()))?;
    let _ = std::fs::remove_file(path);
    // SAFETY: c is a valid C string.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(format!(
            "mkfifo {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn open_fifo(path: &Path, flags: libc::c_int) -> Result<OwnedFd, String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("{}: NUL in path", path.display()))?;
    // SAFETY: c is a valid C string; open returns a new descriptor or -1.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if fd < 0 {
        return Err(format!(
            "open {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: fd was just opened and is ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn make_fifos(dir: &Path, target: &Target) -> Result<Fifos, String> {
    let mut names = vec![STDOUT];
    if !target.tty {
        names.push(STDERR);
    }
    let mut outputs = Vec::new();
    for name in names {
        mkfifo(&dir.join(name))?;
        outputs.push(open_fifo(&dir.join(name), libc::O_RDONLY)?);
    }
    let stdin = match target.stdin {
        true => {
            mkfifo(&dir.join(STDIN))?;
            let fd = open_fifo(&dir.join(STDIN), libc::O_RDWR)?;
            set_blocking(&fd);
            Some(fd)
        }
        false => None,
    };
    Ok(Fifos { outputs, stdin })
}

/// Writes to stdin block (attach clients' input is never dropped).
fn set_blocking(fd: &OwnedFd) {
    // SAFETY: fcntl on our own descriptor.
    unsafe {
        let flags = libc::fcntl(fd.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags & !libc::O_NONBLOCK);
    }
}

/// Entry point for `crust-shim task-io DIR`.
pub fn main(args: &[String]) -> ! {
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("crust-shim task-io: DIR is required");
        exit(2);
    };
    super::daemonize(move |status| serve(&dir, status))
}

/// The daemon child: set up, report on `status`, then copy until the container's output ends.
fn serve(dir: &Path, mut status: File) -> ! {
    let (target, fifos, attach) = match setup(dir) {
        Ok(ready) => ready,
        Err(e) => {
            let _ = writeln!(status, "error {}", e.replace('\n', " "));
            exit(1);
        }
    };
    let log = match CriLog::open(&target.log_target()) {
        Ok(log) => Some(log),
        Err(e) => {
            eprintln!("crust-shim task-io: open {}: {e}", target.log.display());
            None // keep draining the streams so the container never blocks on them
        }
    };
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let _ = std::fs::write(dir.join(PID_FILE), me.to_string());
    let _ = writeln!(status, "ok {me}");
    drop(status);
    super::quiet_stdio();
    let sfd = super::signal_fd();
    let mut io = Io {
        target: target.log_target(),
        log,
        attach,
    };
    io.copy(fifos.outputs, sfd.as_ref().map(|f| f.as_raw_fd()));
    let _ = std::fs::remove_file(dir.join(crate::attach::SOCKET));
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    exit(0)
}

fn setup(dir: &Path) -> Result<(Target, Fifos, Option<Attach>), String> {
    // SAFETY: plain syscall.
    unsafe { libc::setsid() };
    super::block_signals();
    let target = Target::read(dir)?;
    let mut fifos = make_fifos(dir, &target)?;
    let attach = Attach::bind(dir, fifos.stdin.take(), target.stdin_once, None)
        .map_err(|e| format!("attach socket in {}: {e}", dir.display()))?;
    Ok((target, fifos, Some(attach)))
}

/// The running copy: the log, its target (for reopening) and the attach clients.
struct Io {
    target: LogTarget,
    log: Option<CriLog>,
    attach: Option<Attach>,
}

impl Io {
    /// Copies the outputs into the log and to clients until they close (or the drain time after
    /// SIGTERM passed), serving attach clients meanwhile.
    fn copy(&mut self, outputs: Vec<OwnedFd>, sfd: Option<RawFd>) {
        let mut open: Vec<Option<RawFd>> = outputs.iter().map(|f| Some(f.as_raw_fd())).collect();
        let mut partial = vec![Vec::new(); open.len()];
        let mut buf = vec![0u8; 64 * 1024];
        let mut deadline: Option<Instant> = None;
        while open.iter().any(Option::is_some) && deadline.is_none_or(|d| Instant::now() < d) {
            let extra = self.attach.as_ref().map(Attach::fds).unwrap_or_default();
            let mut fds: Vec<libc::pollfd> = open
                .iter()
                .flatten()
                .chain(sfd.iter())
                .chain(extra.iter())
                .map(|&fd| libc::pollfd {
                    fd,
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            // SAFETY: fds is a valid array of pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 200) };
            if n < 0 {
                continue;
            }
            let ready: Vec<RawFd> = fds
                .iter()
                .filter(|p| p.revents != 0)
                .map(|p| p.fd)
                .collect();
            for (stream, slot) in open.iter_mut().enumerate() {
                let Some(fd) = *slot else { continue };
                if ready.contains(&fd)
                    && self
                        .read_into(fd, stream, &mut partial[stream], &mut buf)
                        .is_none()
                {
                    *slot = None;
                }
            }
            if let Some(a) = self.attach.as_mut() {
                a.serve(&ready);
            }
            if sfd.is_some_and(|s| ready.contains(&s)) && self.on_signals(sfd.unwrap_or(-1)) {
                deadline.get_or_insert_with(|| Instant::now() + DRAIN);
            }
        }
        for (stream, rest) in partial.iter_mut().enumerate() {
            if let (false, Some(log)) = (rest.is_empty(), self.log.as_mut()) {
                log.write(stream, 'F', rest);
            }
        }
    }

    /// Reads once from output `stream`; `None` at EOF or on a hard error.
    fn read_into(
        &mut self,
        fd: RawFd,
        stream: usize,
        partial: &mut Vec<u8>,
        buf: &mut [u8],
    ) -> Option<()> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = std::io::Error::last_os_error().kind();
            let again = matches!(
                e,
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock
            );
            return again.then_some(());
        }
        if n == 0 {
            return None;
        }
        let data = &buf[..n as usize];
        if let Some(a) = self.attach.as_mut() {
            a.broadcast(stream, data);
        }
        partial.extend_from_slice(data);
        for (tag, text) in super::split_records(partial) {
            if let Some(log) = self.log.as_mut() {
                log.write(stream, tag, &text);
            }
        }
        Some(())
    }

    /// Handles pending signals; true when one asked us to finish.
    fn on_signals(&mut self, sfd: RawFd) -> bool {
        let mut info = [0u8; 128];
        let mut finish = false;
        // SAFETY: info is 128 bytes, the size of signalfd_siginfo.
        while unsafe { libc::read(sfd, info.as_mut_ptr().cast(), info.len()) }
            == info.len() as isize
        {
            match u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32 {
                libc::SIGUSR1 => match CriLog::open(&self.target) {
                    Ok(fresh) => self.log = Some(fresh),
                    Err(e) => eprintln!("crust-shim task-io: reopen: {e}"),
                },
                libc::SIGTERM | libc::SIGINT | libc::SIGHUP => finish = true,
                _ => {}
            }
        }
        finish
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_target_file_round_trips_odd_paths_and_flags() {
        let t = Target {
            log: PathBuf::from("/var/log/pods/a \"b\"\\c/0.log"),
            root: Some(PathBuf::from("/var/log/pods")),
            tty: true,
            stdin: true,
            stdin_once: false,
        };
        assert_eq!(Target::parse(&t.to_json()).unwrap(), t);
        let t = Target {
            root: None,
            tty: false,
            stdin_once: true,
            ..t
        };
        assert_eq!(Target::parse(&t.to_json()).unwrap(), t);
    }

    #[test]
    fn a_missing_target_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Target::read(dir.path()).is_err());
        std::fs::write(dir.path().join(TARGET_FILE), "{}").unwrap();
        assert!(Target::read(dir.path()).is_err());
    }

    #[test]
    fn output_written_to_the_fifos_reaches_the_log_and_stdin_its_fifo() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("0.log");
        std::fs::write(&log, "").unwrap();
        let t = Target {
            log: log.clone(),
            root: None,
            tty: false,
            stdin: true,
            stdin_once: false,
        };
        let fifos = make_fifos(dir.path(), &t).unwrap();
        // The shim's side: writers for the outputs, a reader of stdin.
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(STDOUT))
            .unwrap();
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(STDERR))
            .unwrap();
        let mut input = File::open(dir.path().join(STDIN)).unwrap();
        out.write_all(b"hello\npartial").unwrap();
        drop((out, err)); // the container exited
        let mut stdin = File::from(fifos.stdin.unwrap());
        stdin.write_all(b"typed").unwrap();
        let mut got = [0u8; 5];
        input.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"typed");
        let mut io = Io {
            target: t.log_target(),
            log: Some(CriLog::open(&t.log_target()).unwrap()),
            attach: None,
        };
        io.copy(fifos.outputs, None);
        let text = std::fs::read_to_string(&log).unwrap();
        let lines: Vec<&str> = text.lines().map(|l| l.split_once(' ').unwrap().1).collect();
        assert_eq!(lines, ["stdout F hello", "stdout F partial"]);
    }
}
