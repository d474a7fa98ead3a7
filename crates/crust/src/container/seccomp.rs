//! Seccomp for containers: `RuntimeDefault` is crust's in-tree default profile (below), which
//! denies with EPERM the system calls Docker's and containerd's defaults keep from unprivileged
//! containers (kernel modules, kexec, keyrings, mount and namespace changes, ptrace and
//! cross-process memory access, clock setting, swap, reboot, BPF, perf, userfaultfd, ...) and
//! allows the rest; `Unconfined` and an absent profile mean no filter; `Localhost` loads an OCI
//! seccomp JSON file from the node. Privileged containers run unconfined, as elsewhere.

use std::path::Path;

use cri_api::v1::{security_profile::ProfileType, LinuxContainerSecurityContext};
use serde_json::{json, Value};

/// The system calls the default profile refuses.
pub const DENIED: [&str; 52] = [
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "get_mempolicy",
    "init_module",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "sysfs",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
];

/// The in-tree RuntimeDefault profile (OCI `linux.seccomp`).
pub fn default_profile() -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
        "syscalls": [{
            "names": DENIED.to_vec(),
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1
        }]
    })
}

/// Which profile the security context asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Unconfined,
    RuntimeDefault,
    Localhost(String),
}

/// The choice from `seccomp` (or the deprecated `seccomp_profile_path`, which older kubelets
/// still send).
#[allow(deprecated)]
pub fn choice(sc: &LinuxContainerSecurityContext) -> Choice {
    if sc.privileged {
        return Choice::Unconfined;
    }
    if let Some(p) = &sc.seccomp {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Choice::RuntimeDefault,
            Ok(ProfileType::Localhost) => Choice::Localhost(p.localhost_ref.clone()),
            _ => Choice::Unconfined,
        };
    }
    match sc.seccomp_profile_path.as_str() {
        "runtime/default" | "docker/default" => Choice::RuntimeDefault,
        path if path.starts_with("localhost/") => {
            Choice::Localhost(path.trim_start_matches("localhost").to_string())
        }
        _ => Choice::Unconfined,
    }
}

/// The `linux.seccomp` value for `choice` (`None`: no filter); a Localhost file must exist and
/// hold JSON.
pub fn profile(choice: &Choice) -> Result<Option<Value>, String> {
    match choice {
        Choice::Unconfined => Ok(None),
        Choice::RuntimeDefault => Ok(Some(default_profile())),
        Choice::Localhost(path) => {
            let text = std::fs::read_to_string(Path::new(path))
                .map_err(|e| format!("seccomp profile {path}: {e}"))?;
            serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("seccomp profile {path}: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::SecurityProfile;

    #[test]
    #[allow(deprecated)]
    fn choices() {
        let mut sc = LinuxContainerSecurityContext::default();
        assert_eq!(choice(&sc), Choice::Unconfined, "absent means unconfined");
        sc.seccomp_profile_path = "runtime/default".into();
        assert_eq!(choice(&sc), Choice::RuntimeDefault);
        sc.seccomp = Some(SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: "/etc/p.json".into(),
        });
        assert_eq!(choice(&sc), Choice::Localhost("/etc/p.json".into()));
        sc.privileged = true;
        assert_eq!(choice(&sc), Choice::Unconfined);
    }

    #[test]
    fn profiles() {
        let p = profile(&Choice::RuntimeDefault).unwrap().unwrap();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ALLOW");
        assert!(p["syscalls"][0]["names"]
            .as_array()
            .unwrap()
            .contains(&json!("unshare")));
        assert!(profile(&Choice::Localhost("/nonexistent.json".into())).is_err());
        assert_eq!(profile(&Choice::Unconfined).unwrap(), None);
    }
}
