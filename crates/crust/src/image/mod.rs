//! Images: the built-in sandbox image (a rootfs holding only crust's static `/pause`), reference
//! normalisation ([`reference`]), the content store ([`content`]) and layer extraction for overlayfs
//! ([`unpack`]), and image records with per-chain snapshots ([`store`]). Registry pulls and the
//! ImageService RPCs come next.

pub mod content;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod store;
pub mod unpack;

use std::{
    fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// Name the built-in sandbox image is reported under.
pub const BUILTIN_PAUSE_IMAGE: &str = "crust.local/pause:builtin";

/// Writes `<root>/images/builtin-pause/rootfs` (with `/pause` and empty mount points) if it is
/// missing or stale; returns the rootfs path.
pub fn ensure_builtin_pause(root: &Path) -> io::Result<PathBuf> {
    let rootfs = root.join("images").join("builtin-pause").join("rootfs");
    for dir in ["proc", "dev", "sys", "etc"] {
        fs::create_dir_all(rootfs.join(dir))?;
    }
    let binary = rootfs.join("pause");
    let current = fs::read(&binary).ok();
    if current.as_deref() != Some(pause::PAUSE_BINARY) {
        let tmp = rootfs.join(".pause.tmp");
        fs::write(&tmp, pause::PAUSE_BINARY)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755))?;
        fs::rename(&tmp, &binary)?;
    }
    Ok(rootfs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_an_executable_pause_once() {
        let tmp = tempfile::tempdir().unwrap();
        let rootfs = ensure_builtin_pause(tmp.path()).unwrap();
        let meta = fs::metadata(rootfs.join("pause")).unwrap();
        assert!(meta.permissions().mode() & 0o111 != 0);
        let out = std::process::Command::new(rootfs.join("pause"))
            .arg("-v")
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "crust-pause 0.1"
        );
        ensure_builtin_pause(tmp.path()).unwrap();
    }
}
