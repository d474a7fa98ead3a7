//! Layer extraction into a snapshot directory, for overlayfs.
//!
//! The layer (plain, gzip or zstd tar) is streamed once: decompressed, hashed (the result is the
//! layer's diffID, checked against the image config by the caller) and extracted. OCI whiteouts
//! become overlayfs ones (`.wh.NAME` -> a 0/0 character device NAME; `.wh..wh..opq` -> the
//! `trusted.overlay.opaque=y` xattr on its directory). Extraction is path-safe: no `..`, never a write
//! through a symlink, hard links only to files inside the layer. Blocking: run it off the async workers.

use std::{
    ffi::CString,
    fs,
    io::{self, Read},
    os::unix::{ffi::OsStrExt, fs::PermissionsExt},
    path::{Component, Path, PathBuf},
};

use sha2::{Digest, Sha256};

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// From an OCI or Docker layer media type.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd" => Some(Compression::Zstd),
            _ => None,
        }
    }
}

/// Extraction failures.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {0:?} escapes the layer (contains '..')")]
    Traversal(String),
    #[error("layer entry {0:?} would be written through a symlink")]
    ThroughSymlink(String),
    #[error("hard link {name:?} points outside the layer or at a missing file: {target:?}")]
    HardlinkOutside { name: String, target: String },
    #[error("reading the layer: {0}")]
    Read(io::Error),
    #[error("the layer decompresses to more than {limit} bytes (limits.max_layer_unpacked_size)")]
    TooLarge { limit: u64 },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> UnpackError + '_ {
    move |source| UnpackError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Hashes everything read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Fails the read once more than `left` bytes came through (a decompression bomb).
struct Bounded<R> {
    inner: R,
    left: u64,
    tripped: bool,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(n)
            }
            None => {
                self.tripped = true;
                Err(io::Error::other("decompressed size limit"))
            }
        }
    }
}

/// Extracts `layer` into `dest` (which must exist), reading at most `max_bytes` of tar;
/// returns the diffID (`sha256:` of the tar).
pub fn unpack_layer<R: Read>(
    layer: R,
    compression: Compression,
    dest: &Path,
    max_bytes: u64,
) -> Result<String, UnpackError> {
    let decompressed: Box<dyn Read> = match compression {
        Compression::None => Box::new(layer),
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(layer)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::new(layer).map_err(UnpackError::Read)?)
        }
    };
    let mut archive = tar::Archive::new(Hashing {
        inner: Bounded {
            inner: decompressed,
            left: max_bytes,
            tripped: false,
        },
        hasher: Sha256::new(),
    });
    let result = extract_all(&mut archive, dest);
    let mut rest = archive.into_inner();
    // The rest of the stream is hashed too: the diffID covers the tar's end padding.
    let result = result.and_then(|()| {
        io::copy(&mut rest, &mut io::sink())
            .map(drop)
            .map_err(UnpackError::Read)
    });
    if rest.inner.tripped {
        return Err(UnpackError::TooLarge { limit: max_bytes });
    }
    result?;
    Ok(format!("sha256:{}", hex::encode(rest.hasher.finalize())))
}

fn extract_all<R: Read>(archive: &mut tar::Archive<R>, dest: &Path) -> Result<(), UnpackError> {
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        extract(&mut entry, dest)?;
    }
    Ok(())
}

/// The entry's path relative to the layer root, refusing `..`.
fn relative(raw: &Path) -> Result<PathBuf, UnpackError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::Traversal(raw.display().to_string()))
            }
        }
    }
    Ok(out)
}

/// `dest/rel`, after checking that no existing parent of it inside `dest` is a symlink, and creating
/// the missing parents as directories.
fn safe_target(dest: &Path, rel: &Path) -> Result<PathBuf, UnpackError> {
    let mut current = dest.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for part in parents {
        current.push(part);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(UnpackError::ThroughSymlink(rel.display().to_string()))
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => fs::remove_file(&current)
                .and_then(|()| fs::create_dir(&current))
                .map_err(io_at(&current))?,
            Err(_) => fs::create_dir(&current).map_err(io_at(&current))?,
        }
    }
    Ok(dest.join(rel))
}

fn extract<R: Read>(entry: &mut tar::Entry<'_, R>, dest: &Path) -> Result<(), UnpackError> {
    let raw = entry.path().map_err(UnpackError::Read)?.into_owned();
    let rel = relative(&raw)?;
    let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(()); // the layer root itself
    };
    if let Some(hidden) = name.strip_prefix(".wh.") {
        return whiteout(dest, &rel, hidden);
    }
    let target = safe_target(dest, &rel)?;
    let header = entry.header().clone();
    let kind = header.entry_type();
    if !kind.is_dir() {
        remove_existing(&target)?;
    }
    match kind {
        tar::EntryType::Directory => {
            if !target.is_dir() {
                remove_existing(&target)?;
                fs::create_dir(&target).map_err(io_at(&target))?;
            }
        }
        tar::EntryType::Regular | tar::EntryType::Continuous => {
            let mut file = fs::File::create(&target).map_err(io_at(&target))?;
            io::copy(entry, &mut file).map_err(io_at(&target))?;
        }
        tar::EntryType::Symlink => {
            let link = header
                .link_name()
                .map_err(UnpackError::Read)?
                .unwrap_or_default();
            std::os::unix::fs::symlink(&link, &target).map_err(io_at(&target))?;
        }
        tar::EntryType::Link => hard_link(&header, dest, &rel, &target)?,
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            device(&header, &target)?
        }
        _ => return Ok(()), // pax/gnu metadata entries are consumed by the tar reader
    }
    ownership_and_mode(&header, &target, kind)
}

fn remove_existing(target: &Path) -> Result<(), UnpackError> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(target).map_err(io_at(target)),
        Ok(_) => fs::remove_file(target).map_err(io_at(target)),
        Err(_) => Ok(()),
    }
}

fn hard_link(
    header: &tar::Header,
    dest: &Path,
    rel: &Path,
    target: &Path,
) -> Result<(), UnpackError> {
    let link = header
        .link_name()
        .map_err(UnpackError::Read)?
        .unwrap_or_default()
        .into_owned();
    let outside = || UnpackError::HardlinkOutside {
        name: rel.display().to_string(),
        target: link.display().to_string(),
    };
    let link_rel = relative(&link).map_err(|_| outside())?;
    let source = safe_target(dest, &link_rel).map_err(|_| outside())?;
    let meta = fs::symlink_metadata(&source).map_err(|_| outside())?;
    if !meta.is_file() {
        return Err(outside());
    }
    fs::hard_link(&source, target).map_err(io_at(target))
}

fn device(header: &tar::Header, target: &Path) -> Result<(), UnpackError> {
    let kind = match header.entry_type() {
        tar::EntryType::Char => libc::S_IFCHR,
        tar::EntryType::Block => libc::S_IFBLK,
        _ => libc::S_IFIFO,
    };
    let major = header.device_major().ok().flatten().unwrap_or(0);
    let minor = header.device_minor().ok().flatten().unwrap_or(0);
    let mode = header.mode().unwrap_or(0o600) & 0o7777;
    mknod(target, kind | mode, libc::makedev(major, minor))
}

fn mknod(target: &Path, mode: libc::mode_t, dev: libc::dev_t) -> Result<(), UnpackError> {
    let c = CString::new(target.as_os_str().as_bytes())
        .map_err(|e| io_at(target)(io::Error::other(e)))?;
    // SAFETY: a valid NUL-terminated path and plain integers.
    if unsafe { libc::mknod(c.as_ptr(), mode, dev) } != 0 {
        return Err(io_at(target)(io::Error::last_os_error()));
    }
    Ok(())
}

fn ownership_and_mode(
    header: &tar::Header,
    target: &Path,
    kind: tar::EntryType,
) -> Result<(), UnpackError> {
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    std::os::unix::fs::lchown(target, Some(uid), Some(gid)).map_err(io_at(target))?;
    if !kind.is_symlink() {
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        fs::set_permissions(target, fs::Permissions::from_mode(mode)).map_err(io_at(target))?;
    }
    Ok(())
}

/// `.wh..wh..opq` marks its directory opaque; `.wh.NAME` hides NAME from lower layers.
fn whiteout(dest: &Path, rel: &Path, hidden: &str) -> Result<(), UnpackError> {
    let parent_rel = rel.parent().unwrap_or(Path::new(""));
    if hidden == ".wh..opq" {
        // safe_target checks and creates the parents; the marker's parent is the opaque directory.
        let marker = safe_target(dest, rel)?;
        return set_opaque(marker.parent().unwrap_or(dest));
    }
    let target = safe_target(dest, &parent_rel.join(hidden))?;
    remove_existing(&target)?;
    mknod(&target, libc::S_IFCHR, libc::makedev(0, 0))
}

fn set_opaque(dir: &Path) -> Result<(), UnpackError> {
    let c =
        CString::new(dir.as_os_str().as_bytes()).map_err(|e| io_at(dir)(io::Error::other(e)))?;
    let name = c"trusted.overlay.opaque";
    // SAFETY: valid NUL-terminated path and name; the value is one byte.
    let r = unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    if r != 0 {
        return Err(io_at(dir)(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(path: &str, kind: tar::EntryType, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        let name = &mut h.as_old_mut().name;
        name[..path.len()].copy_from_slice(path.as_bytes()); // raw, so tests can write '..'
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(if kind.is_dir() { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn add(
        b: &mut tar::Builder<Vec<u8>>,
        path: &str,
        kind: tar::EntryType,
        data: &[u8],
        link: Option<&str>,
    ) {
        let mut h = header(path, kind, data.len() as u64);
        if let Some(l) = link {
            h.set_link_name(l).unwrap();
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    fn layer(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (p, k, d, l) in entries {
            add(&mut b, p, *k, d, *l);
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn extracts_and_computes_the_diff_id_for_every_compression() {
        let tar = layer(&[
            ("etc/", D, b"", None),
            ("etc/motd", F, b"hi\n", None),
            ("etc/link", S, b"", Some("motd")),
            ("etc/hard", H, b"", Some("etc/motd")),
        ]);
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&tar)));
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&tar).unwrap();
            e.finish().unwrap()
        };
        let zst = zstd::encode_all(&tar[..], 1).unwrap();
        for (data, c) in [
            (&tar, Compression::None),
            (&gz, Compression::Gzip),
            (&zst, Compression::Zstd),
        ] {
            let dir = tempfile::tempdir().unwrap();
            assert_eq!(
                unpack_layer(&data[..], c, dir.path(), u64::MAX).unwrap(),
                diff_id,
                "{c:?}"
            );
            assert_eq!(
                fs::read_to_string(dir.path().join("etc/motd")).unwrap(),
                "hi\n"
            );
            assert_eq!(
                fs::read_link(dir.path().join("etc/link")).unwrap(),
                Path::new("motd")
            );
            let (a, b) = (
                fs::metadata(dir.path().join("etc/motd")).unwrap(),
                fs::metadata(dir.path().join("etc/hard")).unwrap(),
            );
            assert_eq!(a.ino(), b.ino(), "hard link");
        }
        assert_eq!(
            Compression::from_media_type("application/vnd.oci.image.layer.v1.tar+zstd"),
            Some(Compression::Zstd)
        );
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let tar = layer(&[("bomb", F, &zeros, None)]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&tar).unwrap();
        let gz = gz.finish().unwrap();
        assert!(
            gz.len() < tar.len() / 100,
            "a bomb: {} -> {}",
            gz.len(),
            tar.len()
        );
        let dir = tempfile::tempdir().unwrap();
        let err = unpack_layer(&gz[..], Compression::Gzip, dir.path(), 1 << 20).unwrap_err();
        assert!(
            matches!(err, UnpackError::TooLarge { limit } if limit == 1 << 20),
            "{err}"
        );
        let written = fs::metadata(dir.path().join("bomb")).map_or(0, |m| m.len());
        assert!(written <= 1 << 20, "stopped at the limit: {written}");
        // The limit counts the tar, padding included: exactly its size passes.
        let dir = tempfile::tempdir().unwrap();
        unpack_layer(&gz[..], Compression::Gzip, dir.path(), tar.len() as u64).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack_layer(&gz[..], Compression::Gzip, dir.path(), tar.len() as u64 - 1);
        assert!(matches!(err, Err(UnpackError::TooLarge { .. })));
    }

    #[test]
    fn whiteouts_become_overlay_whiteouts() {
        let tar = layer(&[
            ("a/", D, b"", None),
            ("a/.wh..wh..opq", F, b"", None),
            ("b/", D, b"", None),
            ("b/.wh.gone", F, b"", None),
        ]);
        let dir = tempfile::tempdir().unwrap();
        unpack_layer(&tar[..], Compression::None, dir.path(), u64::MAX).unwrap();
        let gone = fs::symlink_metadata(dir.path().join("b/gone")).unwrap();
        assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
        let mut buf = [0u8; 4];
        let path = CString::new(dir.path().join("a").as_os_str().as_bytes()).unwrap();
        let n = unsafe {
            libc::lgetxattr(
                path.as_ptr(),
                c"trusted.overlay.opaque".as_ptr(),
                buf.as_mut_ptr().cast(),
                4,
            )
        };
        assert_eq!((n, buf[0]), (1, b'y'), "opaque dir");
        assert!(
            !dir.path().join("a/.wh..wh..opq").exists() && !dir.path().join("b/.wh.gone").exists()
        );
    }

    #[test]
    fn refuses_traversal_symlink_writes_and_outside_hard_links() {
        let outside = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (layer(&[("../evil", F, b"x", None)]), "escapes"),
            (layer(&[("a/../../evil", F, b"x", None)]), "escapes"),
            (
                layer(&[
                    ("link", S, b"", Some(outside.path().to_str().unwrap())),
                    ("link/pwned", F, b"x", None),
                ]),
                "symlink",
            ),
            (layer(&[("h", H, b"", Some("../../etc/passwd"))]), "outside"),
            (
                layer(&[("s", S, b"", Some("/etc/passwd")), ("h", H, b"", Some("s"))]),
                "outside",
            ),
        ];
        for (tar, expect) in cases {
            let dir = tempfile::tempdir().unwrap();
            let err = unpack_layer(&tar[..], Compression::None, dir.path(), u64::MAX).unwrap_err();
            assert!(err.to_string().contains(expect), "{err}");
        }
        assert_eq!(
            fs::read_dir(outside.path()).unwrap().count(),
            0,
            "nothing written outside"
        );
    }
}
