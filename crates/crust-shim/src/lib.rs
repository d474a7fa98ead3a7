//! crust-shim: one small monitor per container, with no async runtime.
//!
//! Started by crustd, it forks a daemon child and reports back through a status pipe. The daemon
//! child leaves crustd's session, becomes the child subreaper, runs `runc create` with the
//! container's stdout/stderr on pipes it holds, prints `ok <pid>` (or `error <message>`) for
//! crustd and then, until the container exits: copies both streams into the CRI log file
//! (`<RFC3339Nano> <stream> <P|F> <text>`; lines longer than 16 KiB are split into P chunks),
//! reopens the log on SIGUSR1, reaps whatever it inherits, and finally writes the exit code
//! atomically (`<exit-file>`: JSON, via temp file, fsync, rename). It survives crustd restarts.
//!
//! Runtimes that run a pod's containers inside one sandbox process (runsc) are handled as
//! [`sandboxed`] describes: the answer is then `ok <pid> <shim pid> sandboxed`.
//!
//! For `shim-v2` handlers the containerd shim holds the container; `crust-shim task-io` holds
//! crust's ends of the container's stdio FIFOs, writes the CRI log and serves attach
//! ([`task_io`]).
//!
//! The binary is `crust-shim` of the crustd package (so it is built, and found next to crustd,
//! wherever crustd is); this crate holds its code.

pub mod attach;
mod exec_tty;
mod log;
pub mod sandboxed;
pub mod task_io;

use std::{
    ffi::CString,
    fs::File,
    io::{Read, Write},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::PathBuf,
    process::{exit, Command, Stdio},
    time::{Duration, Instant},
};

/// How long to keep draining the streams after the container's init exited.
const DRAIN: Duration = Duration::from_millis(500);

struct Args {
    id: String,
    bundle: PathBuf,
    runtime: PathBuf,
    runtime_root: PathBuf,
    /// Global runtime options after `--root` (`--runtime-arg`, repeated).
    runtime_args: Vec<String>,
    log: log::LogTarget,
    exit_file: PathBuf,
    /// The container has a terminal: runc hands its pty master over a console socket.
    tty: bool,
    /// The container reads stdin (fed by attach clients).
    stdin: bool,
    /// Stdin closes when the first attach client leaves.
    stdin_once: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut id, mut bundle, mut runtime, mut root, mut log_path, mut exit_file) =
        (None, None, None, None, None, None);
    let mut log_root = None;
    let mut runtime_args = Vec::new();
    let mut tty = false;
    let mut stdin = false;
    let mut stdin_once = false;
    while let Some(flag) = it.next() {
        if flag == "--version" {
            println!("crust-shim {}", env!("CARGO_PKG_VERSION"));
            exit(0);
        }
        if flag == "--tty" {
            tty = true;
            continue;
        }
        if flag == "--stdin" {
            stdin = true;
            continue;
        }
        if flag == "--stdin-once" {
            stdin_once = true;
            continue;
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--id" => id = Some(value),
            "--bundle" => bundle = Some(PathBuf::from(value)),
            "--runtime" => runtime = Some(PathBuf::from(value)),
            "--runtime-root" => root = Some(PathBuf::from(value)),
            "--runtime-arg" => runtime_args.push(value),
            "--log-path" => log_path = Some(PathBuf::from(value)),
            "--log-root" => log_root = Some(PathBuf::from(value)),
            "--exit-file" => exit_file = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    let need = |name: &str| format!("--{name} is required");
    Ok(Args {
        id: id.ok_or_else(|| need("id"))?,
        bundle: bundle.ok_or_else(|| need("bundle"))?,
        runtime: runtime.ok_or_else(|| need("runtime"))?,
        runtime_root: root.ok_or_else(|| need("runtime-root"))?,
        runtime_args,
        log: log::LogTarget {
            root: log_root,
            path: log_path.ok_or_else(|| need("log-path"))?,
        },
        exit_file: exit_file.ok_or_else(|| need("exit-file"))?,
        tty,
        stdin,
        stdin_once,
    })
}

/// `RUNTIME --root ROOT RUNTIME_ARGS...`, ready for a command.
fn runtime(args: &Args) -> Command {
    let mut cmd = Command::new(&args.runtime);
    cmd.arg("--root")
        .arg(&args.runtime_root)
        .args(&args.runtime_args);
    cmd
}

/// Starts `cmd` with an empty signal mask and SIGPIPE at its default: the container must not
/// inherit the shim's blocked signals (they arrive on its signalfd), since runc passes its
/// starting mask on to the container's init, which then never sees e.g. a SIGUSR1 stop signal.
fn unblocked(cmd: &mut Command) {
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(|| {
            let mut empty: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut empty);
            libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            Ok(())
        });
    }
}

fn errno_err(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(errno_err("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The shim's entry point: parses the command line and never returns.
pub fn run() -> ! {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("exec-tty") {
        exec_tty::main(&argv[2..]);
    }
    if argv.get(1).map(String::as_str) == Some("task-io") {
        task_io::main(&argv[2..]);
    }
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("crust-shim: {e}");
            exit(2);
        }
    };
    daemonize(|status| daemon(args, status))
}

/// Forks a daemon child that runs `child` with the write end of a status pipe; this parent
/// prints the child's one-line report (`ok ...` or `error ...`, or that it died first) for
/// crustd and exits, 0 for `ok`. The child is then nobody's but init's.
fn daemonize(child: impl FnOnce(File) -> std::convert::Infallible) -> ! {
    let (status_r, status_w) = match pipe() {
        Ok(p) => p,
        Err(e) => {
            println!("error {e}");
            exit(1);
        }
    };
    // SAFETY: single-threaded here; the child only continues this program.
    match unsafe { libc::fork() } {
        -1 => {
            println!("error {}", errno_err("fork"));
            exit(1);
        }
        0 => {
            drop(status_r);
            match child(File::from(status_w)) {}
        }
        _ => {
            drop(status_w);
            let mut answer = String::new();
            let _ = File::from(status_r).read_to_string(&mut answer);
            if answer.is_empty() {
                answer = "error the shim died before reporting\n".into();
            }
            print!("{answer}");
            exit(if answer.starts_with("ok ") { 0 } else { 1 });
        }
    }
}

fn daemon(args: Args, mut status: File) -> std::convert::Infallible {
    match setup(&args) {
        Ok(ready) => {
            // Bound before "ok": once crustd answers CreateContainer, attach works. Without the
            // socket the container still runs and logs.
            let attach =
                attach::Attach::bind(&args.bundle, ready.stdin, args.stdin_once, ready.pty).ok();
            // SAFETY: getpid has no preconditions.
            let me = unsafe { libc::getpid() };
            let pid = ready.pid;
            let mode = if ready.pending.is_some() {
                " sandboxed"
            } else {
                ""
            };
            let _ = writeln!(status, "ok {pid} {me}{mode}");
            drop(status);
            quiet_stdio();
            let init = match ready.pending {
                Some(pending) => Init::Pending(pending),
                None => Init::Process(pid),
            };
            let code = monitor(&args, init, ready.streams, ready.log, attach);
            let _ = std::fs::remove_file(args.bundle.join(attach::SOCKET));
            let _ = std::fs::remove_file(args.bundle.join(attach::RESIZE_SOCKET));
            write_exit(&args, code);
            exit(0)
        }
        Err(e) => {
            let _ = writeln!(status, "error {}", e.replace('\n', " "));
            exit(1)
        }
    }
}

/// What setup hands to the monitor.
struct Setup {
    /// The init pid from the runtime's pid file (the sandbox's, for a sandboxed runtime).
    pid: i32,
    /// The output read ends.
    streams: [OwnedFd; 2],
    log: log::CriLog,
    /// The stdin write end.
    stdin: Option<OwnedFd>,
    /// The terminal (for resizes) of a tty container.
    pty: Option<OwnedFd>,
    /// A sandboxed runtime's container: its stdio until `start`.
    pending: Option<sandboxed::Pending>,
}

/// Session, subreaper, signals, pipes, `runc create`.
fn setup(args: &Args) -> Result<Setup, String> {
    // SAFETY: plain syscalls without pointers.
    unsafe {
        libc::setsid();
        if libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0 {
            return Err(errno_err("PR_SET_CHILD_SUBREAPER"));
        }
    }
    block_signals();
    let log = log::CriLog::open(&args.log)
        .map_err(|e| format!("open log {}: {e}", args.log.path.display()))?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (stdin_r, stdin_w) = match args.stdin && !args.tty {
        true => {
            let (r, w) = pipe()?;
            (Some(r), Some(w))
        }
        false => (None, None),
    };
    // The runtime gets copies; the shim keeps the originals in case the runtime turns out to
    // take the container's stdio at `start` (sandboxed), and drops them otherwise.
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
    let create_stdin = match &stdin_r {
        Some(r) => Stdio::from(dup(r)?),
        None => Stdio::null(),
    };
    let (create_out, create_err) = (dup(&out_w)?, dup(&err_w)?);
    let pid_file = args.bundle.join("init.pid");
    let runc_log = args.bundle.join("runc.log");
    // A short private dir: socket paths must fit in sockaddr_un (108 bytes).
    let console_dir = if args.tty {
        Some(short_temp_dir()?)
    } else {
        None
    };
    let console_path = console_dir
        .as_ref()
        .map(|d| d.join("s"))
        .unwrap_or_default();
    let console = match &console_dir {
        Some(_) => Some(
            std::os::unix::net::UnixListener::bind(&console_path)
                .map_err(|e| format!("console socket {}: {e}", console_path.display()))?,
        ),
        None => None,
    };
    let mut cmd = runtime(args);
    cmd.arg("--log")
        .arg(&runc_log)
        .args(["--log-format", "json", "create"]);
    if console.is_some() {
        cmd.arg("--console-socket").arg(&console_path);
    }
    unblocked(&mut cmd);
    let result = cmd
        .arg("--bundle")
        .arg(&args.bundle)
        .arg("--pid-file")
        .arg(&pid_file)
        .arg(&args.id)
        .stdin(create_stdin)
        .stdout(Stdio::from(create_out))
        .stderr(Stdio::from(create_err))
        .status()
        .map_err(|e| format!("run {}: {e}", args.runtime.display()))?;
    if !result.success() {
        if let Some(dir) = &console_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        return Err(format!(
            "runc create failed: {}",
            last_runc_error(&runc_log)
        ));
    }
    let pid = std::fs::read_to_string(&pid_file)
        .map_err(|e| format!("read {}: {e}", pid_file.display()))?
        .trim()
        .parse::<i32>()
        .map_err(|e| format!("pid file: {e}"))?;
    let pending = (!sandboxed::is_child(pid)).then_some(sandboxed::Pending {
        stdin: stdin_r,
        stdout: out_w,
        stderr: err_w,
    });
    let mut stdin_w = stdin_w;
    let mut pty = None;
    let out_r = match console {
        Some(listener) => {
            let accepted = accept_within(&listener, CONSOLE_TIMEOUT);
            if let Some(dir) = &console_dir {
                let _ = std::fs::remove_dir_all(dir);
            }
            let conn = accepted?;
            let master = recv_fd(conn.as_raw_fd())?;
            if args.stdin {
                stdin_w = master.try_clone().ok();
            }
            pty = master.try_clone().ok();
            master
        }
        None => out_r,
    };
    Ok(Setup {
        pid,
        streams: [out_r, err_r],
        log,
        stdin: stdin_w,
        pty,
        pending,
    })
}

/// How long the runtime may take to hand over a tty container's terminal after `create`.
const CONSOLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The runtime's connection to the console socket, if it comes within `timeout` (a runtime that
/// never sends the terminal must not hang CreateContainer).
fn accept_within(
    listener: &std::os::unix::net::UnixListener,
    timeout: Duration,
) -> Result<std::os::unix::net::UnixStream, String> {
    let mut fd = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut fd, 1, ms) } <= 0 {
        return Err(format!(
            "the runtime did not hand over the terminal within {} s",
            timeout.as_secs()
        ));
    }
    let (conn, _) = listener
        .accept()
        .map_err(|e| format!("console socket: {e}"))?;
    Ok(conn)
}

/// `/tmp/crust-pty-XXXXXX`, mode 0700.
fn short_temp_dir() -> Result<PathBuf, String> {
    let mut template = *b"/tmp/crust-pty-XXXXXX\0";
    // SAFETY: template is a writable NUL-terminated buffer ending in six X.
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(errno_err("mkdtemp"));
    }
    let len = template.len() - 1;
    Ok(PathBuf::from(
        String::from_utf8_lossy(&template[..len]).into_owned(),
    ))
}

/// Receives one file descriptor (runc's pty master) over a unix socket (SCM_RIGHTS).
fn recv_fd(sock: RawFd) -> Result<OwnedFd, String> {
    let mut data = [0u8; 4096];
    let mut iov = libc::iovec {
        iov_base: data.as_mut_ptr().cast(),
        iov_len: data.len(),
    };
    let mut control = [0u64; 8];
    // SAFETY: msghdr is plain data; every pointer set below outlives the recvmsg call.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        if libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC) < 0 {
            return Err(errno_err("recvmsg on the console socket"));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err("no pty master on the console socket".into());
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// The last `msg` of runc's JSON log.
fn last_runc_error(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .rev()
        .find_map(|l| {
            let start = l.find("\"msg\":\"")? + 7;
            let rest = &l[start..];
            Some(rest[..rest.find("\",").or_else(|| rest.rfind('"'))?].replace("\\n", " "))
        })
        .unwrap_or_else(|| "no message".into())
}

/// The signals the shim takes through its signalfd.
fn handled_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [
            libc::SIGCHLD,
            libc::SIGUSR1,
            libc::SIGUSR2,
            libc::SIGTERM,
            libc::SIGINT,
            libc::SIGHUP,
        ] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// The handled signals are blocked (they arrive on the signalfd); SIGPIPE is ignored.
fn block_signals() {
    let set = handled_signals();
    // SAFETY: process signal mask changes with a valid set.
    unsafe {
        libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

fn signal_fd() -> Option<OwnedFd> {
    let set = handled_signals();
    // SAFETY: signalfd returns a new descriptor or -1.
    unsafe {
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        (fd >= 0).then(|| OwnedFd::from_raw_fd(fd))
    }
}

fn quiet_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// Copies the streams into the log until they close (or the drain time after init's exit
/// passed); returns init's exit code (128 + signal when killed).
fn monitor(
    args: &Args,
    mut init: Init,
    streams: [OwnedFd; 2],
    mut log: log::CriLog,
    mut attach: Option<attach::Attach>,
) -> i32 {
    let sfd = signal_fd();
    let mut open = [Some(streams[0].as_raw_fd()), Some(streams[1].as_raw_fd())];
    let mut partial = [Vec::new(), Vec::new()];
    let mut code: Option<i32> = None;
    let mut exited_at: Option<Instant> = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if open.iter().all(Option::is_none) && code.is_some() {
            break;
        }
        if exited_at.is_some_and(|t| t.elapsed() > DRAIN) {
            break;
        }
        let mut fds: Vec<libc::pollfd> = open
            .iter()
            .flatten()
            .map(|fd| libc::pollfd {
                fd: *fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if let Some(s) = &sfd {
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        for fd in attach.as_ref().map(|a| a.fds()).unwrap_or_default() {
            fds.push(libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            });
        }
        let timeout = if code.is_some() { 50 } else { 1000 };
        // SAFETY: fds is a valid array of pollfd.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            continue;
        }
        for (stream, slot) in open.iter_mut().enumerate() {
            let Some(fd) = *slot else { continue };
            if !fds.iter().any(|p| p.fd == fd && p.revents != 0) {
                continue;
            }
            match copy_once(fd, stream, &mut partial[stream], &mut log, &mut buf) {
                Some(n) => {
                    if let Some(a) = attach.as_mut() {
                        a.broadcast(stream, &buf[..n]);
                    }
                }
                None => *slot = None,
            }
        }
        if let Some(a) = attach.as_mut() {
            let ready: Vec<RawFd> = fds
                .iter()
                .filter(|p| p.revents != 0)
                .map(|p| p.fd)
                .collect();
            a.serve(&ready);
        }
        if handle_signals(
            sfd.as_ref().map(|s| s.as_raw_fd()),
            &mut init,
            &mut code,
            &mut log,
            args,
        ) {
            exited_at.get_or_insert_with(Instant::now);
        }
        // Without a signalfd, poll the init pid.
        if sfd.is_none() && code.is_none() {
            if let Some(c) = reap(init.pid()) {
                code = Some(init.finish(c));
                exited_at = Some(Instant::now());
            }
        }
    }
    for (stream, rest) in partial.iter_mut().enumerate() {
        if !rest.is_empty() {
            log.write(stream, 'F', rest);
            rest.clear();
        }
    }
    match code {
        Some(code) => code,
        None if init.pid() > 0 => {
            let raw = reap_blocking(init.pid());
            init.finish(raw)
        }
        None => NEVER_RAN,
    }
}

/// Reads what is there from `fd` into `buf` and logs complete records; the bytes read, `None`
/// at EOF.
fn copy_once(
    fd: RawFd,
    stream: usize,
    partial: &mut Vec<u8>,
    log: &mut log::CriLog,
    buf: &mut [u8],
) -> Option<usize> {
    // SAFETY: buf is valid for buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n <= 0 {
        let interrupted =
            n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
        return interrupted.then_some(0);
    }
    partial.extend_from_slice(&buf[..n as usize]);
    for (tag, text) in split_records(partial) {
        log.write(stream, tag, &text);
    }
    Some(n as usize)
}

/// Takes the complete records out of `partial`, in order: a line (F), or a MAX_LINE piece of a
/// longer one (P); whatever is left waits for more data.
fn split_records(partial: &mut Vec<u8>) -> Vec<(char, Vec<u8>)> {
    let mut out = Vec::new();
    loop {
        let newline = partial.iter().position(|&b| b == b'\n');
        match newline {
            Some(pos) if pos <= log::MAX_LINE => {
                let line: Vec<u8> = partial.drain(..=pos).collect();
                out.push(('F', line[..line.len() - 1].to_vec()));
            }
            _ if partial.len() >= log::MAX_LINE => {
                out.push(('P', partial.drain(..log::MAX_LINE).collect()));
            }
            _ => return out,
        }
    }
}

/// What the monitor waits for.
enum Init {
    /// The container's init, the shim's child.
    Process(i32),
    /// A sandboxed runtime's container before its start (crustd's SIGUSR2 starts it).
    Pending(sandboxed::Pending),
    /// A sandboxed runtime's started container: its `wait` child.
    Waiting(sandboxed::Waiter),
    /// Given up or failed to start: nothing runs.
    Gone,
}

impl Init {
    /// The child whose exit is the container's (0: none).
    fn pid(&self) -> i32 {
        match self {
            Init::Process(pid) => *pid,
            Init::Waiting(w) => w.pid,
            Init::Pending(_) | Init::Gone => 0,
        }
    }

    /// The container's exit code once the child exited with `code`.
    fn finish(&mut self, code: i32) -> i32 {
        match std::mem::replace(self, Init::Gone) {
            Init::Waiting(w) => w.exit_code(),
            _ => code,
        }
    }

    /// SIGUSR2 (start) and SIGTERM (given up) for a pending sandboxed container; the exit code
    /// when nothing will run.
    fn on_request(&mut self, signo: i32, args: &Args) -> Option<i32> {
        if !matches!(self, Init::Pending(_)) || !matches!(signo, libc::SIGUSR2 | libc::SIGTERM) {
            return None;
        }
        let Init::Pending(pending) = std::mem::replace(self, Init::Gone) else {
            return None;
        };
        if signo == libc::SIGUSR2 {
            if let Some(waiter) = sandboxed::start(args, pending) {
                *self = Init::Waiting(waiter);
                return None;
            }
        }
        Some(NEVER_RAN)
    }
}

/// The exit code of a container that never ran (as containerd reports it).
const NEVER_RAN: i32 = 255;

/// Drains the signalfd; returns true when init's exit was seen now.
fn handle_signals(
    sfd: Option<RawFd>,
    init: &mut Init,
    code: &mut Option<i32>,
    log: &mut log::CriLog,
    args: &Args,
) -> bool {
    let Some(sfd) = sfd else { return false };
    let mut info = [0u8; 128];
    let mut init_exited = false;
    // SAFETY: info is 128 bytes, the size of signalfd_siginfo.
    while unsafe { libc::read(sfd, info.as_mut_ptr().cast(), info.len()) } == info.len() as isize {
        let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32;
        match signo {
            libc::SIGUSR1 => {
                if let Err(e) = log.reopen(&args.log) {
                    let _ = e;
                }
            }
            libc::SIGCHLD => {
                if code.is_none() {
                    if let Some(c) = reap(init.pid()) {
                        *code = Some(init.finish(c));
                        init_exited = true;
                    }
                } else {
                    reap(init.pid());
                }
            }
            // Otherwise the shim outlives crustd's signals; the container decides when it ends.
            other => {
                if let Some(c) = init.on_request(other, args) {
                    *code = Some(c);
                    init_exited = true;
                }
            }
        }
    }
    init_exited
}

/// Reaps every exited child; returns init's exit code if init was among them.
fn reap(init: i32) -> Option<i32> {
    let mut found = None;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return found;
        }
        if pid == init {
            found = Some(exit_code(status));
        }
    }
}

fn reap_blocking(init: i32) -> i32 {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid == init {
            return exit_code(status);
        }
        if pid < 0 {
            return 255;
        }
    }
}

fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        255
    }
}

/// `{"exit_code":N,"exited_at_ns":T}` via temp file, fsync, rename.
fn write_exit(args: &Args, code: i32) {
    let tmp = args.exit_file.with_extension("tmp");
    let body = format!(
        "{{\"exit_code\":{code},\"exited_at_ns\":{}}}\n",
        log::now_ns()
    );
    let written = File::create(&tmp).and_then(|mut f| {
        f.write_all(body.as_bytes())?;
        f.sync_all()
    });
    if written.is_ok() {
        let _ = std::fs::rename(&tmp, &args.exit_file);
    }
    if let Ok(dir) = CString::new(
        args.exit_file
            .parent()
            .map(|p| p.as_os_str().as_encoded_bytes().to_vec())
            .unwrap_or_default(),
    ) {
        // SAFETY: dir is a valid C string; the fd is closed right after fsync.
        unsafe {
            let fd = libc::open(
                dir.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            );
            if fd >= 0 {
                libc::fsync(fd);
                libc::close(fd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_split_in_order_whatever_the_reads() {
        let mut data = vec![b'x'; 40_000];
        data.extend_from_slice(b"\nnext\n");
        let mut partial = data.clone();
        let records = split_records(&mut partial);
        let shape: Vec<(char, usize)> = records.iter().map(|(t, x)| (*t, x.len())).collect();
        assert_eq!(shape, [('P', 16384), ('P', 16384), ('F', 7232), ('F', 4)]);
        assert!(partial.is_empty());
        let mut partial = b"a\nb".to_vec();
        assert_eq!(split_records(&mut partial), [('F', b"a".to_vec())]);
        assert_eq!(partial, b"b");
    }
}
