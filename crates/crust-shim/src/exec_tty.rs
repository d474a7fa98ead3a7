//! `crust-shim exec-tty`: the terminal side of a streaming Exec. runc hands a terminal's master
//! over a console socket only to a detached `runc exec`, whose process then outlives runc; this
//! helper is the child subreaper that inherits it. It runs `runc exec --detach --process FILE`
//! (the process spec crustd wrote, with `terminal: true`: runsc has no `--tty` and takes the
//! terminal from the spec as runc does), passes the master to crustd over descriptor 3
//! (SCM_RIGHTS), waits for the exec'd process and prints `exit <code>` (or `error <message>`)
//! on stdout.
//!
//! `crust-shim exec-tty --runtime R --runtime-root DIR [--runtime-arg A]... --id ID --pid-file FILE
//! --process FILE`

use std::{
    os::fd::{AsRawFd, RawFd},
    path::PathBuf,
    process::{exit, Command, Stdio},
    time::Duration,
};

use crate::{errno_err, exit_code, recv_fd, short_temp_dir, unblocked};

struct ExecArgs {
    runtime: PathBuf,
    root: PathBuf,
    runtime_args: Vec<String>,
    id: String,
    pid_file: PathBuf,
    process: PathBuf,
}

fn parse(args: &[String]) -> Result<ExecArgs, String> {
    let mut it = args.iter();
    let (mut runtime, mut root, mut id, mut pid_file) = (None, None, None, None);
    let (mut runtime_args, mut process) = (Vec::new(), None);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?
            .clone();
        match flag.as_str() {
            "--runtime" => runtime = Some(PathBuf::from(value)),
            "--runtime-root" => root = Some(PathBuf::from(value)),
            "--runtime-arg" => runtime_args.push(value),
            "--id" => id = Some(value),
            "--pid-file" => pid_file = Some(PathBuf::from(value)),
            "--process" => process = Some(PathBuf::from(value)),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(ExecArgs {
        runtime: runtime.ok_or("--runtime is required")?,
        root: root.ok_or("--runtime-root is required")?,
        runtime_args,
        id: id.ok_or("--id is required")?,
        pid_file: pid_file.ok_or("--pid-file is required")?,
        process: process.ok_or("--process is required")?,
    })
}

/// Sends `fd` over the unix socket `sock` (SCM_RIGHTS).
fn send_fd(sock: RawFd, fd: RawFd) -> Result<(), String> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4];
    // SAFETY: msghdr and its control buffer are plain data that outlive the sendmsg call; the
    // control buffer has room for one descriptor.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) as usize;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        if libc::sendmsg(sock, &msg, 0) < 0 {
            return Err(errno_err("send the terminal to crustd"));
        }
    }
    Ok(())
}

fn run(a: &ExecArgs) -> Result<i32, String> {
    // SAFETY: plain prctl without pointers.
    if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        return Err(errno_err("PR_SET_CHILD_SUBREAPER"));
    }
    let dir = short_temp_dir()?;
    let socket = dir.join("s");
    let listener = std::os::unix::net::UnixListener::bind(&socket)
        .map_err(|e| format!("console socket: {e}"))?;
    let _ = listener.set_nonblocking(true);
    let mut cmd = Command::new(&a.runtime);
    cmd.arg("--root")
        .arg(&a.root)
        .args(&a.runtime_args)
        .args(["exec", "--detach", "--console-socket"])
        .arg(&socket)
        .arg("--pid-file")
        .arg(&a.pid_file)
        .arg("--process")
        .arg(&a.process)
        .arg(&a.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    unblocked(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("run {}: {e}", a.runtime.display()));
    let result = (|| {
        let child = child.as_mut().map_err(|e| e.clone())?;
        let conn = loop {
            match listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let mut err = String::new();
                        if let Some(mut e) = child.stderr.take() {
                            let _ = std::io::Read::read_to_string(&mut e, &mut err);
                        }
                        return Err(format!("runc exec failed ({status}): {}", err.trim()));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(format!("console socket: {e}")),
            }
        };
        let _ = conn.set_nonblocking(false);
        let master = recv_fd(conn.as_raw_fd())?;
        send_fd(3, master.as_raw_fd())?;
        drop(master);
        let status = child
            .wait()
            .map_err(|e| format!("wait for runc exec: {e}"))?;
        if !status.success() {
            return Err(format!("runc exec failed ({status})"));
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let pid: i32 = std::fs::read_to_string(&a.pid_file)
        .map_err(|e| format!("read {}: {e}", a.pid_file.display()))?
        .trim()
        .parse()
        .map_err(|e| format!("pid file: {e}"))?;
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out-pointer.
        let got = unsafe { libc::waitpid(pid, &mut status, 0) };
        if got == pid {
            return Ok(exit_code(status));
        }
        if got < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(errno_err("wait for the exec'd process"));
        }
    }
}

/// The entry point of `crust-shim exec-tty ARGS...`.
pub fn main(args: &[String]) -> ! {
    let outcome = parse(args).and_then(|a| run(&a));
    match outcome {
        Ok(code) => {
            println!("exit {code}");
            exit(0)
        }
        Err(e) => {
            println!("error {}", e.replace('\n', " "));
            exit(1)
        }
    }
}
