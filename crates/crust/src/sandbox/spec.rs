//! The OCI runtime spec of a pause container, built from the stored PodSandboxConfig.

use std::path::Path;

use cri_api::v1::{NamespaceMode, PodSandboxConfig};
use serde_json::{json, Value};

use super::record::NetworkMode;
use crate::config::RuntimeConfig;

/// Inputs besides the pod config.
#[derive(Debug, Clone)]
pub struct PauseSpecInput<'a> {
    pub rootfs: &'a Path,
    /// The pause command (`/pause`, or the sandbox image's entrypoint).
    pub args: &'a [String],
    pub network: NetworkMode,
    pub netns: Option<&'a Path>,
    pub shm: Option<&'a Path>,
    pub cgroups_path: &'a str,
    pub oom_score_adj: i32,
    pub sandbox_id: &'a str,
    /// The handler: which of the pod's own annotations its runtime may see.
    pub runtime: &'a RuntimeConfig,
}

const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// The spec as JSON (`config.json`).
pub fn pause_spec(config: &PodSandboxConfig, input: &PauseSpecInput<'_>) -> Value {
    let caps = json!(DEFAULT_CAPS);
    let (uid, gid) = run_as(config);
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": { "uid": uid, "gid": gid },
            "args": input.args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {
                "bounding": caps, "effective": caps, "permitted": caps
            },
            "noNewPrivileges": true,
            "oomScoreAdj": input.oom_score_adj,
        },
        "root": { "path": input.rootfs, "readonly": true },
        "mounts": mounts(input.shm),
        "linux": {
            "namespaces": namespaces(config, input),
            "cgroupsPath": input.cgroups_path,
            "resources": { "devices": [ { "allow": false, "access": "rwm" } ] },
            "sysctl": sysctls(config, input.network),
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                "/sys/firmware"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    if input.network != NetworkMode::Host && !config.hostname.is_empty() {
        spec["hostname"] = json!(config.hostname);
    }
    spec["annotations"] = annotations(config, input);
    spec
}

/// The pod's annotations the handler lets through (`pod_annotations`) plus the CRI ones naming it
/// as a sandbox, which runtimes such as runsc read (for the runtime only; the client's view of
/// its annotations is not changed).
fn annotations(config: &PodSandboxConfig, input: &PauseSpecInput<'_>) -> Value {
    use super::manager::{
        ANNOTATION_CONTAINER_TYPE, ANNOTATION_SANDBOX_ATTEMPT, ANNOTATION_SANDBOX_ID,
        ANNOTATION_SANDBOX_LOG_DIRECTORY, ANNOTATION_SANDBOX_NAME, ANNOTATION_SANDBOX_NAMESPACE,
        ANNOTATION_SANDBOX_UID,
    };
    let meta = config.metadata.clone().unwrap_or_default();
    let mut out: serde_json::Map<String, Value> = config
        .annotations
        .iter()
        .filter(|(k, _)| input.runtime.passes_annotation(k))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    for (k, v) in [
        (ANNOTATION_CONTAINER_TYPE, "sandbox".to_string()),
        (ANNOTATION_SANDBOX_ID, input.sandbox_id.to_string()),
        (
            ANNOTATION_SANDBOX_LOG_DIRECTORY,
            config.log_directory.clone(),
        ),
        (ANNOTATION_SANDBOX_NAME, meta.name),
        (ANNOTATION_SANDBOX_NAMESPACE, meta.namespace),
        (ANNOTATION_SANDBOX_UID, meta.uid),
        (ANNOTATION_SANDBOX_ATTEMPT, meta.attempt.to_string()),
    ] {
        out.insert(k.to_string(), json!(v));
    }
    Value::Object(out)
}

fn run_as(config: &PodSandboxConfig) -> (i64, i64) {
    let sc = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref());
    let uid = sc
        .and_then(|s| s.run_as_user.as_ref())
        .map_or(0, |v| v.value);
    let gid = sc
        .and_then(|s| s.run_as_group.as_ref())
        .map_or(0, |v| v.value);
    (uid, gid)
}

fn namespaces(config: &PodSandboxConfig, input: &PauseSpecInput<'_>) -> Value {
    let ns = super::validate::namespace_options(config);
    let (pid, ipc) = (ns.pid, ns.ipc);
    let mut list = vec![json!({ "type": "mount" })];
    if pid != NamespaceMode::Node as i32 {
        list.push(json!({ "type": "pid" }));
    }
    if ipc != NamespaceMode::Node as i32 {
        list.push(json!({ "type": "ipc" }));
    }
    if input.network != NetworkMode::Host {
        list.push(json!({ "type": "uts" }));
        match input.netns {
            Some(path) => list.push(json!({ "type": "network", "path": path })),
            None => list.push(json!({ "type": "network" })),
        }
    }
    Value::Array(list)
}

fn mounts(shm: Option<&Path>) -> Value {
    let shm_mount = match shm {
        Some(path) => json!({ "destination": "/dev/shm", "type": "bind", "source": path,
                              "options": ["rbind", "ro", "nosuid", "nodev", "noexec"] }),
        None => json!({ "destination": "/dev/shm", "type": "bind", "source": "/dev/shm",
                        "options": ["rbind", "nosuid", "nodev", "noexec"] }),
    };
    json!([
        { "destination": "/proc", "type": "proc", "source": "proc",
          "options": ["nosuid", "noexec", "nodev"] },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
          "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"] },
        shm_mount,
        { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
          "options": ["nosuid", "noexec", "nodev"] },
        { "destination": "/sys", "type": "sysfs", "source": "sysfs",
          "options": ["nosuid", "noexec", "nodev", "ro"] }
    ])
}

/// Pod sysctls; `net.*` ones are dropped for host-network pods (they would change the node).
fn sysctls(config: &PodSandboxConfig, mode: NetworkMode) -> Value {
    let Some(linux) = &config.linux else {
        return json!({});
    };
    let map: serde_json::Map<String, Value> = linux
        .sysctls
        .iter()
        .filter(|(k, _)| mode != NetworkMode::Host || !k.starts_with("net."))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::{LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceOption};

    fn host_pid_config() -> PodSandboxConfig {
        PodSandboxConfig {
            hostname: "h".into(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption {
                        network: NamespaceMode::Node as i32,
                        pid: NamespaceMode::Node as i32,
                        ipc: NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                sysctls: [
                    ("net.ipv4.ip_forward".to_string(), "1".to_string()),
                    ("kernel.shm_rmid_forced".to_string(), "1".to_string()),
                ]
                .into_iter()
                .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn types(spec: &Value) -> Vec<String> {
        spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn host_network_and_host_pid() {
        let pause_args = ["/pause".to_string()];
        let input = PauseSpecInput {
            rootfs: Path::new("/r"),
            args: &pause_args,
            network: NetworkMode::Host,
            netns: None,
            shm: Some(Path::new("/s/shm")),
            cgroups_path: "/crust/x",
            oom_score_adj: -998,
            sandbox_id: "x",
            runtime: &RuntimeConfig::runc(),
        };
        let spec = pause_spec(&host_pid_config(), &input);
        assert_eq!(types(&spec), vec!["mount", "ipc"]);
        assert!(spec.get("hostname").is_none());
        assert_eq!(spec["process"]["oomScoreAdj"], -998);
        assert_eq!(spec["linux"]["cgroupsPath"], "/crust/x");
        assert!(spec["linux"]["sysctl"].get("net.ipv4.ip_forward").is_none());
        assert_eq!(spec["linux"]["sysctl"]["kernel.shm_rmid_forced"], "1");
    }

    #[test]
    fn only_allowed_pod_annotations_reach_the_runtime() {
        let pause_args = ["/pause".to_string()];
        let allow = RuntimeConfig {
            pod_annotations: vec!["io.katacontainers.*".into()],
            ..Default::default()
        };
        let input = PauseSpecInput {
            rootfs: Path::new("/r"),
            args: &pause_args,
            network: NetworkMode::Host,
            netns: None,
            shm: None,
            cgroups_path: "/crust/x",
            oom_score_adj: 0,
            sandbox_id: "abc",
            runtime: &allow,
        };
        let mut config = PodSandboxConfig::default();
        config
            .annotations
            .insert("io.katacontainers.config.x".into(), "1".into());
        config
            .annotations
            .insert("example.com/secret-ish".into(), "2".into());
        let spec = pause_spec(&config, &input);
        let a = &spec["annotations"];
        assert_eq!(a["io.katacontainers.config.x"], "1");
        assert!(a.get("example.com/secret-ish").is_none(), "{a}");
        assert_eq!(a["io.kubernetes.cri.container-type"], "sandbox");
        assert_eq!(a["io.kubernetes.cri.sandbox-id"], "abc");
    }

    #[test]
    fn pod_network_joins_the_pinned_netns() {
        let pause_args = ["/pause".to_string()];
        let input = PauseSpecInput {
            rootfs: Path::new("/r"),
            args: &pause_args,
            network: NetworkMode::Cni,
            netns: Some(Path::new("/run/crust/netns/x")),
            shm: None,
            cgroups_path: "/crust/x",
            oom_score_adj: 0,
            sandbox_id: "x",
            runtime: &RuntimeConfig {
                pod_annotations: vec!["mine/".into()],
                ..Default::default()
            },
        };
        let spec = pause_spec(
            &PodSandboxConfig {
                hostname: "h".into(),
                ..Default::default()
            },
            &input,
        );
        assert_eq!(types(&spec), vec!["mount", "pid", "ipc", "uts", "network"]);
        assert_eq!(spec["linux"]["namespaces"][4]["path"], "/run/crust/netns/x");
        assert_eq!(spec["hostname"], "h");
        assert_eq!(spec["annotations"]["io.kubernetes.cri.sandbox-id"], "x");
    }
}
