//! Linux capabilities of a container: the default set, `ALL`, adds and drops, checked against
//! what this host can give. "All capabilities" (privileged containers, `add_capabilities: [ALL]`)
//! means every capability in crustd's own bounding set, as containerd and CRI-O compute it: on a
//! host whose bounding set lacks some (nodes in containers, gVisor and hardened hosts), asking
//! runc for the full list fails with "unable to apply caps". Defaults missing from the bounding
//! set are left out; an explicit add of a capability the host lacks, or of an unknown name, is a
//! client error naming it.

use std::sync::OnceLock;

use cri_api::v1::LinuxContainerSecurityContext;

/// Capability names by number (linux/capability.h, through CAP_CHECKPOINT_RESTORE = 40).
pub const NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Docker's and containerd's default capability set.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// The names of the capabilities in a `CapBnd:` mask.
pub fn from_mask(mask: u64) -> Vec<String> {
    NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// The `CapBnd` mask of a /proc/<pid>/status text.
pub fn parse_bounding(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// crustd's own bounding set (read once; it cannot grow while crustd runs).
pub fn host_bounding_set() -> &'static [String] {
    static SET: OnceLock<Vec<String>> = OnceLock::new();
    SET.get_or_init(|| {
        let mask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| parse_bounding(&s))
            .unwrap_or(u64::MAX);
        from_mask(mask)
    })
}

/// `NET_ADMIN`, `net_admin` and `CAP_NET_ADMIN` are all `CAP_NET_ADMIN`.
fn normalize(c: &str) -> String {
    let up = c.to_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// The container's capability set: defaults, `ALL` dropped or added, then individual adds and
/// drops, within `bounding` (the host's set). Unknown names and adds the host cannot give are
/// errors naming them.
pub fn capabilities(
    sc: &LinuxContainerSecurityContext,
    bounding: &[String],
) -> Result<Vec<String>, String> {
    let caps = sc.capabilities.clone().unwrap_or_default();
    let adds: Vec<String> = caps.add_capabilities.iter().map(|c| normalize(c)).collect();
    let drops: Vec<String> = caps
        .drop_capabilities
        .iter()
        .map(|c| normalize(c))
        .collect();
    for c in adds.iter().chain(&drops).filter(|c| *c != "CAP_ALL") {
        if !NAMES.contains(&c.as_str()) {
            return Err(format!("unknown capability {c:?}"));
        }
    }
    if sc.privileged || adds.iter().any(|c| c == "CAP_ALL") {
        return Ok(bounding.to_vec());
    }
    let mut set: Vec<String> = if drops.iter().any(|c| c == "CAP_ALL") {
        Vec::new()
    } else {
        DEFAULT_CAPS
            .iter()
            .filter(|c| bounding.iter().any(|b| b == *c))
            .map(|s| s.to_string())
            .collect()
    };
    for add in adds {
        if !bounding.contains(&add) {
            return Err(format!(
                "capability {add} is not in this host's bounding set, so no container can have it"
            ));
        }
        if !set.contains(&add) {
            set.push(add);
        }
    }
    set.retain(|c| !drops.contains(c));
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::Capability;

    fn all() -> Vec<String> {
        from_mask(u64::MAX)
    }

    #[test]
    fn rules() {
        let mut sc = LinuxContainerSecurityContext::default();
        assert_eq!(capabilities(&sc, &all()).unwrap().len(), DEFAULT_CAPS.len());
        sc.capabilities = Some(Capability {
            add_capabilities: vec!["NET_ADMIN".into()],
            drop_capabilities: vec!["CAP_KILL".into(), "chown".into()],
            ..Default::default()
        });
        let caps = capabilities(&sc, &all()).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_KILL".to_string()) && !caps.contains(&"CAP_CHOWN".into()));
        sc.capabilities = Some(Capability {
            add_capabilities: vec!["NET_BIND_SERVICE".into()],
            drop_capabilities: vec!["ALL".into()],
            ..Default::default()
        });
        assert_eq!(capabilities(&sc, &all()).unwrap(), ["CAP_NET_BIND_SERVICE"]);
        sc.privileged = true;
        assert_eq!(capabilities(&sc, &all()).unwrap().len(), NAMES.len());
    }

    #[test]
    fn all_means_the_hosts_bounding_set() {
        // This VM's mask: everything through CAP_CHECKPOINT_RESTORE but CAP_SYS_RESOURCE (24).
        let status = "Name:\tcrustd\nCapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n";
        let mask = parse_bounding(status).unwrap();
        let host = from_mask(mask);
        assert_eq!(host.len(), NAMES.len() - 1);
        assert!(!host.contains(&"CAP_SYS_RESOURCE".to_string()));
        let privileged = LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        };
        assert_eq!(capabilities(&privileged, &host).unwrap(), host);
        let all_added = LinuxContainerSecurityContext {
            capabilities: Some(Capability {
                add_capabilities: vec!["ALL".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(capabilities(&all_added, &host).unwrap(), host);
        // Defaults the host lacks are left out; an explicit add of one is an error naming it.
        let no_raw: Vec<String> = host
            .iter()
            .filter(|c| *c != "CAP_NET_RAW")
            .cloned()
            .collect();
        let default = LinuxContainerSecurityContext::default();
        let caps = capabilities(&default, &no_raw).unwrap();
        assert_eq!(caps.len(), DEFAULT_CAPS.len() - 1);
        let add = LinuxContainerSecurityContext {
            capabilities: Some(Capability {
                add_capabilities: vec!["sys_resource".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(capabilities(&add, &host)
            .unwrap_err()
            .contains("CAP_SYS_RESOURCE"));
        let unknown = LinuxContainerSecurityContext {
            capabilities: Some(Capability {
                drop_capabilities: vec!["CAP_FLY".into()],
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(capabilities(&unknown, &host)
            .unwrap_err()
            .contains("CAP_FLY"));
    }
}
