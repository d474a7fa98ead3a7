//! The attach socket, `<bundle>/attach.sock`. It is bound through `/proc/self/fd/<dir fd>/`, so a
//! long bundle path still fits a socket address; clients connect the same way. Every client gets
//! the container's output from the moment it connects, as frames
//! `[stream: u8 (1 stdout, 2 stderr)][length: u32 big endian][bytes]`; what a client sends goes to
//! the container's stdin when it was created with one (with stdin_once, stdin closes when the
//! first client leaves, as CRI's `stdin_once` says). A client that cannot keep up (100 ms write
//! timeout) is dropped; the container never waits for it.

use std::{
    fs::File,
    io::{Read, Write},
    os::{
        fd::{AsRawFd, OwnedFd, RawFd},
        unix::net::{UnixListener, UnixStream},
    },
    path::Path,
    time::Duration,
};

/// Name of the socket inside the bundle.
pub const SOCKET: &str = "attach.sock";
/// The tty container's resize socket: clients send `{"Width":W,"Height":H}` objects, the shim
/// sets the terminal's size.
pub const RESIZE_SOCKET: &str = "resize.sock";

/// The listener, its clients and the container's stdin.
pub struct Attach {
    listener: UnixListener,
    clients: Vec<UnixStream>,
    stdin: Option<File>,
    stdin_once: bool,
    resize: Option<Resize>,
}

/// The resize socket of a tty container: its listener, clients (with unparsed bytes) and the
/// terminal.
struct Resize {
    listener: UnixListener,
    clients: Vec<(UnixStream, Vec<u8>)>,
    pty: File,
}

/// The number after `"key":` in `text`.
fn number_after(text: &str, key: &str) -> Option<u16> {
    let at = text.find(key)? + key.len();
    let rest = text[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Takes the complete `{...}` objects out of `pending` as (width, height).
pub fn sizes(pending: &mut Vec<u8>) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    while let Some(end) = pending.iter().position(|b| *b == b'}') {
        let object: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&object);
        if let (Some(w), Some(h)) = (
            number_after(&text, "\"Width\""),
            number_after(&text, "\"Height\""),
        ) {
            out.push((w, h));
        }
    }
    if pending.len() > 4096 {
        pending.clear(); // not a size: drop it rather than grow
    }
    out
}

fn set_size(pty: &File, (width, height): (u16, u16)) {
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer on our open terminal.
    unsafe { libc::ioctl(pty.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
}

/// `/proc/self/fd/<fd of dir>/<name>`: a short path to a file in `dir`, valid while `dir_fd` is open.
pub fn short_path(dir_fd: &File, name: &str) -> String {
    format!("/proc/self/fd/{}/{name}", dir_fd.as_raw_fd())
}

/// Connects to the attach socket at `path` (through `/proc/self/fd`, so any path length works).
pub fn connect(path: &Path) -> std::io::Result<UnixStream> {
    let dir = File::open(path.parent().unwrap_or(Path::new("/")))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    UnixStream::connect(short_path(&dir, &name))
}

/// Reads one output frame: `(stream, bytes)` with stream 1 = stdout, 2 = stderr; `None` at EOF.
pub fn read_frame(r: &mut impl Read) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; 5];
    match r.read_exact(&mut header) {
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        other => other?,
    }
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut data = vec![0u8; len];
    r.read_exact(&mut data)?;
    Ok(Some((header[0], data)))
}

impl Attach {
    /// Binds `<bundle>/attach.sock` (replacing a stale one), and `<bundle>/resize.sock` for a
    /// tty container (`pty`).
    pub fn bind(
        bundle: &Path,
        stdin: Option<OwnedFd>,
        stdin_once: bool,
        pty: Option<OwnedFd>,
    ) -> std::io::Result<Attach> {
        let dir = File::open(bundle)?;
        let _ = std::fs::remove_file(bundle.join(SOCKET));
        let listener = UnixListener::bind(short_path(&dir, SOCKET))?;
        listener.set_nonblocking(true)?;
        let resize = match pty {
            Some(pty) => {
                let _ = std::fs::remove_file(bundle.join(RESIZE_SOCKET));
                let listener = UnixListener::bind(short_path(&dir, RESIZE_SOCKET))?;
                listener.set_nonblocking(true)?;
                Some(Resize {
                    listener,
                    clients: Vec::new(),
                    pty: File::from(pty),
                })
            }
            None => None,
        };
        Ok(Attach {
            listener,
            clients: Vec::new(),
            stdin: stdin.map(File::from),
            stdin_once,
            resize,
        })
    }

    /// The descriptors to poll for input.
    pub fn fds(&self) -> Vec<RawFd> {
        let resize = self.resize.iter().flat_map(|r| {
            std::iter::once(r.listener.as_raw_fd())
                .chain(r.clients.iter().map(|(c, _)| c.as_raw_fd()))
        });
        std::iter::once(self.listener.as_raw_fd())
            .chain(self.clients.iter().map(|c| c.as_raw_fd()))
            .chain(resize)
            .collect()
    }

    /// Accepts resize clients and applies the sizes they sent.
    fn serve_resize(&mut self, ready: &[RawFd]) {
        let Some(r) = self.resize.as_mut() else {
            return;
        };
        if ready.contains(&r.listener.as_raw_fd()) {
            while let Ok((client, _)) = r.listener.accept() {
                let _ = client.set_nonblocking(false);
                r.clients.push((client, Vec::new()));
            }
        }
        let mut buf = [0u8; 1024];
        let pty = &r.pty;
        r.clients.retain_mut(|(c, pending)| {
            if !ready.contains(&c.as_raw_fd()) {
                return true;
            }
            match c.read(&mut buf) {
                Ok(0) | Err(_) => false,
                Ok(n) => {
                    pending.extend_from_slice(&buf[..n]);
                    for size in sizes(pending) {
                        set_size(pty, size);
                    }
                    true
                }
            }
        });
    }

    /// Accepts new clients and forwards what clients sent to stdin; `ready` holds the polled
    /// descriptors that have input.
    pub fn serve(&mut self, ready: &[RawFd]) {
        self.serve_resize(ready);
        if ready.contains(&self.listener.as_raw_fd()) {
            while let Ok((client, _)) = self.listener.accept() {
                let _ = client.set_nonblocking(false);
                let _ = client.set_write_timeout(Some(Duration::from_millis(100)));
                self.clients.push(client);
            }
        }
        let mut buf = [0u8; 16 * 1024];
        let stdin = &mut self.stdin;
        let mut left = false;
        self.clients.retain_mut(|c| {
            if !ready.contains(&c.as_raw_fd()) {
                return true;
            }
            match c.read(&mut buf) {
                Ok(0) | Err(_) => {
                    left = true;
                    false
                }
                Ok(n) => {
                    if let Some(input) = stdin.as_mut() {
                        let _ = input.write_all(&buf[..n]);
                    }
                    true
                }
            }
        });
        if left {
            self.session_ended();
        }
    }

    /// A client went (it closed, failed, or could not keep up): with stdin_once the first
    /// session's end closes stdin, whichever way it ended. A client that wrote and closed at
    /// once may be dropped by [`Attach::broadcast`] (its write fails) before its EOF is read,
    /// so both paths come here.
    fn session_ended(&mut self) {
        if self.stdin_once {
            self.stdin = None; // the container reads EOF
        }
    }

    /// Sends output of `stream` (0 stdout, 1 stderr) to every client.
    pub fn broadcast(&mut self, stream: usize, data: &[u8]) {
        if self.clients.is_empty() || data.is_empty() {
            return;
        }
        let mut frame = Vec::with_capacity(data.len() + 5);
        frame.push(stream as u8 + 1);
        frame.extend_from_slice(&(data.len() as u32).to_be_bytes());
        frame.extend_from_slice(data);
        let before = self.clients.len();
        self.clients.retain_mut(|c| c.write_all(&frame).is_ok());
        if self.clients.len() < before {
            self.session_ended();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_reach_clients_and_input_reaches_stdin() {
        let dir = std::env::temp_dir().join(format!("crust-shim-attach-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (r, w) = {
            let mut fds = [0; 2];
            // SAFETY: fds has room for two descriptors.
            assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
            // SAFETY: fresh descriptors owned from here on.
            unsafe {
                use std::os::fd::FromRawFd;
                (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
            }
        };
        let mut attach = Attach::bind(&dir, Some(w), false, None).unwrap();
        let d = File::open(&dir).unwrap();
        let mut client = UnixStream::connect(short_path(&d, SOCKET)).unwrap();
        attach.serve(&attach.fds());
        attach.broadcast(1, b"err!");
        let mut frame = [0u8; 9];
        client.read_exact(&mut frame).unwrap();
        assert_eq!(frame, [2, 0, 0, 0, 4, b'e', b'r', b'r', b'!']);
        client.write_all(b"input").unwrap();
        std::thread::sleep(Duration::from_millis(20));
        attach.serve(&attach.fds());
        let mut got = [0u8; 5];
        File::from(r).read_exact(&mut got).unwrap();
        assert_eq!(&got, b"input");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn resize_messages() {
        let mut p = br#"{"Width":80,"Height":24}{"Height": 30, "Width": 100}{"Wid"#.to_vec();
        assert_eq!(sizes(&mut p), [(80, 24), (100, 30)]);
        assert_eq!(p, br#"{"Wid"#);
    }

    /// The race CI hit: a stdin_once client writes and closes; the container echoes the input
    /// before the shim reads the client's EOF, so the echo's broadcast drops the client first.
    /// stdin must close all the same.
    #[test]
    fn stdin_once_closes_when_the_broadcast_drops_the_first_client() {
        let dir = std::env::temp_dir().join(format!("crust-shim-once-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut fds = [0; 2];
        // SAFETY: fds has room for two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        // SAFETY: fresh descriptors owned from here on.
        let (r, w) = unsafe {
            use std::os::fd::FromRawFd;
            (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
        };
        let mut attach = Attach::bind(&dir, Some(w), true, None).unwrap();
        let d = File::open(&dir).unwrap();
        let mut client = UnixStream::connect(short_path(&d, SOCKET)).unwrap();
        attach.serve(&attach.fds()); // accepted
        client.write_all(b"only once\n").unwrap();
        drop(client);
        std::thread::sleep(Duration::from_millis(20));
        let ready = attach.fds();
        attach.serve(&ready); // reads the input (EOF not read yet)
        attach.broadcast(0, b"only once\n"); // the echo: the write to the closed peer fails
        attach.broadcast(0, b"more\n");
        assert!(attach.clients.is_empty());
        // SAFETY: r is an open descriptor.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        let mut got = Vec::new();
        // EOF (not EWOULDBLOCK): nobody holds stdin's write end any more.
        File::from(r).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"only once\n");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
