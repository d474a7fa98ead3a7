//! Writable root filesystems over image snapshots: an overlay mount at `<dir>/rootfs` with the
//! image's layer snapshots as lower dirs (top layer first) and `<dir>/upper`, `<dir>/work` beside
//! it; and read-only views of an image for image volumes ([`mount_readonly`]). Mounting and
//! unmounting are blocking syscalls: callers run them on a blocking thread.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use super::store::{ImageRecord, ImageStore};

/// The kernel's limit on mount option data (one page).
const MAX_OPTIONS: usize = 4095;

/// What a sandbox or container runs from when its image came from a registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRootfs {
    /// The image id (config digest).
    pub image_id: String,
    /// Snapshot `fs` dirs, top layer first (overlay `lowerdir` order).
    pub lowers: Vec<PathBuf>,
    /// The image's Entrypoint followed by its Cmd.
    pub args: Vec<String>,
}

impl ImageRootfs {
    /// The rootfs of `image`, or `None` when one of its snapshots is missing.
    pub fn of(store: &ImageStore, image: &ImageRecord) -> Option<ImageRootfs> {
        if !image.layers.iter().all(|l| store.has_snapshot(&l.chain_id)) {
            return None;
        }
        let lowers = image
            .layers
            .iter()
            .rev()
            .map(|l| store.snapshot_dir(&l.chain_id).join("fs"))
            .collect();
        let strings = |key| crate::container::spec::config_strings(&image.config, key);
        let mut args = strings("Entrypoint");
        args.extend(strings("Cmd"));
        Some(ImageRootfs {
            image_id: image.id.clone(),
            lowers,
            args,
        })
    }
}

/// The overlay option string, refusing paths the option syntax cannot carry.
fn options(lowers: &[PathBuf], upper: &Path, work: &Path) -> io::Result<String> {
    let mut all: Vec<&Path> = lowers.iter().map(PathBuf::as_path).collect();
    all.extend([upper, work]);
    if let Some(bad) = all
        .iter()
        .find(|p| p.to_string_lossy().contains([':', ',', '\n']))
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("overlay path {} contains ':' or ','", bad.display()),
        ));
    }
    let lower = lowers
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let data = format!(
        "lowerdir={lower},upperdir={},workdir={}",
        upper.display(),
        work.display()
    );
    if data.len() > MAX_OPTIONS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} layers are too many for one overlay mount", lowers.len()),
        ));
    }
    Ok(data)
}

/// Mounts the overlay at `dir/rootfs` (idempotent) and returns that path.
pub fn mount_overlay(lowers: &[PathBuf], dir: &Path) -> io::Result<PathBuf> {
    let (target, upper, work) = (dir.join("rootfs"), dir.join("upper"), dir.join("work"));
    for d in [&target, &upper, &work] {
        fs::create_dir_all(d)?;
    }
    if crate::mountinfo::is_mountpoint(&target)? {
        return Ok(target);
    }
    let data = options(lowers, &upper, &work)?;
    mount(
        Some("overlay"),
        &target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )?;
    Ok(target)
}

/// Mounts the image with snapshot dirs `lowers` (top first) read-only at `target` (idempotent):
/// one layer is a read-only bind mount of its snapshot, more are an overlay without an upper
/// dir (which the kernel mounts read-only). Nothing can be written into the snapshots.
pub fn mount_readonly(lowers: &[PathBuf], target: &Path) -> io::Result<()> {
    fs::create_dir_all(target)?;
    if crate::mountinfo::is_mountpoint(target)? {
        return Ok(());
    }
    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    match lowers {
        [] => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "an image without layers",
        )),
        [only] => {
            mount(
                Some(only),
                target,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )?;
            let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
            if let Err(e) = mount(None::<&str>, target, None::<&str>, remount, None::<&str>) {
                let _ = umount2(target, MntFlags::MNT_DETACH);
                return Err(e.into());
            }
            Ok(())
        }
        _ => {
            let data = format!(
                "lowerdir={}",
                lowers
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(":")
            );
            if data.len() > MAX_OPTIONS || data[9..].contains(',') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "overlay lower dirs",
                ));
            }
            mount(
                Some("overlay"),
                target,
                Some("overlay"),
                flags,
                Some(data.as_str()),
            )?;
            Ok(())
        }
    }
}

/// Unmounts whatever is mounted directly on `target` (idempotent; a busy one is detached).
pub fn unmount(target: &Path) -> io::Result<()> {
    if !target.exists() || !crate::mountinfo::is_mountpoint(target)? {
        return Ok(());
    }
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            umount2(target, MntFlags::MNT_DETACH).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

/// Unmounts `dir/rootfs` if it is mounted (idempotent).
pub fn unmount_overlay(dir: &Path) -> io::Result<()> {
    let target = dir.join("rootfs");
    if !target.exists() || !crate::mountinfo::is_mountpoint(&target)? {
        return Ok(());
    }
    match umount2(&target, MntFlags::empty()) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(nix::errno::Errno::EBUSY) => {
            tracing::warn!(target = %target.display(), "rootfs busy; detaching it");
            umount2(&target, MntFlags::MNT_DETACH).map_err(io::Error::from)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_string_and_its_limits() {
        let lowers = vec![PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")];
        assert_eq!(
            options(&lowers, Path::new("/b/upper"), Path::new("/b/work")).unwrap(),
            "lowerdir=/s/2/fs:/s/1/fs,upperdir=/b/upper,workdir=/b/work"
        );
        let bad = vec![PathBuf::from("/a:b")];
        assert!(options(&bad, Path::new("/u"), Path::new("/w")).is_err());
        let many: Vec<PathBuf> = (0..200)
            .map(|i| PathBuf::from(format!("/var/lib/crust/images/snapshots/{i:064}/fs")))
            .collect();
        let err = options(&many, Path::new("/u"), Path::new("/w")).unwrap_err();
        assert!(err.to_string().contains("200 layers"), "{err}");
    }

    #[test]
    fn mounts_and_unmounts_an_overlay() {
        if !nix::unistd::Uid::effective().is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let (l1, l2) = (tmp.path().join("l1"), tmp.path().join("l2"));
        fs::create_dir_all(&l1).unwrap();
        fs::create_dir_all(&l2).unwrap();
        fs::write(l1.join("a"), "lower").unwrap();
        fs::write(l2.join("a"), "upper layer").unwrap();
        let dir = tmp.path().join("bundle");
        let root = mount_overlay(&[l2.clone(), l1.clone()], &dir).unwrap();
        assert_eq!(fs::read_to_string(root.join("a")).unwrap(), "upper layer");
        fs::write(root.join("new"), "x").unwrap();
        assert!(!l1.join("new").exists() && dir.join("upper/new").exists());
        mount_overlay(&[l2, l1], &dir).unwrap();
        unmount_overlay(&dir).unwrap();
        unmount_overlay(&dir).unwrap();
        assert!(!root.join("a").exists());
    }
}
