//! Pinned network namespaces: created on a dedicated thread (unshare(CLONE_NEWNET) changes the calling
//! thread for good, so never a tokio or pooled thread), with `lo` brought up in-process, then
//! bind-mounted onto a file under the state dir. Removal is idempotent: lazy unmount, retry on EBUSY,
//! unlink.

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::{Path, PathBuf},
    time::Duration,
};

use nix::{
    mount::{mount, umount2, MntFlags, MsFlags},
    sched::{unshare, CloneFlags},
};

/// Creates a new network namespace pinned at `path` (which must not exist yet), with `lo` up and
/// the `net.*` `sysctls` written in it.
pub async fn create(path: PathBuf, sysctls: Vec<(String, String)>) -> io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("crust-netns".into())
        .spawn(move || {
            let _ = tx.send(create_on_this_thread(&path, &sysctls));
        })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("netns thread died")))
}

fn create_on_this_thread(path: &Path, sysctls: &[(String, String)]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let result = unshare(CloneFlags::CLONE_NEWNET)
        .map_err(io::Error::from)
        .and_then(|()| loopback_up())
        .and_then(|()| {
            sysctls
                .iter()
                .try_for_each(|(name, value)| crate::sysctl::write(name, value))
        })
        .and_then(|()| {
            let own = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
            mount(
                Some(own.as_str()),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(io::Error::from)
        });
    if result.is_err() {
        let _ = std::fs::remove_file(path);
    }
    result
}

/// Sets IFF_UP on `lo` in the calling thread's network namespace.
fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is owned below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write the ifreq we pass.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// True when `path` is a pinned network namespace (an nsfs mount).
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
}

/// The `CNI_NETNS` value for a pod: its netns path while pinned, else empty (DEL must still run).
pub fn cni_arg(path: Option<&Path>) -> String {
    path.filter(|p| is_pinned(p))
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Unpins the namespace (lazy unmount); idempotent.
pub fn unpin(path: &Path) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    for attempt in 0..5 {
        match umount2(path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {
                return Ok(())
            }
            Err(nix::errno::Errno::EBUSY) if attempt < 4 => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Unpins and deletes the file; idempotent.
pub fn remove(path: &Path) -> io::Result<()> {
    unpin(path)?;
    for attempt in 0..5 {
        match std::fs::remove_file(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 4 => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_pin_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("netns").join("t1");
        let sysctl = (
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "81".to_string(),
        );
        create(path.clone(), vec![sysctl]).await.unwrap();
        assert!(is_pinned(&path));
        let port = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&port.stdout).trim(),
            "81",
            "{port:?}"
        );
        assert_ne!(
            std::fs::metadata(&path).unwrap().ino_compat(),
            std::fs::metadata("/proc/self/ns/net").unwrap().ino_compat(),
            "a new namespace, not ours"
        );
        assert!(
            create(path.clone(), Vec::new()).await.is_err(),
            "an existing path is refused"
        );
        // `lo` is up inside.
        let out = std::process::Command::new("nsenter")
            .arg(format!("--net={}", path.display()))
            .args(["ip", "-o", "link", "show", "lo"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("UP"),
            "{out:?}"
        );
        remove(&path).unwrap();
        assert!(!path.exists());
        remove(&path).unwrap();
        unpin(&path).unwrap();
    }

    trait InoCompat {
        fn ino_compat(&self) -> u64;
    }
    impl InoCompat for std::fs::Metadata {
        fn ino_compat(&self) -> u64 {
            std::os::unix::fs::MetadataExt::ino(self)
        }
    }
}
