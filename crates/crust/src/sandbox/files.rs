//! The files a sandbox owns: `hostname`, `hosts`, `resolv.conf` and the 64 MiB tmpfs for `/dev/shm`,
//! all under its state-dir directory (tmpfs, like CRI-O's: they only matter while the pod can run,
//! which no reboot survives, and they cost no disk inodes on the RunPodSandbox path). Mounting runs
//! on a blocking thread.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use cri_api::v1::{DnsConfig, PodSandboxConfig};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::record::NetworkMode;

/// Size of the pod's shared-memory tmpfs.
pub const SHM_SIZE: &str = "size=65536k,mode=1777";

/// Where one sandbox's files live.
#[derive(Debug, Clone)]
pub struct SandboxPaths {
    /// `<root>/sandboxes/<id>`: the record.
    pub dir: PathBuf,
    /// `<state>/sandboxes/<id>`: hostname, hosts, resolv.conf, shm, bundle.
    pub state_dir: PathBuf,
}

impl SandboxPaths {
    pub fn hostname(&self) -> PathBuf {
        self.state_dir.join("hostname")
    }
    pub fn hosts(&self) -> PathBuf {
        self.state_dir.join("hosts")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.state_dir.join("resolv.conf")
    }
    pub fn shm(&self) -> PathBuf {
        self.state_dir.join("shm")
    }
    pub fn bundle(&self) -> PathBuf {
        self.state_dir.join("bundle")
    }
}

/// Writes hostname, hosts and resolv.conf for the pod.
pub fn write_files(
    paths: &SandboxPaths,
    config: &PodSandboxConfig,
    mode: NetworkMode,
) -> io::Result<()> {
    fs::create_dir_all(&paths.state_dir)?;
    let hostname = pod_hostname(config, mode)?;
    fs::write(paths.hostname(), format!("{hostname}\n"))?;
    let hosts = match mode {
        NetworkMode::Host => fs::read_to_string("/etc/hosts").unwrap_or_else(|_| default_hosts()),
        NetworkMode::Cni => default_hosts(),
    };
    fs::write(paths.hosts(), hosts)?;
    let resolv = match &config.dns_config {
        Some(dns) => resolv_conf(dns),
        None => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    fs::write(paths.resolv_conf(), resolv)
}

fn pod_hostname(config: &PodSandboxConfig, mode: NetworkMode) -> io::Result<String> {
    if mode == NetworkMode::Host {
        return nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .map_err(io::Error::from);
    }
    Ok(config.hostname.clone())
}

fn default_hosts() -> String {
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
     fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        .to_string()
}

/// resolv.conf text for a DnsConfig.
pub fn resolv_conf(dns: &DnsConfig) -> String {
    let mut out = String::new();
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

/// Mounts the shm tmpfs (idempotent: an existing mount is kept).
pub fn mount_shm(path: &Path) -> io::Result<()> {
    fs::create_dir_all(path)?;
    if crate::mountinfo::is_mountpoint(path)? {
        return Ok(());
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("shm"), path, Some("tmpfs"), flags, Some(SHM_SIZE)).map_err(io::Error::from)
}

/// Unmounts the shm tmpfs if mounted (idempotent).
pub fn unmount_shm(path: &Path) -> io::Result<()> {
    if !path.exists() || !crate::mountinfo::is_mountpoint(path)? {
        return Ok(());
    }
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Removes a directory tree (idempotent).
pub fn remove_dir(path: &Path) -> io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_from_dns_config() {
        let dns = DnsConfig {
            servers: vec!["10.0.0.10".into()],
            searches: vec!["a.svc".into(), "svc".into()],
            options: vec!["ndots:5".into()],
        };
        assert_eq!(
            resolv_conf(&dns),
            "nameserver 10.0.0.10\nsearch a.svc svc\noptions ndots:5\n"
        );
    }

    #[test]
    fn files_for_a_pod() {
        let tmp = tempfile::tempdir().unwrap();
        let paths = SandboxPaths {
            dir: tmp.path().join("d"),
            state_dir: tmp.path().join("s"),
        };
        let config = PodSandboxConfig {
            hostname: "web-0".into(),
            ..Default::default()
        };
        write_files(&paths, &config, NetworkMode::Cni).unwrap();
        assert_eq!(fs::read_to_string(paths.hostname()).unwrap(), "web-0\n");
        assert!(fs::read_to_string(paths.hosts())
            .unwrap()
            .contains("localhost"));
    }
}
