//! The CRI log format: `<RFC3339Nano UTC> <stdout|stderr> <P|F> <text>\n`, one record per line or
//! per 16 KiB piece of a longer line (P marks a piece that the next record continues).

use std::{
    ffi::CString,
    fs::{File, OpenOptions},
    io::Write,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::ffi::OsStrExt,
    },
    path::{Component, Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

/// Longest text of one record; longer lines are split into P pieces.
pub const MAX_LINE: usize = 16 * 1024;

/// An open CRI log file.
pub struct CriLog {
    file: File,
}

/// Where the log goes: `path`, which lies inside `root` (the pod's log directory) when there is
/// one. Below `root` no symlink is followed and only a regular file is written, so a symlink
/// planted in the log directory (by anything that can write there) cannot aim the container's
/// output at a host file.
#[derive(Debug, Clone)]
pub struct LogTarget {
    pub root: Option<PathBuf>,
    pub path: PathBuf,
}

fn open(target: &LogTarget) -> std::io::Result<File> {
    let Some(root) = &target.root else {
        return OpenOptions::new().append(true).open(&target.path);
    };
    let rel = target
        .path
        .strip_prefix(root)
        .map_err(|_| std::io::Error::other("the log path is not inside the log directory"))?;
    open_beneath(root, rel)
}

fn cstr(part: &std::ffi::OsStr) -> std::io::Result<CString> {
    CString::new(part.as_bytes()).map_err(std::io::Error::other)
}

/// openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS: `name` is one component of `dir`.
fn open_at(dir: &OwnedFd, name: &CString, flags: i32, mode: u32) -> std::io::Result<OwnedFd> {
    // SAFETY: open_how is plain integers; all-zero is its empty value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.mode = u64::from(mode);
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
    // SAFETY: a valid dir fd, NUL-terminated name and an open_how of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            name.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn open_beneath(root: &Path, rel: &Path) -> std::io::Result<File> {
    // The pod's log directory itself is the kubelet's: made if missing, symlinks followed.
    std::fs::create_dir_all(root)?;
    let mut dir = OwnedFd::from(File::open(root)?);
    let parts: Vec<_> = rel.components().collect();
    let Some((name, parents)) = parts.split_last() else {
        return Err(std::io::Error::other("the log path names no file"));
    };
    for part in parents {
        let Component::Normal(part) = part else {
            return Err(std::io::Error::other("the log path holds '..' or '.'"));
        };
        let c = cstr(part)?;
        // SAFETY: a valid dir fd and NUL-terminated name.
        if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e);
            }
        }
        dir = open_at(&dir, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    }
    let Component::Normal(name) = name else {
        return Err(std::io::Error::other("the log path names no file"));
    };
    // O_NONBLOCK: a FIFO planted there must not block the shim; only a regular file is kept.
    let flags = libc::O_WRONLY | libc::O_APPEND | libc::O_CREAT | libc::O_NONBLOCK;
    let file = File::from(open_at(&dir, &cstr(name)?, flags, 0o640)?);
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("the log path is not a regular file"));
    }
    // SAFETY: F_SETFL with plain flags on an fd we own.
    unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETFL, libc::O_APPEND) };
    Ok(file)
}

impl CriLog {
    pub fn open(target: &LogTarget) -> std::io::Result<CriLog> {
        Ok(CriLog {
            file: open(target)?,
        })
    }

    /// Opens the log anew (after logrotate moved the old file away: ReopenContainerLog).
    pub fn reopen(&mut self, target: &LogTarget) -> std::io::Result<()> {
        self.file = open(target)?;
        Ok(())
    }

    /// Writes one record; errors are dropped (a full disk must not stop the container).
    pub fn write(&mut self, stream: usize, tag: char, text: &[u8]) {
        let name = if stream == 0 { "stdout" } else { "stderr" };
        let mut record = Vec::with_capacity(text.len() + 48);
        record.extend_from_slice(rfc3339_nano(now_ns()).as_bytes());
        record.extend_from_slice(format!(" {name} {tag} ").as_bytes());
        record.extend_from_slice(text);
        record.push(b'\n');
        let _ = self.file.write_all(&record);
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// `2016-10-06T00:17:09.669794202Z` for `ns` since the epoch.
pub fn rfc3339_nano(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_nano() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nano(1_475_713_029_669_794_202),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn records_and_pieces() {
        let dir = std::env::temp_dir().join(format!("crust-shim-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sub/c.log");
        let target = LogTarget {
            root: Some(dir.clone()),
            path: path.clone(),
        };
        let mut log = CriLog::open(&target).unwrap();
        log.write(0, 'F', b"hello");
        log.write(1, 'P', b"part");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with(" stdout F hello"), "{}", lines[0]);
        assert!(lines[1].ends_with(" stderr P part"), "{}", lines[1]);
        assert_eq!(lines[0].find(' '), Some(30));
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Below the log root no symlink is followed (not in a directory, not the file itself)
    /// and only a regular file is written; a FIFO does not block.
    #[test]
    fn symlinks_and_fifos_below_the_root_are_refused() {
        let root = std::env::temp_dir().join(format!("crust-shim-logroot-{}", std::process::id()));
        let outside =
            std::env::temp_dir().join(format!("crust-shim-outside-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("dir-link")).unwrap();
        std::os::unix::fs::symlink(outside.join("victim"), root.join("file-link")).unwrap();
        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        for rel in ["dir-link/0.log", "file-link", "fifo", "../escape.log"] {
            let target = LogTarget {
                root: Some(root.clone()),
                path: root.join(rel),
            };
            assert!(CriLog::open(&target).is_err(), "{rel} opened");
        }
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "written outside"
        );
        std::fs::remove_dir_all(root).unwrap();
        std::fs::remove_dir_all(outside).unwrap();
    }
}
