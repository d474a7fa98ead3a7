//! `crust-shim cri-log DIR`: the logging binary a containerd runtime v2 shim runs for a container
//! of a `shim-v2` handler (its stdout URI is `binary:///path/to/crust-shim?cri-log=DIR`). The
//! shim starts it with the container's stdout on fd 3, stderr on fd 4 and a ready pipe on fd 5;
//! it writes both streams into the CRI log named by `DIR/log-target.json` in the same format and
//! with the same symlink rules as crust-shim's own monitor, reopens the log on SIGUSR1
//! (ReopenContainerLog), and exits once both streams closed (the shim closes them when the
//! process exited, then sends SIGTERM and waits). Being the shim's child, it outlives crustd.
//! Its pid is in `DIR/logger.pid` so crustd can signal it.

use std::{
    io::Write,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::{Path, PathBuf},
    process::exit,
    time::{Duration, Instant},
};

use crate::log::{CriLog, LogTarget};

/// The file in DIR naming the log (written by crustd before the task is created).
pub const TARGET_FILE: &str = "log-target.json";
/// The file in DIR holding the logger's pid.
pub const PID_FILE: &str = "logger.pid";

/// How long to drain after SIGTERM before giving up on streams that stay open.
const DRAIN: Duration = Duration::from_secs(2);

/// `{"path": "...", "root": "..."|null}`.
pub fn target_json(target_path: &Path, root: Option<&Path>) -> String {
    let esc = |p: &Path| {
        let s = p.to_string_lossy();
        s.replace('\\', "\\\\").replace('"', "\\\"")
    };
    let root = root.map_or("null".to_string(), |r| format!("\"{}\"", esc(r)));
    format!("{{\"path\":\"{}\",\"root\":{root}}}", esc(target_path))
}

fn read_target(dir: &Path) -> Result<LogTarget, String> {
    let text = std::fs::read_to_string(dir.join(TARGET_FILE))
        .map_err(|e| format!("read {}: {e}", dir.join(TARGET_FILE).display()))?;
    let field = |name: &str| -> Option<String> {
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
    let path = field("path").ok_or("log-target.json names no path")?;
    Ok(LogTarget {
        path: PathBuf::from(path),
        root: field("root").map(PathBuf::from),
    })
}

/// Entry point for `crust-shim cri-log DIR`.
pub fn main(args: &[String]) -> ! {
    let Some(dir) = args.first().map(PathBuf::from) else {
        eprintln!("crust-shim cri-log: DIR is required");
        exit(2);
    };
    let target = read_target(&dir).unwrap_or_else(|e| {
        eprintln!("crust-shim cri-log: {e}");
        exit(1)
    });
    let log = match CriLog::open(&target) {
        Ok(log) => Some(log),
        Err(e) => {
            eprintln!("crust-shim cri-log: open {}: {e}", target.path.display());
            None // keep draining the streams so the container never blocks on them
        }
    };
    // SAFETY: getpid has no preconditions.
    let _ = std::fs::write(dir.join(PID_FILE), unsafe { libc::getpid() }.to_string());
    super::block_signals();
    let sfd = super::signal_fd();
    // SAFETY: fd 5 is the ready pipe the shim gave us; closing it says we are ready.
    drop(unsafe { OwnedFd::from_raw_fd(5) });
    copy(&target, log, sfd.as_ref().map(|f| f.as_raw_fd()));
    let _ = std::fs::remove_file(dir.join(PID_FILE));
    exit(0)
}

/// Copies fds 3 and 4 into the log until both close (or the drain time after SIGTERM passed).
fn copy(target: &LogTarget, mut log: Option<CriLog>, sfd: Option<RawFd>) {
    let mut open = [Some(3), Some(4)];
    let mut partial = [Vec::new(), Vec::new()];
    let mut buf = vec![0u8; 64 * 1024];
    let mut deadline: Option<Instant> = None;
    while open.iter().any(Option::is_some) {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .flatten()
            .chain(sfd.iter())
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
        for pfd in fds.iter().filter(|p| p.revents != 0) {
            if Some(pfd.fd) == sfd {
                if on_signals(pfd.fd, target, &mut log) && deadline.is_none() {
                    deadline = Some(Instant::now() + DRAIN);
                }
                continue;
            }
            let stream = usize::from(pfd.fd == 4);
            if read_into(pfd.fd, stream, &mut partial[stream], &mut log, &mut buf).is_none() {
                open[stream] = None;
            }
        }
    }
    for (stream, rest) in partial.iter_mut().enumerate() {
        if !rest.is_empty() {
            if let Some(log) = log.as_mut() {
                log.write(stream, 'F', rest);
            }
        }
    }
}

/// Reads once; `None` at EOF or on a hard error.
fn read_into(
    fd: RawFd,
    stream: usize,
    partial: &mut Vec<u8>,
    log: &mut Option<CriLog>,
    buf: &mut [u8],
) -> Option<()> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
        return Some(());
    }
    if n <= 0 {
        return None;
    }
    partial.extend_from_slice(&buf[..n as usize]);
    for (tag, text) in super::split_records(partial) {
        if let Some(log) = log.as_mut() {
            log.write(stream, tag, &text);
        }
    }
    Some(())
}

/// Handles pending signals; true when one asked the logger to finish.
fn on_signals(sfd: RawFd, target: &LogTarget, log: &mut Option<CriLog>) -> bool {
    let mut info = [0u8; 128];
    let mut finish = false;
    // SAFETY: info is 128 bytes, the size of signalfd_siginfo.
    while unsafe { libc::read(sfd, info.as_mut_ptr().cast(), info.len()) } == info.len() as isize {
        match u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32 {
            libc::SIGUSR1 => match CriLog::open(target) {
                Ok(fresh) => *log = Some(fresh),
                Err(e) => {
                    let _ = writeln!(std::io::stderr(), "crust-shim cri-log: reopen: {e}");
                }
            },
            libc::SIGTERM | libc::SIGINT | libc::SIGHUP => finish = true,
            _ => {}
        }
    }
    finish
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    #[test]
    fn the_target_file_round_trips_odd_paths() {
        let dir = tempfile::tempdir().unwrap();
        let path = Path::new("/var/log/pods/a \"b\"\\c/0.log");
        std::fs::write(
            dir.path().join(TARGET_FILE),
            target_json(path, Some(Path::new("/var/log/pods"))),
        )
        .unwrap();
        let t = read_target(dir.path()).unwrap();
        assert_eq!(t.path, path);
        assert_eq!(t.root.as_deref(), Some(Path::new("/var/log/pods")));
        std::fs::write(dir.path().join(TARGET_FILE), target_json(path, None)).unwrap();
        assert!(read_target(dir.path()).unwrap().root.is_none());
    }

    #[test]
    fn a_missing_target_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_target(dir.path()).is_err());
        let _ = File::create(dir.path().join(TARGET_FILE));
        assert!(read_target(dir.path()).is_err());
    }
}
