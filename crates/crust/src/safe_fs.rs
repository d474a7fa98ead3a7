//! Bounded reads of files that a hostile image or client shapes. A path inside an image rootfs
//! is resolved as if the rootfs were `/` (openat2 with `RESOLVE_IN_ROOT`: `..` and absolute
//! symlinks stay inside it, magic links are refused), so an image cannot point crustd at a host
//! file. Only regular files are read: the file is opened `O_NONBLOCK` (a FIFO opens at once
//! instead of hanging) and checked with fstat before a byte is read, and reads stop at a size cap.
//! Everything here blocks: call it from a blocking thread, never from an async worker.

use std::{
    ffi::CString,
    fs::File,
    io::Read as _,
    os::{
        fd::{FromRawFd as _, OwnedFd},
        unix::{ffi::OsStrExt as _, fs::FileTypeExt as _},
    },
    path::{Path, PathBuf},
};

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum SafeReadError {
    #[error("{path} is {kind}, not a regular file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} is larger than {limit} bytes")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SafeReadError + '_ {
    move |source| SafeReadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn c_path(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))
}

/// openat2(dirfd, path) with `resolve` flags, read-only, non-blocking, close-on-exec.
fn openat2(dirfd: i32, path: &Path, resolve: u64) -> std::io::Result<OwnedFd> {
    let c = c_path(path)?;
    // SAFETY: open_how is a plain C struct; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY) as u64;
    how.resolve = resolve;
    for _ in 0..16 {
        // SAFETY: c and how outlive the call; the size is the struct's.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd,
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel just returned this descriptor to us alone.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) });
        }
        let e = std::io::Error::last_os_error();
        // EAGAIN: a rename raced the scoped lookup; the kernel asks for a retry.
        if e.raw_os_error() != Some(libc::EAGAIN) {
            return Err(e);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EAGAIN))
}

fn kind(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "a special file"
    }
}

/// Reads at most `limit` bytes of the regular file behind `fd`.
fn read_capped(fd: OwnedFd, shown: &Path, limit: u64) -> Result<Vec<u8>, SafeReadError> {
    let file = File::from(fd);
    let meta = file.metadata().map_err(io_err(shown))?;
    if !meta.file_type().is_file() {
        return Err(SafeReadError::NotRegular {
            path: shown.to_path_buf(),
            kind: kind(meta.file_type()),
        });
    }
    let mut out = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(io_err(shown))?;
    if out.len() as u64 > limit {
        return Err(SafeReadError::TooLarge {
            path: shown.to_path_buf(),
            limit,
        });
    }
    Ok(out)
}

/// `path` (absolute or relative, as seen from inside) of the tree at `root`, resolved without
/// leaving it; `None` if it does not exist.
pub fn read_in_root(
    root: &Path,
    path: &Path,
    limit: u64,
) -> Result<Option<Vec<u8>>, SafeReadError> {
    let dir = File::open(root).map_err(io_err(root))?;
    let inner = path.strip_prefix("/").unwrap_or(path);
    let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    let shown = Path::new("/").join(inner);
    match openat2(std::os::fd::AsRawFd::as_raw_fd(&dir), inner, resolve) {
        Ok(fd) => read_capped(fd, &shown, limit).map(Some),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => Ok(None),
        Err(source) => Err(SafeReadError::Io {
            path: shown,
            source,
        }),
    }
}

/// The real path of `path` inside the tree at `root`, its symlinks resolved as if `root` were `/`
/// (so the result is always under `root`); `None` if it does not exist. Blocking.
pub fn resolve_in_root(root: &Path, path: &Path) -> Result<Option<PathBuf>, SafeReadError> {
    let root = &std::fs::canonicalize(root).map_err(io_err(root))?;
    let inner = path.strip_prefix("/").unwrap_or(path);
    if inner.as_os_str().is_empty() {
        return Ok(Some(root.clone()));
    }
    let dir = File::open(root).map_err(io_err(root))?;
    let c = c_path(inner).map_err(io_err(path))?;
    // SAFETY: open_how is a plain C struct; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: c and how outlive the call; the size is the struct's.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            std::os::fd::AsRawFd::as_raw_fd(&dir),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ENOTDIR) => Ok(None),
            _ => Err(io_err(path)(e)),
        };
    }
    // SAFETY: the kernel just returned this descriptor to us alone.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let real = std::fs::read_link(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&fd)
    ))
    .map_err(io_err(path))?;
    Ok(real.starts_with(root).then_some(real))
}

/// The host file `path` (symlinks followed), if it is a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, SafeReadError> {
    let fd = openat2(libc::AT_FDCWD, path, libc::RESOLVE_NO_MAGICLINKS).map_err(io_err(path))?;
    read_capped(fd, path, limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
        t
    }

    #[test]
    fn reads_regular_files_inside() {
        let t = tree();
        let got = read_in_root(t.path(), Path::new("/etc/passwd"), 1024).unwrap();
        assert_eq!(got.unwrap(), b"root:x:0:0::/:/bin/sh\n");
        assert!(read_in_root(t.path(), Path::new("etc/missing"), 1024)
            .unwrap()
            .is_none());
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let t = tree();
        let outside = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(outside.path(), "host:x:0:0::/:/bin/sh\n").unwrap();
        let link = t.path().join("etc/group");
        std::os::unix::fs::symlink(outside.path(), &link).unwrap();
        // The absolute target is looked up under the root, where it does not exist.
        assert!(read_in_root(t.path(), Path::new("/etc/group"), 1024)
            .unwrap()
            .is_none());
        std::os::unix::fs::symlink("../../../../../../etc/passwd", t.path().join("up")).unwrap();
        let got = read_in_root(t.path(), Path::new("/up"), 1024).unwrap();
        assert_eq!(got.unwrap(), b"root:x:0:0::/:/bin/sh\n");
        // /proc is looked up inside the root too (where it is not mounted).
        std::os::unix::fs::symlink("/proc/self/root/etc/hostname", t.path().join("magic")).unwrap();
        assert!(read_in_root(t.path(), Path::new("/magic"), 1024)
            .unwrap()
            .is_none());
        std::os::unix::fs::symlink("/loop", t.path().join("loop")).unwrap();
        assert!(read_in_root(t.path(), Path::new("/loop"), 1024).is_err());
    }

    #[test]
    fn fifos_and_devices_are_refused_without_blocking() {
        let t = tree();
        let fifo = t.path().join("etc/shadow");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = read_in_root(t.path(), Path::new("/etc/shadow"), 1024).unwrap_err();
        assert!(e.to_string().contains("a FIFO"), "{e}");
        let e = read_regular(Path::new("/dev/zero"), 1024).unwrap_err();
        assert!(e.to_string().contains("a character device"), "{e}");
        let e = read_regular(&fifo, 1024).unwrap_err();
        assert!(matches!(e, SafeReadError::NotRegular { .. }), "{e}");
    }

    #[test]
    fn paths_resolve_to_real_paths_inside() {
        let t = tree();
        std::os::unix::fs::symlink("/etc", t.path().join("to-etc")).unwrap();
        std::os::unix::fs::symlink("../../..", t.path().join("etc/up")).unwrap();
        let root = t.path().canonicalize().unwrap();
        assert_eq!(
            resolve_in_root(&root, Path::new("to-etc"))
                .unwrap()
                .unwrap(),
            root.join("etc")
        );
        assert_eq!(
            resolve_in_root(&root, Path::new("/etc/up"))
                .unwrap()
                .unwrap(),
            root
        );
        assert!(resolve_in_root(&root, Path::new("nope")).unwrap().is_none());
    }

    #[test]
    fn size_cap() {
        let t = tree();
        std::fs::write(t.path().join("big"), vec![b'x'; 2048]).unwrap();
        let e = read_in_root(t.path(), Path::new("/big"), 1024).unwrap_err();
        assert!(matches!(e, SafeReadError::TooLarge { limit: 1024, .. }));
        assert_eq!(
            read_regular(&t.path().join("big"), 2048).unwrap().len(),
            2048
        );
    }
}
