//! systemd's readiness protocol (`Type=notify`): `READY=1` once crustd serves, `STOPPING=1` when
//! a shutdown starts, one datagram each to `$NOTIFY_SOCKET` (a path, or an abstract name written
//! `@name`). The variable is taken out of crustd's environment at start, so runc, crust-shim,
//! CNI plugins and containers never inherit it (runc would hand a container the socket).

use std::{
    ffi::OsString,
    os::unix::{ffi::OsStrExt, net::UnixDatagram},
    sync::OnceLock,
};

static SOCKET: OnceLock<Option<OsString>> = OnceLock::new();

/// Takes `$NOTIFY_SOCKET` out of the environment and keeps it. Call first thing in `main`,
/// while the process has one thread (changing the environment is not thread-safe).
pub fn take_from_env() {
    let socket = std::env::var_os("NOTIFY_SOCKET");
    if socket.is_some() {
        std::env::remove_var("NOTIFY_SOCKET");
    }
    let _ = SOCKET.set(socket);
}

/// Sends `message` (lines such as `READY=1`) to the kept socket; nothing without one.
pub fn notify(message: &str) {
    let Some(Some(path)) = SOCKET.get() else {
        return;
    };
    if let Err(e) = send(path, message) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

fn send(path: &OsString, message: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        socket.send_to_addr(message.as_bytes(), &addr)?;
    } else {
        socket.send_to(message.as_bytes(), std::path::Path::new(path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(&path.clone().into_os_string(), "READY=1\nSTATUS=x\n").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x\n");
    }
}
