//! CRI ContainerConfig -> OCI runtime spec: the image config merged as kubelet expects (command,
//! args, env, working dir, user), the pod's namespaces joined through the pause process, the pod's
//! /etc/hosts, /etc/resolv.conf, /etc/hostname and /dev/shm, mounts, security context and linux
//! resources.

use std::path::Path;

use cri_api::v1::{
    ContainerConfig, LinuxContainerSecurityContext, MountPropagation, NamespaceMode,
    PodSandboxConfig,
};
use serde_json::{json, Value};

const MASKED: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];
const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What the spec needs besides the container config.
#[derive(Debug, Clone)]
pub struct SpecInput<'a> {
    pub rootfs: &'a Path,
    pub image_config: &'a Value,
    pub pod: &'a PodSandboxConfig,
    /// What holds the pod's namespaces the container joins.
    pub pod_ns: PodNamespaces<'a>,
    /// The pod's pinned netns (pod network), if any.
    pub netns: Option<&'a Path>,
    pub hosts: &'a Path,
    pub resolv_conf: &'a Path,
    pub hostname: &'a Path,
    /// The pod's shm tmpfs, unless the pod shares the host IPC namespace.
    pub shm: Option<&'a Path>,
    pub cgroups_path: &'a str,
    /// uid, gid and additional gids resolved from the image's passwd/group.
    pub user: &'a ResolvedUser,
    /// The pid of the target container's init for `namespace_options.pid = TARGET`.
    pub target_pid: Option<i32>,
    /// `linux.seccomp` (none: unconfined).
    pub seccomp: Option<&'a Value>,
    /// `linux.devices` and their cgroup rules (from the host's device nodes).
    pub devices: &'a [Device],
    /// The process's capabilities (bounding, effective, permitted), from [`super::caps`].
    pub caps: &'a [String],
    /// The source of each of the config's mounts (its host path, or an image volume's path);
    /// a mount without an entry uses its host path.
    pub mount_sources: &'a [std::path::PathBuf],
}

pub use super::devices::Device;

/// Where a pod's namespaces are: a pause process's, or pinned files.
#[derive(Debug, Clone, Copy)]
pub enum PodNamespaces<'a> {
    Pause(i32),
    Pinned {
        ipc: Option<&'a Path>,
        uts: Option<&'a Path>,
    },
}

impl PodNamespaces<'_> {
    /// The pod's namespace of `kind` (`ipc`, `uts`, `pid`, `net`); `None` when the pod has none.
    fn path(&self, kind: &str) -> Option<String> {
        match self {
            PodNamespaces::Pause(pid) => Some(format!("/proc/{pid}/ns/{kind}")),
            PodNamespaces::Pinned { ipc, uts } => match kind {
                "ipc" => *ipc,
                "uts" => *uts,
                _ => None,
            }
            .map(|p| p.display().to_string()),
        }
    }
}

/// The process identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
}

/// The command line kubelet expects: CRI command replaces the image Entrypoint, CRI args replace
/// the image Cmd.
pub fn command_line(config: &ContainerConfig, image: &Value) -> Vec<String> {
    let strings = |key: &str| config_strings(image, key);
    let mut out = if config.command.is_empty() {
        strings("Entrypoint")
    } else {
        config.command.clone()
    };
    if !config.args.is_empty() {
        out.extend(config.args.iter().cloned());
    } else if config.command.is_empty() {
        out.extend(strings("Cmd"));
    }
    out
}

/// The string array `config.<key>` of an image config (Entrypoint, Cmd, Env); empty if absent.
pub fn config_strings(image: &Value, key: &str) -> Vec<String> {
    image["config"][key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Image Env, overridden and extended by the config's envs (by key).
pub fn environment(config: &ContainerConfig, image: &Value) -> Vec<String> {
    let mut env = config_strings(image, "Env");
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for kv in &config.envs {
        let prefix = format!("{}=", kv.key);
        env.retain(|e| !e.starts_with(&prefix));
        env.push(format!("{}={}", kv.key, String::from_utf8_lossy(&kv.value)));
    }
    env
}

fn security(config: &ContainerConfig) -> LinuxContainerSecurityContext {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .unwrap_or_default()
}

fn pod_ns_mode(pod: &PodSandboxConfig) -> (i32, i32, i32) {
    let ns = pod
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
        .unwrap_or_default();
    (ns.network, ns.pid, ns.ipc)
}

fn namespaces(config: &ContainerConfig, input: &SpecInput<'_>) -> Vec<Value> {
    let pod = |kind: &str| input.pod_ns.path(kind);
    // A namespace the pod should have but does not: a new one (never the node's).
    let join = |kind: &str, path: Option<String>| match path {
        Some(path) => json!({"type": kind, "path": path}),
        None => json!({"type": kind}),
    };
    let (pod_net, _, pod_ipc) = pod_ns_mode(input.pod);
    let mut out = vec![json!({"type": "mount"})];
    if pod_net != NamespaceMode::Node as i32 {
        let net = input
            .netns
            .map(|p| p.display().to_string())
            .or_else(|| pod("net"));
        out.push(join("network", net));
        out.push(join("uts", pod("uts")));
    }
    if pod_ipc != NamespaceMode::Node as i32 {
        out.push(join("ipc", pod("ipc")));
    }
    let pid_mode = security(config)
        .namespace_options
        .map_or(NamespaceMode::Container as i32, |n| n.pid);
    match NamespaceMode::try_from(pid_mode).unwrap_or(NamespaceMode::Container) {
        NamespaceMode::Node => {}
        NamespaceMode::Pod => out.push(join("pid", pod("pid"))),
        NamespaceMode::Target => match input.target_pid {
            Some(pid) => out.push(json!({"type": "pid", "path": format!("/proc/{pid}/ns/pid")})),
            None => out.push(json!({"type": "pid"})),
        },
        NamespaceMode::Container => out.push(json!({"type": "pid"})),
    }
    out
}

fn propagation(p: i32) -> &'static str {
    match MountPropagation::try_from(p).unwrap_or(MountPropagation::PropagationPrivate) {
        MountPropagation::PropagationPrivate => "rprivate",
        MountPropagation::PropagationHostToContainer => "rslave",
        MountPropagation::PropagationBidirectional => "rshared",
    }
}

fn mounts(config: &ContainerConfig, input: &SpecInput<'_>, privileged: bool) -> Vec<Value> {
    let sys_opts = if privileged {
        json!(["nosuid", "noexec", "nodev"])
    } else {
        json!(["nosuid", "noexec", "nodev", "ro"])
    };
    let mut out = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    let destinations: Vec<&str> = config
        .mounts
        .iter()
        .map(|m| m.container_path.as_str())
        .collect();
    let pod_file = |dest: &str, src: &Path| json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate", "rw"]});
    for (dest, src) in [
        ("/etc/hosts", input.hosts),
        ("/etc/resolv.conf", input.resolv_conf),
        ("/etc/hostname", input.hostname),
    ] {
        if !destinations.contains(&dest) {
            out.push(pod_file(dest, src));
        }
    }
    if !destinations.contains(&"/dev/shm") {
        out.push(match input.shm {
            Some(shm) => json!({"destination": "/dev/shm", "type": "bind", "source": shm, "options": ["rbind", "rprivate", "rw"]}),
            None => json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate", "rw"]}),
        });
    }
    for (i, m) in config.mounts.iter().enumerate() {
        let source = input
            .mount_sources
            .get(i)
            .map_or_else(|| m.host_path.clone(), |p| p.display().to_string());
        // Image volumes are read-only whatever the mount says.
        let image = m.image.as_ref().is_some_and(|i| !i.image.is_empty());
        let mode = if m.readonly || image { "ro" } else { "rw" };
        let mut options = vec!["rbind", propagation(m.propagation), mode];
        if m.recursive_read_only {
            options.push("rro"); // every submount read-only too (mount_setattr, runc's `rro`)
        }
        out.push(json!({
            "destination": m.container_path,
            "type": "bind",
            "source": source,
            "options": options,
        }));
    }
    out
}

/// The rootfs propagation that lets the mounts' propagation work (as containerd sets it): a
/// bidirectional mount needs a shared rootfs, a host-to-container one a slave (or shared) one.
fn rootfs_propagation(config: &ContainerConfig) -> Option<&'static str> {
    let has = |p: MountPropagation| config.mounts.iter().any(|m| m.propagation == p as i32);
    if has(MountPropagation::PropagationBidirectional) {
        Some("rshared")
    } else if has(MountPropagation::PropagationHostToContainer) {
        Some("rslave")
    } else {
        None
    }
}

/// OCI LinuxResources of the config (devices rule included).
pub fn resources(config: &ContainerConfig) -> Value {
    let mut res = json!({"devices": [{"allow": false, "access": "rwm"}]});
    let Some(r) = config.linux.as_ref().and_then(|l| l.resources.as_ref()) else {
        return res;
    };
    let mut cpu = serde_json::Map::new();
    if r.cpu_shares > 0 {
        cpu.insert("shares".into(), json!(r.cpu_shares));
    }
    if r.cpu_quota != 0 {
        cpu.insert("quota".into(), json!(r.cpu_quota));
    }
    if r.cpu_period > 0 {
        cpu.insert("period".into(), json!(r.cpu_period));
    }
    if !r.cpuset_cpus.is_empty() {
        cpu.insert("cpus".into(), json!(r.cpuset_cpus));
    }
    if !r.cpuset_mems.is_empty() {
        cpu.insert("mems".into(), json!(r.cpuset_mems));
    }
    if !cpu.is_empty() {
        res["cpu"] = Value::Object(cpu);
    }
    if r.memory_limit_in_bytes > 0 {
        res["memory"] = json!({"limit": r.memory_limit_in_bytes});
    }
    res
}

/// The container spec's annotations: the pod's that the handler lets through (`pod_annotations`)
/// and the CRI ones containerd writes, which runtimes use to group a pod's containers into one
/// sandbox (runsc, Kata: `container-type` and `sandbox-id`).
pub fn annotations(
    record: &crate::container::record::ContainerRecord,
    pod: &crate::sandbox::record::SandboxRecord,
    handler: &crate::config::RuntimeConfig,
) -> Value {
    use crate::sandbox::manager::{
        ANNOTATION_CONTAINER_TYPE, ANNOTATION_SANDBOX_ID, ANNOTATION_SANDBOX_NAME,
        ANNOTATION_SANDBOX_NAMESPACE, ANNOTATION_SANDBOX_UID,
    };
    let meta = pod.config.metadata.clone().unwrap_or_default();
    let mut out: serde_json::Map<String, Value> = pod
        .config
        .annotations
        .iter()
        .filter(|(k, _)| handler.passes_annotation(k))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let name = record.config.metadata.as_ref().map(|m| m.name.clone());
    for (k, v) in [
        (ANNOTATION_CONTAINER_TYPE, "container".to_string()),
        (ANNOTATION_CONTAINER_NAME, name.unwrap_or_default()),
        (ANNOTATION_SANDBOX_ID, pod.id.clone()),
        (ANNOTATION_SANDBOX_NAME, meta.name),
        (ANNOTATION_SANDBOX_NAMESPACE, meta.namespace),
        (ANNOTATION_SANDBOX_UID, meta.uid),
        (ANNOTATION_IMAGE_NAME, record.image.clone()),
    ] {
        out.insert(k.to_string(), json!(v));
    }
    Value::Object(out)
}

/// The container's name (CRI metadata), for the runtime.
pub const ANNOTATION_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
/// The image the container was created from, as the client named it.
pub const ANNOTATION_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";

/// The whole spec as JSON (`config.json`).
pub fn container_spec(config: &ContainerConfig, input: &SpecInput<'_>) -> Value {
    let sc = security(config);
    let privileged = sc.privileged;
    let caps = input.caps;
    let cwd = if !config.working_dir.is_empty() {
        config.working_dir.clone()
    } else {
        input.image_config["config"]["WorkingDir"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    };
    let oom = config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .map_or(0, |r| r.oom_score_adj);
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": config.tty,
            "user": {
                "uid": input.user.uid,
                "gid": input.user.gid,
                "additionalGids": input.user.additional_gids,
            },
            "args": command_line(config, input.image_config),
            "env": environment(config, input.image_config),
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": sc.no_new_privs,
            "oomScoreAdj": oom,
        },
        "root": {"path": input.rootfs, "readonly": sc.readonly_rootfs},
        "mounts": mounts(config, input, privileged),
        "linux": {
            "namespaces": namespaces(config, input),
            "cgroupsPath": input.cgroups_path,
            "resources": resources(config),
        }
    });
    if !privileged {
        let masked: Vec<String> = if sc.masked_paths.is_empty() {
            MASKED.iter().map(|s| s.to_string()).collect()
        } else {
            sc.masked_paths.clone()
        };
        let readonly: Vec<String> = if sc.readonly_paths.is_empty() {
            READONLY.iter().map(|s| s.to_string()).collect()
        } else {
            sc.readonly_paths.clone()
        };
        spec["linux"]["maskedPaths"] = json!(masked);
        spec["linux"]["readonlyPaths"] = json!(readonly);
    } else {
        spec["linux"]["resources"]["devices"] = json!([{"allow": true, "access": "rwm"}]);
    }
    if let Some(p) = rootfs_propagation(config) {
        spec["linux"]["rootfsPropagation"] = json!(p);
    }
    if let Some(profile) = input.seccomp {
        spec["linux"]["seccomp"] = profile.clone();
    }
    if !input.devices.is_empty() {
        let nodes: Vec<Value> = input
            .devices
            .iter()
            .map(|d| {
                json!({
                    "path": d.container_path, "type": d.kind.to_string(), "major": d.major,
                    "minor": d.minor, "fileMode": d.file_mode, "uid": 0, "gid": 0,
                })
            })
            .collect();
        spec["linux"]["devices"] = json!(nodes);
        if let Some(rules) = spec["linux"]["resources"]["devices"].as_array_mut() {
            rules.extend(input.devices.iter().map(|d| {
                json!({
                    "allow": true, "type": d.kind.to_string(), "major": d.major, "minor": d.minor,
                    "access": d.access,
                })
            }));
        }
    }
    let sysctls = input
        .pod
        .linux
        .as_ref()
        .map(|l| l.sysctls.clone())
        .unwrap_or_default();
    if !sysctls.is_empty() {
        spec["linux"]["sysctl"] = json!(sysctls);
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::{KeyValue, LinuxContainerConfig, Mount};

    fn image() -> Value {
        json!({"config": {"Entrypoint": ["/ep"], "Cmd": ["c1", "c2"], "Env": ["A=1", "PATH=/x"], "WorkingDir": "/w"}})
    }

    #[test]
    fn command_merges_as_kubelet_does() {
        let mut c = ContainerConfig::default();
        assert_eq!(command_line(&c, &image()), ["/ep", "c1", "c2"]);
        c.args = vec!["a".into()];
        assert_eq!(command_line(&c, &image()), ["/ep", "a"]);
        c.command = vec!["/bin/sh".into()];
        assert_eq!(command_line(&c, &image()), ["/bin/sh", "a"]);
        c.args.clear();
        assert_eq!(command_line(&c, &image()), ["/bin/sh"]);
    }

    #[test]
    fn env_overrides_by_key() {
        let c = ContainerConfig {
            envs: vec![KeyValue {
                key: "A".into(),
                value: "2".into(),
            }],
            ..Default::default()
        };
        assert_eq!(environment(&c, &image()), ["PATH=/x", "A=2"]);
        assert!(environment(&c, &json!({}))[0].starts_with("PATH=/usr/local/sbin"));
    }

    fn input_for<'a>(
        pod: &'a PodSandboxConfig,
        user: &'a ResolvedUser,
        image: &'a Value,
    ) -> SpecInput<'a> {
        SpecInput {
            rootfs: Path::new("/r"),
            image_config: image,
            pod,
            pod_ns: PodNamespaces::Pause(7),
            netns: None,
            hosts: Path::new("/p/hosts"),
            resolv_conf: Path::new("/p/resolv.conf"),
            hostname: Path::new("/p/hostname"),
            shm: None,
            cgroups_path: "/crust/c",
            user,
            target_pid: Some(99),
            seccomp: None,
            devices: &[],
            caps: &CAPS,
            mount_sources: &[],
        }
    }

    static CAPS: [String; 0] = [];

    fn with_sc(sc: LinuxContainerSecurityContext) -> ContainerConfig {
        ContainerConfig {
            linux: Some(LinuxContainerConfig {
                security_context: Some(sc),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn security_context_fields_one_by_one() {
        let (pod, user, image) = (
            PodSandboxConfig::default(),
            ResolvedUser {
                uid: 5,
                gid: 6,
                additional_gids: vec![7],
            },
            json!({}),
        );
        let input = input_for(&pod, &user, &image);
        let plain = container_spec(&with_sc(Default::default()), &input);
        assert_eq!(plain["process"]["noNewPrivileges"], false);
        assert_eq!(
            plain["process"]["user"],
            json!({"uid": 5, "gid": 6, "additionalGids": [7]})
        );
        assert_eq!(plain["root"]["readonly"], false);
        assert_eq!(plain["linux"]["readonlyPaths"][0], "/proc/bus");
        assert_eq!(
            plain["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}])
        );
        let nnp = container_spec(
            &with_sc(LinuxContainerSecurityContext {
                no_new_privs: true,
                ..Default::default()
            }),
            &input,
        );
        assert_eq!(nnp["process"]["noNewPrivileges"], true);
        let paths = container_spec(
            &with_sc(LinuxContainerSecurityContext {
                masked_paths: vec!["/proc/x".into()],
                readonly_paths: vec!["/proc/y".into()],
                ..Default::default()
            }),
            &input,
        );
        assert_eq!(paths["linux"]["maskedPaths"], json!(["/proc/x"]));
        assert_eq!(paths["linux"]["readonlyPaths"], json!(["/proc/y"]));
        let privileged = container_spec(
            &with_sc(LinuxContainerSecurityContext {
                privileged: true,
                ..Default::default()
            }),
            &input,
        );
        assert!(privileged["linux"].get("maskedPaths").is_none());
        assert_eq!(
            privileged["linux"]["resources"]["devices"],
            json!([{"allow": true, "access": "rwm"}])
        );
        let sys = privileged["mounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["destination"] == "/sys")
            .unwrap()
            .clone();
        assert!(
            !sys["options"].as_array().unwrap().contains(&json!("ro")),
            "privileged: /sys writable"
        );
        let caps = ["CAP_SYS_ADMIN".to_string()];
        let with_caps = SpecInput {
            caps: &caps,
            ..input.clone()
        };
        let spec = container_spec(&with_sc(Default::default()), &with_caps);
        assert_eq!(spec["process"]["capabilities"]["bounding"], json!(caps));
        let target = container_spec(
            &with_sc(LinuxContainerSecurityContext {
                namespace_options: Some(cri_api::v1::NamespaceOption {
                    pid: NamespaceMode::Target as i32,
                    target_id: "t".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            &input,
        );
        assert!(target["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "pid", "path": "/proc/99/ns/pid"})));
    }

    #[test]
    fn sysctls_resources_devices_and_seccomp() {
        let pod = PodSandboxConfig {
            linux: Some(cri_api::v1::LinuxPodSandboxConfig {
                sysctls: [("net.core.somaxconn".to_string(), "1024".to_string())].into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (user, image) = (ResolvedUser::default(), json!({}));
        let devices = [Device {
            container_path: "/dev/mine".into(),
            kind: 'c',
            major: 1,
            minor: 3,
            file_mode: 0o666,
            access: "rw".into(),
        }];
        let profile = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        let mut input = input_for(&pod, &user, &image);
        input.devices = &devices;
        input.seccomp = Some(&profile);
        let config = ContainerConfig {
            linux: Some(LinuxContainerConfig {
                resources: Some(cri_api::v1::LinuxContainerResources {
                    cpu_shares: 512,
                    cpu_quota: 50_000,
                    cpu_period: 100_000,
                    memory_limit_in_bytes: 1 << 26,
                    oom_score_adj: 500,
                    cpuset_cpus: "0".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let spec = container_spec(&config, &input);
        assert_eq!(spec["linux"]["sysctl"]["net.core.somaxconn"], "1024");
        assert_eq!(
            spec["linux"]["resources"]["cpu"],
            json!({"shares": 512, "quota": 50000, "period": 100000, "cpus": "0"})
        );
        assert_eq!(spec["linux"]["resources"]["memory"]["limit"], 1 << 26);
        assert_eq!(spec["process"]["oomScoreAdj"], 500);
        assert_eq!(spec["linux"]["devices"][0]["path"], "/dev/mine");
        assert!(spec["linux"]["resources"]["devices"]
            .as_array()
            .unwrap()
            .contains(
                &json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"})
            ));
        assert_eq!(spec["linux"]["seccomp"], profile);
        let ns = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(
            ns.contains(&json!({"type": "network", "path": "/proc/7/ns/net"})),
            "no netns pinned: the pause's"
        );
    }

    #[test]
    fn joins_the_pod_and_mounts_its_files() {
        let user = ResolvedUser::default();
        let pod = PodSandboxConfig::default();
        let input = SpecInput {
            rootfs: Path::new("/r"),
            image_config: &json!({}),
            pod: &pod,
            pod_ns: PodNamespaces::Pause(42),
            netns: Some(Path::new("/run/crust/netns/p")),
            hosts: Path::new("/p/hosts"),
            resolv_conf: Path::new("/p/resolv.conf"),
            hostname: Path::new("/p/hostname"),
            shm: Some(Path::new("/s/shm")),
            cgroups_path: "/crust/c",
            user: &user,
            target_pid: None,
            seccomp: None,
            devices: &[],
            caps: &[],
            mount_sources: &[],
        };
        let config = ContainerConfig {
            linux: Some(LinuxContainerConfig {
                security_context: Some(LinuxContainerSecurityContext {
                    readonly_rootfs: true,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            mounts: vec![Mount {
                container_path: "/data".into(),
                host_path: "/host/data".into(),
                readonly: true,
                propagation: MountPropagation::PropagationHostToContainer as i32,
                ..Default::default()
            }],
            ..Default::default()
        };
        let spec = container_spec(&config, &input);
        let ns = spec["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/run/crust/netns/p"})));
        assert!(ns.contains(&json!({"type": "ipc", "path": "/proc/42/ns/ipc"})));
        assert!(ns.contains(&json!({"type": "pid"})));
        assert_eq!(spec["root"]["readonly"], true);
        let mounts = spec["mounts"].as_array().unwrap();
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/etc/resolv.conf" && m["source"] == "/p/resolv.conf"));
        assert!(mounts
            .iter()
            .any(|m| m["destination"] == "/dev/shm" && m["source"] == "/s/shm"));
        let data = mounts.iter().find(|m| m["destination"] == "/data").unwrap();
        assert_eq!(data["options"], json!(["rbind", "rslave", "ro"]));
        assert_eq!(spec["linux"]["rootfsPropagation"], "rslave");
        assert_eq!(spec["linux"]["maskedPaths"][0], "/proc/acpi");
        assert_eq!(spec["linux"]["cgroupsPath"], "/crust/c");
    }
}
