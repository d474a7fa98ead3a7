//! Images: the sandbox image (the built-in rootfs holding only crust's static `/pause`, or a
//! registry image pulled on first use), reference normalisation ([`reference`]), registry access
//! ([`registry`], [`manifest`]) and pulls ([`pull`]), the content store ([`content`]), layer
//! extraction for overlayfs ([`unpack`]), image records with per-chain snapshots ([`store`]) and
//! overlay root filesystems over them ([`rootfs`]).

pub mod content;
pub mod import;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod registry;
pub mod rootfs;
pub mod store;
pub mod unpack;

use std::{
    fs, io,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use self::{
    pull::{PullError, Puller},
    rootfs::ImageRootfs,
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

/// The image pods' sandbox process runs from (config `sandbox_image`).
#[derive(Debug, Clone)]
pub struct SandboxImage {
    /// Empty: the built-in pause.
    pub reference: String,
    pub puller: Arc<Puller>,
}

impl SandboxImage {
    /// `None` for the built-in pause; else the registry image's rootfs, pulled when missing.
    pub async fn resolve(&self) -> Result<Option<ImageRootfs>, Arc<PullError>> {
        if self.reference.is_empty() {
            return Ok(None);
        }
        let store = self.puller.store();
        if let Some(rootfs) = store
            .find(&self.reference)
            .and_then(|i| ImageRootfs::of(store, &i))
        {
            return Ok(Some(rootfs));
        }
        tracing::info!(image = %self.reference, "pulling the sandbox image");
        let pulled = self.puller.pull(&self.reference, None).await?;
        store
            .find(&pulled.id)
            .and_then(|i| ImageRootfs::of(store, &i))
            .map(Some)
            .ok_or_else(|| {
                Arc::new(PullError::Vanished {
                    reference: self.reference.clone(),
                })
            })
    }

    /// True when `image_id` is the configured sandbox image (reported as pinned).
    pub fn is(&self, image_id: &str) -> bool {
        !self.reference.is_empty()
            && self
                .puller
                .store()
                .find(&self.reference)
                .is_some_and(|i| i.id == image_id)
    }
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
