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

/// The most of a Localhost profile file that is read.
pub const PROFILE_LIMIT: u64 = 1 << 20;

const ACTIONS: [&str; 10] = [
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_KILL_ALL",
];

fn localhost(path: &str, what: &str) -> Result<Choice, String> {
    if !Path::new(path).is_absolute() {
        return Err(format!("{what} {path:?} must be an absolute path"));
    }
    Ok(Choice::Localhost(path.to_string()))
}

/// The choice from `seccomp` (or the deprecated `seccomp_profile_path`, which older kubelets
/// still send). A value outside the enum or the known path forms is an error naming it: a typo
/// never drops the filter. Privileged containers run unconfined (once the request is valid).
#[allow(deprecated)]
pub fn choice(sc: &LinuxContainerSecurityContext) -> Result<Choice, String> {
    let chosen = if let Some(p) = &sc.seccomp {
        match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::RuntimeDefault) => Choice::RuntimeDefault,
            Ok(ProfileType::Unconfined) => Choice::Unconfined,
            Ok(ProfileType::Localhost) => localhost(&p.localhost_ref, "localhost_ref")?,
            Err(_) => {
                return Err(format!(
                    "profile_type {} is not a ProfileType",
                    p.profile_type
                ))
            }
        }
    } else {
        match sc.seccomp_profile_path.as_str() {
            "" | "unconfined" => Choice::Unconfined,
            "runtime/default" | "docker/default" => Choice::RuntimeDefault,
            path => match path.strip_prefix("localhost/") {
                Some(file) => localhost(file, "seccomp_profile_path")?,
                None => {
                    return Err(format!(
                        "seccomp_profile_path {path:?} is none of \"\", \"unconfined\", \"runtime/default\", \"docker/default\", \"localhost/<absolute path>\""
                    ))
                }
            },
        }
    };
    Ok(if sc.privileged {
        Choice::Unconfined
    } else {
        chosen
    })
}

/// Checks that `v` has the shape of an OCI `linux.seccomp` profile.
fn check_profile(v: &Value) -> Result<(), String> {
    let action_ok = |a: &Value| a.as_str().is_some_and(|a| ACTIONS.contains(&a));
    let obj = v.as_object().ok_or("is not a JSON object")?;
    if !obj.get("defaultAction").is_some_and(action_ok) {
        return Err(format!(
            "defaultAction {} is not a seccomp action",
            obj.get("defaultAction").unwrap_or(&Value::Null)
        ));
    }
    let strings = |a: &Value| a.as_array().is_some_and(|a| a.iter().all(Value::is_string));
    if obj.get("architectures").is_some_and(|a| !strings(a)) {
        return Err("architectures is not an array of strings".into());
    }
    let rules = match obj.get("syscalls") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(rules)) => rules,
        Some(_) => return Err("syscalls is not an array".into()),
    };
    for (i, rule) in rules.iter().enumerate() {
        if !rule.get("names").is_some_and(strings) {
            return Err(format!("syscalls[{i}].names is not an array of strings"));
        }
        if !rule.get("action").is_some_and(action_ok) {
            return Err(format!("syscalls[{i}].action is not a seccomp action"));
        }
    }
    Ok(())
}

/// The `linux.seccomp` value for `choice` (`None`: no filter). A Localhost file must be a
/// regular file of at most [`PROFILE_LIMIT`] bytes holding an OCI seccomp profile. Blocking.
pub fn profile(choice: &Choice) -> Result<Option<Value>, String> {
    match choice {
        Choice::Unconfined => Ok(None),
        Choice::RuntimeDefault => Ok(Some(default_profile())),
        Choice::Localhost(path) => {
            let bytes = crate::safe_fs::read_regular(Path::new(path), PROFILE_LIMIT)
                .map_err(|e| format!("seccomp profile {e}"))?;
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("seccomp profile {path}: {e}"))?;
            check_profile(&value).map_err(|e| format!("seccomp profile {path}: {e}"))?;
            Ok(Some(value))
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
        assert_eq!(
            choice(&sc),
            Ok(Choice::Unconfined),
            "absent means unconfined"
        );
        sc.seccomp_profile_path = "runtime/default".into();
        assert_eq!(choice(&sc), Ok(Choice::RuntimeDefault));
        sc.seccomp_profile_path = "localhost//etc/old.json".into();
        assert_eq!(choice(&sc), Ok(Choice::Localhost("/etc/old.json".into())));
        sc.seccomp = Some(SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: "/etc/p.json".into(),
        });
        assert_eq!(choice(&sc), Ok(Choice::Localhost("/etc/p.json".into())));
        sc.privileged = true;
        assert_eq!(choice(&sc), Ok(Choice::Unconfined));
    }

    #[test]
    #[allow(deprecated)]
    fn typos_are_errors_not_unconfined() {
        for path in [
            "runtime/defualt",
            "localhost/rel.json",
            "Unconfined",
            "docker",
        ] {
            let sc = LinuxContainerSecurityContext {
                seccomp_profile_path: path.into(),
                ..Default::default()
            };
            let e = choice(&sc).unwrap_err();
            assert!(
                e.contains(path.trim_start_matches("localhost/")),
                "{path}: {e}"
            );
        }
        let mut sc = LinuxContainerSecurityContext {
            seccomp: Some(SecurityProfile {
                profile_type: 77,
                localhost_ref: String::new(),
            }),
            privileged: true,
            ..Default::default()
        };
        assert!(choice(&sc).unwrap_err().contains("77"));
        sc.seccomp = Some(SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: "profiles/p.json".into(),
        });
        assert!(choice(&sc).unwrap_err().contains("profiles/p.json"));
    }

    #[test]
    fn localhost_files_are_bounded_and_checked() {
        let e = profile(&Choice::Localhost("/dev/zero".into())).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            profile(&Choice::Localhost(file.display().to_string()))
        };
        assert!(load(r#"{"names": []}"#)
            .unwrap_err()
            .contains("defaultAction"));
        assert!(load(r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": "x", "action": "SCMP_ACT_ERRNO"}]}"#)
            .unwrap_err()
            .contains("syscalls[0].names"));
        assert!(load(r#"[1]"#).unwrap_err().contains("object"));
        let ok = load(
            r#"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}"#,
        );
        assert!(ok.unwrap().is_some());
        std::fs::write(&file, vec![b' '; PROFILE_LIMIT as usize + 1]).unwrap();
        assert!(profile(&Choice::Localhost(file.display().to_string()))
            .unwrap_err()
            .contains("larger"));
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
