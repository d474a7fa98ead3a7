//! Device nodes a container gets: the ones its config names (looked up on the host) and, for a
//! privileged container on a handler that allows it, every node of the host's `/dev`.

use std::path::Path;

use cri_api::v1::ContainerConfig;

/// A host device node given to the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub container_path: String,
    /// `c` or `b`.
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub file_mode: u32,
    /// cgroup access, e.g. `rwm`.
    pub access: String,
}

/// Looks the config's devices up on the host (a missing node is an error naming it).
pub fn host_devices(config: &ContainerConfig) -> Result<Vec<Device>, String> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    config
        .devices
        .iter()
        .map(|d| {
            let meta = std::fs::metadata(&d.host_path)
                .map_err(|e| format!("device {}: {e}", d.host_path))?;
            let kind = if meta.file_type().is_char_device() {
                'c'
            } else if meta.file_type().is_block_device() {
                'b'
            } else {
                return Err(format!("{} is not a device node", d.host_path));
            };
            let rdev = meta.rdev();
            Ok(Device {
                container_path: if d.container_path.is_empty() {
                    d.host_path.clone()
                } else {
                    d.container_path.clone()
                },
                kind,
                major: nix::sys::stat::major(rdev),
                minor: nix::sys::stat::minor(rdev),
                file_mode: meta.mode() & 0o777,
                access: if d.permissions.is_empty() {
                    "rwm".into()
                } else {
                    d.permissions.clone()
                },
            })
        })
        .collect()
}

/// Every device node under the host's `/dev`, as a privileged container gets them (containerd's
/// walk: `pts`, `shm`, `fd`, `mqueue` and the lxc/udev dirs skipped, `/dev/console` too, symlinks
/// not followed). Blocking.
pub fn privileged_host_devices() -> Vec<Device> {
    let mut out = Vec::new();
    walk_devices(Path::new("/dev"), &mut out);
    out
}

fn walk_devices(dir: &Path, out: &mut Vec<Device>) {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let (path, name) = (entry.path(), entry.file_name());
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let kind = meta.file_type();
        if kind.is_dir() {
            let skip = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];
            if !skip.iter().any(|s| name == *s) {
                walk_devices(&path, out);
            }
            continue;
        }
        let kind = match () {
            _ if name == "console" => continue,
            _ if kind.is_char_device() => 'c',
            _ if kind.is_block_device() => 'b',
            _ => continue,
        };
        out.push(Device {
            container_path: path.display().to_string(),
            kind,
            major: nix::sys::stat::major(meta.rdev()),
            minor: nix::sys::stat::minor(meta.rdev()),
            file_mode: meta.mode() & 0o777,
            access: "rwm".into(),
        });
    }
}
