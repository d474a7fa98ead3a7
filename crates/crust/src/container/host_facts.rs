//! What a container's OCI spec needs from the host and its images, gathered on a blocking
//! thread once the rootfs is mounted: host-path mount sources made and checked, image volumes
//! mounted read-only (and their sub paths resolved inside the image), the image's accounts read
//! safely, the Localhost seccomp profile, device nodes and capabilities.

use std::path::{Path, PathBuf};

use cri_api::v1::ContainerConfig;

use super::{
    caps, seccomp,
    spec::{Device, ResolvedUser},
    user::{self, ImageAccounts},
    validate::{self, invalid},
    ContainerError,
};
use crate::image::rootfs;

/// Where a container's image volumes are mounted, one numbered dir per mount.
pub const IMAGE_VOLUMES: &str = "image-volumes";

/// An image volume to mount: the index of its mount in the config, the image's snapshot dirs.
#[derive(Debug, Clone)]
pub struct ImageVolume {
    pub mount: usize,
    pub lowers: Vec<PathBuf>,
}

/// The facts, ready for the spec.
#[derive(Debug)]
pub struct HostFacts {
    pub user: ResolvedUser,
    pub seccomp: Option<serde_json::Value>,
    pub devices: Vec<Device>,
    pub caps: Vec<String>,
    /// The source of each of the config's mounts (host path, or the image volume's path).
    pub mount_sources: Vec<PathBuf>,
    /// `process.apparmorProfile`, when a loaded profile was asked for.
    pub apparmor: Option<String>,
}

impl HostFacts {
    /// Gathers everything for the container in `dir` whose rootfs is `root`; `host_devices`:
    /// a privileged container on a handler that gives it the host's device nodes. Blocking.
    pub fn gather(
        config: &ContainerConfig,
        image_user: &str,
        dir: &Path,
        root: &Path,
        volumes: &[ImageVolume],
        host_devices: bool,
    ) -> Result<HostFacts, ContainerError> {
        let sc = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.clone())
            .unwrap_or_default();
        validate::prepare_mount_sources(config)?;
        let mount_sources = mount_image_volumes(config, dir, volumes)?;
        let accounts = ImageAccounts::load(root)?;
        let user = user::resolve(&sc, image_user, &accounts)
            .map_err(|reason| invalid("config.linux.security_context", reason))?;
        let seccomp_field = "config.linux.security_context.seccomp";
        let choice = seccomp::choice(&sc).map_err(|reason| invalid(seccomp_field, reason))?;
        let seccomp = seccomp::profile(&choice).map_err(|reason| invalid(seccomp_field, reason))?;
        let mut devices = super::devices::host_devices(config)
            .map_err(|reason| invalid("config.devices", reason))?;
        if host_devices && sc.privileged {
            let asked: Vec<String> = devices.iter().map(|d| d.container_path.clone()).collect();
            devices.extend(
                super::devices::privileged_host_devices()
                    .into_iter()
                    .filter(|d| !asked.contains(&d.container_path)),
            );
        }
        let caps = caps::capabilities(&sc, caps::host_bounding_set())
            .map_err(|reason| invalid("config.linux.security_context.capabilities", reason))?;
        let apparmor = validate::apparmor_profile(&sc)?;
        Ok(HostFacts {
            user,
            seccomp,
            devices,
            caps,
            mount_sources,
            apparmor,
        })
    }
}

/// Mounts each image volume read-only under `dir/image-volumes/<n>` and returns every mount's
/// source: the host path, or the volume's sub path resolved inside the image (a symlink in the
/// image cannot point the mount at a host path). A sub path the image lacks is an error.
fn mount_image_volumes(
    config: &ContainerConfig,
    dir: &Path,
    volumes: &[ImageVolume],
) -> Result<Vec<PathBuf>, ContainerError> {
    let mut sources: Vec<PathBuf> = config
        .mounts
        .iter()
        .map(|m| PathBuf::from(&m.host_path))
        .collect();
    for v in volumes {
        let target = dir.join(IMAGE_VOLUMES).join(v.mount.to_string());
        rootfs::mount_readonly(&v.lowers, &target).map_err(|source| ContainerError::Io {
            what: "mount image volume at",
            path: target.clone(),
            source,
        })?;
        let sub = &config.mounts[v.mount].image_sub_path;
        let resolved = crate::safe_fs::resolve_in_root(&target, Path::new(sub))?;
        sources[v.mount] = resolved.ok_or_else(|| {
            invalid(
                "config.mounts.image_sub_path",
                format!("{sub:?} does not exist in the image"),
            )
        })?;
    }
    Ok(sources)
}

/// Unmounts a container's image volumes (idempotent). Blocking.
pub fn unmount_image_volumes(dir: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir.join(IMAGE_VOLUMES)) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        rootfs::unmount(&entry.path())?;
    }
    Ok(())
}
