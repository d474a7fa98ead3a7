//! Request validation and the derived identity of a sandbox (SANDBOX.md §1): the name, the
//! network mode, and the bounds on what a PodSandboxConfig may carry.

use std::path::{Component, Path};

use cri_api::v1::{NamespaceMode, PodSandboxConfig};

use super::{record::NetworkMode, SandboxError};

/// Annotations and labels together may not exceed this many bytes.
pub const MAX_METADATA_BYTES: usize = 256 * 1024;
/// resolv.conf allows at most six search domains.
pub const MAX_DNS_SEARCHES: usize = 6;

fn invalid(field: &'static str, reason: impl Into<String>) -> SandboxError {
    SandboxError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// `k8s_POD_<name>_<namespace>_<uid>_<attempt>`, after checking the metadata.
pub fn sandbox_name(config: &PodSandboxConfig) -> Result<String, SandboxError> {
    let meta = config
        .metadata
        .as_ref()
        .ok_or_else(|| invalid("config.metadata", "is required"))?;
    check_part("config.metadata.name", &meta.name)?;
    check_part("config.metadata.namespace", &meta.namespace)?;
    check_part("config.metadata.uid", &meta.uid)?;
    Ok(format!(
        "k8s_POD_{}_{}_{}_{}",
        meta.name, meta.namespace, meta.uid, meta.attempt
    ))
}

fn check_part(field: &'static str, value: &str) -> Result<(), SandboxError> {
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.len() > 253 {
        return Err(invalid(field, "is longer than 253 characters"));
    }
    if value
        .chars()
        .any(|c| c == '/' || c == '\0' || c.is_whitespace())
    {
        return Err(invalid(
            field,
            format!("{value:?} holds '/', NUL or whitespace"),
        ));
    }
    Ok(())
}

/// Host mode when the pod asks for the node's network namespace.
pub fn network_mode(config: &PodSandboxConfig) -> NetworkMode {
    if namespace_options(config).network == NamespaceMode::Node as i32 {
        NetworkMode::Host
    } else {
        NetworkMode::Cni
    }
}

/// The pod's `linux.security_context.namespace_options` (all POD when unset, as protobuf has it).
pub fn namespace_options(config: &PodSandboxConfig) -> cri_api::v1::NamespaceOption {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default()
}

/// Everything else about the config that must hold before any side effect.
pub fn check_config(config: &PodSandboxConfig) -> Result<(), SandboxError> {
    let size: usize = config
        .labels
        .iter()
        .chain(config.annotations.iter())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > MAX_METADATA_BYTES {
        return Err(invalid(
            "config.annotations",
            format!("labels and annotations hold {size} bytes, more than {MAX_METADATA_BYTES}"),
        ));
    }
    if !config.log_directory.is_empty() {
        check_abs_clean("config.log_directory", &config.log_directory)?;
    }
    if let Some(dns) = &config.dns_config {
        if dns.searches.len() > MAX_DNS_SEARCHES {
            return Err(invalid(
                "config.dns_config.searches",
                format!(
                    "{} search domains, at most {MAX_DNS_SEARCHES}",
                    dns.searches.len()
                ),
            ));
        }
    }
    if let Some(linux) = &config.linux {
        if !linux.cgroup_parent.is_empty() {
            check_abs_clean("config.linux.cgroup_parent", &linux.cgroup_parent)?;
        }
        let ns = linux
            .security_context
            .as_ref()
            .and_then(|s| s.namespace_options.clone())
            .unwrap_or_default();
        for (name, value) in &linux.sysctls {
            check_sysctl(name, value, &ns).map_err(|r| invalid("config.linux.sysctls", r))?;
        }
        check_apparmor(linux.security_context.as_ref())?;
    }
    Ok(())
}

/// The pod's AppArmor profile, as the containers' are checked (the pause itself runs under
/// the runtime's default).
fn check_apparmor(
    sc: Option<&cri_api::v1::LinuxSandboxSecurityContext>,
) -> Result<(), SandboxError> {
    let Some(sc) = sc else { return Ok(()) };
    crate::container::apparmor::on_this_host(sc.apparmor.as_ref(), "")
        .map(drop)
        .map_err(|r| invalid("config.linux.security_context.apparmor", r))
}

/// The longest sysctl value accepted (a page, as /proc/sys writes take).
pub const MAX_SYSCTL_VALUE: usize = 4096;

/// The namespace a sysctl belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SysctlNamespace {
    Ipc,
    Net,
    Uts,
}

/// Which namespace the sysctl `name` (dots or slashes) is in, as runc's list has them; `None`
/// for the node-wide ones.
pub fn sysctl_namespace(name: &str) -> Option<SysctlNamespace> {
    let dotted = name.replace('/', ".");
    let ipc = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if ipc.contains(&dotted.as_str()) || dotted.starts_with("fs.mqueue.") {
        Some(SysctlNamespace::Ipc)
    } else if dotted.starts_with("net.") {
        Some(SysctlNamespace::Net)
    } else if dotted == "kernel.hostname" || dotted == "kernel.domainname" {
        Some(SysctlNamespace::Uts)
    } else {
        None
    }
}

/// A sysctl a container may set: a well-formed name of a namespaced sysctl (as runc's list has
/// them: IPC ones need the pod's own IPC namespace, `net.*` its own network namespace,
/// `kernel.hostname`/`kernel.domainname` its own UTS namespace) and a one-line value.
pub fn check_sysctl(
    name: &str,
    value: &str,
    ns: &cri_api::v1::NamespaceOption,
) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if name.len() > 253 || !name.replace('/', ".").split('.').all(label_ok) {
        return Err(format!("{name:?} is not a sysctl name"));
    }
    if value.is_empty() || value.len() > MAX_SYSCTL_VALUE || value.contains(['\n', '\0']) {
        return Err(format!(
            "{name} = {value:?}: a value is one line of 1 to {MAX_SYSCTL_VALUE} bytes"
        ));
    }
    let host = |mode: i32| mode == NamespaceMode::Node as i32;
    let (needs, shared) = match sysctl_namespace(name) {
        Some(SysctlNamespace::Ipc) => ("IPC", host(ns.ipc)),
        Some(SysctlNamespace::Net) => ("network", host(ns.network)),
        Some(SysctlNamespace::Uts) => ("UTS", host(ns.network)),
        None => {
            return Err(format!(
                "{name} is not a namespaced sysctl: setting it would change the whole node"
            ))
        }
    };
    if shared {
        return Err(format!(
            "{name} needs the pod's own {needs} namespace, but the pod shares the node's"
        ));
    }
    Ok(())
}

/// An absolute path without `..` components.
pub fn check_abs_clean(field: &'static str, path: &str) -> Result<(), SandboxError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(invalid(field, format!("{path:?} is not absolute")));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(field, format!("{path:?} contains '..'")));
    }
    Ok(())
}

#[cfg(test)]
mod sysctl_tests {
    use super::*;
    use cri_api::v1::NamespaceOption;

    #[test]
    fn sysctls() {
        let pod_ns = NamespaceOption::default();
        let host_net = NamespaceOption {
            network: NamespaceMode::Node as i32,
            ..Default::default()
        };
        assert!(check_sysctl("net.core.somaxconn", "1024", &pod_ns).is_ok());
        assert!(check_sysctl("net/ipv4/ip_unprivileged_port_start", "0", &pod_ns).is_ok());
        assert!(check_sysctl("kernel.shm_rmid_forced", "1", &pod_ns).is_ok());
        assert!(check_sysctl("fs.mqueue.msg_max", "20", &pod_ns).is_ok());
        for (name, value, ns, why) in [
            ("kernel.panic", "1", &pod_ns, "not a namespaced"),
            ("vm.swappiness", "1", &pod_ns, "not a namespaced"),
            ("net.core.somaxconn", "1", &host_net, "network namespace"),
            ("Net.Core", "1", &pod_ns, "not a sysctl name"),
            ("net..core", "1", &pod_ns, "not a sysctl name"),
            ("net.core.somaxconn", "1\n2", &pod_ns, "one line"),
            ("net.core.somaxconn", "", &pod_ns, "one line"),
        ] {
            let e = check_sysctl(name, value, ns).unwrap_err();
            assert!(e.contains(why), "{name}={value:?}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::{
        DnsConfig, LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceOption,
        PodSandboxMetadata,
    };

    fn config() -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "web".into(),
                namespace: "default".into(),
                uid: "u1".into(),
                attempt: 2,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn name_format_and_metadata_checks() {
        assert_eq!(sandbox_name(&config()).unwrap(), "k8s_POD_web_default_u1_2");
        let mut c = config();
        c.metadata = None;
        assert!(sandbox_name(&c)
            .unwrap_err()
            .to_string()
            .contains("config.metadata"));
        let mut c = config();
        c.metadata.as_mut().unwrap().uid.clear();
        assert!(sandbox_name(&c).unwrap_err().to_string().contains("uid"));
        let mut c = config();
        c.metadata.as_mut().unwrap().name = "a/b".into();
        assert!(sandbox_name(&c).is_err());
    }

    #[test]
    fn network_mode_follows_namespace_options() {
        let mut c = config();
        assert_eq!(network_mode(&c), NetworkMode::Cni);
        c.linux = Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(network_mode(&c), NetworkMode::Host);
    }

    #[test]
    fn bounds() {
        let mut c = config();
        c.log_directory = "/var/log/pods/../../etc".into();
        assert!(check_config(&c)
            .unwrap_err()
            .to_string()
            .contains("log_directory"));
        let mut c = config();
        c.annotations
            .insert("big".into(), "x".repeat(MAX_METADATA_BYTES + 1));
        assert!(check_config(&c).is_err());
        let mut c = config();
        c.dns_config = Some(DnsConfig {
            searches: (0..7).map(|i| format!("s{i}")).collect(),
            ..Default::default()
        });
        assert!(check_config(&c).is_err());
        assert!(check_config(&config()).is_ok());
    }
}
