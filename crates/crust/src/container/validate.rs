//! CreateContainer's and ExecSync's checks of what the client sent, before any side effect, so
//! a caller's mistake is InvalidArgument (or FailedPrecondition for the host's state) naming the
//! field instead of runc's text as INTERNAL: the pod guards, mounts (paths, `/proc`,
//! propagation against the host mount's own propagation), resources within what the kernel
//! accepts, supplemental groups, and exec argv within the kernel's limits.

use std::path::{Component, Path};

use cri_api::v1::{
    ContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext, Mount,
    MountPropagation, NamespaceMode,
};

use super::ContainerError;
use crate::{mountinfo, sandbox::record::SandboxRecord};

/// The smallest memory limit accepted (Docker's floor; below it runc cannot even start).
pub const MIN_MEMORY_BYTES: i64 = 6 << 20;
/// The kernel's NGROUPS_MAX.
pub const MAX_GROUPS: usize = 65536;
/// The kernel's MAX_ARG_STRLEN (32 pages): the longest single argument execve takes.
pub const MAX_ARG_BYTES: usize = 32 * 4096;

/// Files under /proc that runc lets a bind mount cover (lxcfs-style), as runc lists them.
const PROC_FILES: [&str; 10] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
    "/proc/sys/kernel/ns_last_pid",
];

pub(super) fn invalid(field: &'static str, reason: impl Into<String>) -> ContainerError {
    ContainerError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

/// Everything CreateContainer checks without touching the host.
pub fn check_config(pod: &SandboxRecord, config: &ContainerConfig) -> Result<(), ContainerError> {
    check_guards(pod, config)?;
    check_security(config)?;
    check_envs(config)?;
    for m in &config.mounts {
        check_mount(m)?;
    }
    if let Some(r) = config.linux.as_ref().and_then(|l| l.resources.as_ref()) {
        check_resources(
            r,
            &online("/sys/devices/system/cpu/online"),
            &online_nodes(),
        )?;
    }
    let groups = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .map_or(0, |s| s.supplemental_groups.len());
    if groups > MAX_GROUPS {
        return Err(invalid(
            "config.linux.security_context.supplemental_groups",
            format!("{groups} groups, the kernel allows at most {MAX_GROUPS}"),
        ));
    }
    Ok(())
}

/// The pod and identity guards (issue #5 §3).
fn check_guards(pod: &SandboxRecord, config: &ContainerConfig) -> Result<(), ContainerError> {
    let sc = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .unwrap_or_default();
    let pod_privileged = pod
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .is_some_and(|s| s.privileged);
    if sc.privileged && !pod_privileged {
        return Err(invalid(
            "config.linux.security_context.privileged",
            "a privileged container needs a privileged pod sandbox",
        ));
    }
    let pod_pid = sc
        .namespace_options
        .as_ref()
        .is_some_and(|n| n.pid == cri_api::v1::NamespaceMode::Pod as i32);
    if pod_pid && pod.sandbox.is_pinned() {
        return Err(ContainerError::Precondition {
            field: "config.linux.security_context.namespace_options.pid",
            reason: format!(
                "pod {} has no pod-wide PID namespace (it was created without one, so it has no pause process to hold it)",
                pod.id
            ),
        });
    }
    if sc.run_as_group.is_some() && sc.run_as_user.is_none() && sc.run_as_username.is_empty() {
        return Err(invalid(
            "config.linux.security_context.run_as_group",
            "run_as_group needs run_as_user or run_as_username",
        ));
    }
    let rel = Path::new(&config.log_path);
    if rel.is_absolute() || rel.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(
            "config.log_path",
            format!(
                "{:?} must stay inside the pod's log directory",
                config.log_path
            ),
        ));
    }
    if !pod.config.log_directory.is_empty() && !Path::new(&pod.config.log_directory).is_absolute() {
        return Err(invalid("pod log_directory", "must be absolute"));
    }
    Ok(())
}

/// The security context's enums, seccomp choice and capabilities (typos are errors, never a
/// silently dropped filter or capability).
fn check_security(config: &ContainerConfig) -> Result<(), ContainerError> {
    let sc = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .unwrap_or_default();
    super::seccomp::choice(&sc).map_err(|r| invalid("config.linux.security_context.seccomp", r))?;
    apparmor_profile(&sc)?;
    super::caps::capabilities(&sc, super::caps::host_bounding_set())
        .map_err(|r| invalid("config.linux.security_context.capabilities", r))?;
    if let Some(ns) = &sc.namespace_options {
        for (name, mode) in [("network", ns.network), ("pid", ns.pid), ("ipc", ns.ipc)] {
            if NamespaceMode::try_from(mode).is_err() {
                return Err(invalid(
                    "config.linux.security_context.namespace_options",
                    format!("{name} = {mode} is not a NamespaceMode"),
                ));
            }
        }
        if ns.pid == NamespaceMode::Target as i32 && ns.target_id.is_empty() {
            return Err(invalid(
                "config.linux.security_context.namespace_options.target_id",
                "is required with pid = TARGET",
            ));
        }
    }
    Ok(())
}

/// The container's log file below the pod's log directory must not go through a symlink and
/// must be a regular file if it exists (crust-shim opens it the same way, without following
/// symlinks); what does not exist yet is made by the shim. Touches the host: blocking.
pub fn check_log_target(log_dir: &str, log_path: &str) -> Result<(), ContainerError> {
    let Ok(rel) = Path::new(log_path).strip_prefix(log_dir) else {
        return Ok(()); // no log (the pod has no log directory)
    };
    let mut at = Path::new(log_dir).to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let Ok(meta) = std::fs::symlink_metadata(&at) else {
            return Ok(());
        };
        let last = i + 1 == parts.len();
        let bad = if meta.file_type().is_symlink() {
            Some("is a symlink")
        } else if last && !meta.is_file() {
            Some("is not a regular file")
        } else {
            None
        };
        if let Some(why) = bad {
            return Err(ContainerError::Precondition {
                field: "config.log_path",
                reason: format!("{} {why}: logs are not written through it", at.display()),
            });
        }
    }
    Ok(())
}

/// The `process.apparmorProfile` the context asks for (see [`super::apparmor`]).
pub fn apparmor_profile(
    sc: &LinuxContainerSecurityContext,
) -> Result<Option<String>, ContainerError> {
    let field = "config.linux.security_context.apparmor";
    // The deprecated string is what kubelets before 1.30 send.
    #[allow(deprecated)]
    let deprecated = &sc.apparmor_profile;
    super::apparmor::on_this_host(sc.apparmor.as_ref(), deprecated).map_err(|r| invalid(field, r))
}

/// Environment entries the OCI spec can carry: a key without `=` or NUL, a UTF-8 value without
/// NUL (values are bytes on the wire since CRI v0.34).
fn check_envs(config: &ContainerConfig) -> Result<(), ContainerError> {
    for kv in &config.envs {
        if kv.key.is_empty() || kv.key.contains(['=', '\0']) {
            return Err(invalid(
                "config.envs",
                format!("{:?} is not an environment variable name", kv.key),
            ));
        }
        match std::str::from_utf8(&kv.value) {
            Ok(v) if !v.contains('\0') => {}
            _ => {
                return Err(invalid(
                    "config.envs",
                    format!(
                        "the value of {} is not UTF-8 text without NUL bytes",
                        kv.key
                    ),
                ))
            }
        }
    }
    Ok(())
}

fn check_path(field: &'static str, path: &str) -> Result<(), ContainerError> {
    let p = Path::new(path);
    if path.is_empty() {
        return Err(invalid(field, "is required"));
    }
    if path.contains('\0') {
        return Err(invalid(field, format!("{path:?} holds a NUL byte")));
    }
    if !p.is_absolute() {
        return Err(invalid(field, format!("{path:?} is not an absolute path")));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(field, format!("{path:?} contains '..'")));
    }
    Ok(())
}

fn check_mount(m: &Mount) -> Result<(), ContainerError> {
    if m.image.as_ref().is_some_and(|i| !i.image.is_empty()) {
        if !m.host_path.is_empty() {
            return Err(invalid(
                "config.mounts.host_path",
                "must be empty when the mount names an image",
            ));
        }
        let sub = Path::new(&m.image_sub_path);
        if sub.components().any(|c| c == Component::ParentDir) || m.image_sub_path.contains('\0') {
            return Err(invalid(
                "config.mounts.image_sub_path",
                format!("{:?} must stay inside the image", m.image_sub_path),
            ));
        }
    } else {
        check_path("config.mounts.host_path", &m.host_path)?;
    }
    check_path("config.mounts.container_path", &m.container_path)?;
    let dest = Path::new(&m.container_path);
    if dest == Path::new("/") {
        return Err(invalid("config.mounts.container_path", "cannot be \"/\""));
    }
    if dest.starts_with("/proc") && !PROC_FILES.iter().any(|f| dest == Path::new(f)) {
        return Err(invalid(
            "config.mounts.container_path",
            format!(
                "{:?} is under /proc, which a mount may not cover",
                m.container_path
            ),
        ));
    }
    if MountPropagation::try_from(m.propagation).is_err() {
        return Err(invalid(
            "config.mounts.propagation",
            format!("{} is not a MountPropagation", m.propagation),
        ));
    }
    Ok(())
}

/// `recursive_read_only` mounts: read-only, private, and a handler whose runtime has `rro`.
pub fn check_recursive_read_only(
    config: &ContainerConfig,
    handler: &str,
    features: &crate::oci_runtime::features::Features,
) -> Result<(), ContainerError> {
    let field = "config.mounts.recursive_read_only";
    for m in config.mounts.iter().filter(|m| m.recursive_read_only) {
        if !m.readonly {
            return Err(invalid(
                field,
                format!("{}: needs readonly = true", m.container_path),
            ));
        }
        if m.propagation != MountPropagation::PropagationPrivate as i32 {
            return Err(invalid(
                field,
                format!("{}: needs private propagation", m.container_path),
            ));
        }
        if !features.recursive_read_only {
            return Err(invalid(
                field,
                format!("runtime handler {handler:?} does not support recursive read-only mounts"),
            ));
        }
    }
    Ok(())
}

/// The CPUs (or memory nodes) in a kernel list file such as `/sys/devices/system/cpu/online`.
fn online(file: &str) -> Vec<u32> {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| parse_list(s.trim()).ok())
        .unwrap_or_default()
}

fn online_nodes() -> Vec<u32> {
    let nodes = online("/sys/devices/system/node/online");
    if nodes.is_empty() {
        vec![0]
    } else {
        nodes
    }
}

/// A cpuset list (`0-3,5`) as numbers.
pub fn parse_list(list: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in list.split(',') {
        let num = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a number"))
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b || b - a > 65536 {
                    return Err(format!("range {part:?} is not ascending or too long"));
                }
                out.extend(a..=b);
            }
            None => out.push(num(part)?),
        }
    }
    Ok(out)
}

fn check_set(field: &'static str, list: &str, available: &[u32]) -> Result<(), ContainerError> {
    if list.is_empty() {
        return Ok(());
    }
    let wanted = parse_list(list).map_err(|e| invalid(field, format!("{list:?}: {e}")))?;
    if let Some(missing) = wanted.iter().find(|n| !available.contains(n)) {
        return Err(invalid(
            field,
            format!("{list:?} names {missing}, which this host does not have online"),
        ));
    }
    Ok(())
}

/// Resources within what the kernel and runc accept (`cpus`/`nodes`: the host's online ones).
pub fn check_resources(
    r: &LinuxContainerResources,
    cpus: &[u32],
    nodes: &[u32],
) -> Result<(), ContainerError> {
    if r.memory_limit_in_bytes < 0
        || (r.memory_limit_in_bytes > 0 && r.memory_limit_in_bytes < MIN_MEMORY_BYTES)
    {
        return Err(invalid(
            "config.linux.resources.memory_limit_in_bytes",
            format!(
                "{} is below the minimum of {MIN_MEMORY_BYTES} bytes",
                r.memory_limit_in_bytes
            ),
        ));
    }
    let swap = r.memory_swap_limit_in_bytes;
    if swap < -1 || (swap > 0 && swap < r.memory_limit_in_bytes) {
        return Err(invalid(
            "config.linux.resources.memory_swap_limit_in_bytes",
            format!("{swap} must be -1, 0 or at least the memory limit"),
        ));
    }
    if r.cpu_period != 0 && !(1_000..=1_000_000).contains(&r.cpu_period) {
        return Err(invalid(
            "config.linux.resources.cpu_period",
            format!("{} µs is outside 1000..=1000000", r.cpu_period),
        ));
    }
    if r.cpu_quota != 0 && r.cpu_quota != -1 && r.cpu_quota < 1_000 {
        return Err(invalid(
            "config.linux.resources.cpu_quota",
            format!("{} µs: must be -1 (none) or at least 1000", r.cpu_quota),
        ));
    }
    if r.cpu_shares != 0 && !(2..=262_144).contains(&r.cpu_shares) {
        return Err(invalid(
            "config.linux.resources.cpu_shares",
            format!("{} is outside 2..=262144", r.cpu_shares),
        ));
    }
    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(invalid(
            "config.linux.resources.oom_score_adj",
            format!("{} is outside -1000..=1000", r.oom_score_adj),
        ));
    }
    check_set("config.linux.resources.cpuset_cpus", &r.cpuset_cpus, cpus)?;
    check_set("config.linux.resources.cpuset_mems", &r.cpuset_mems, nodes)?;
    Ok(())
}

/// Bidirectional propagation needs the host path on a shared mount; host-to-container needs a
/// shared or slave one (as containerd and CRI-O check).
pub fn check_propagation(
    m: &Mount,
    source: &Path,
    mounts: &[mountinfo::MountInfo],
) -> Result<(), ContainerError> {
    let wanted =
        MountPropagation::try_from(m.propagation).unwrap_or(MountPropagation::PropagationPrivate);
    let needs: &[&str] = match wanted {
        MountPropagation::PropagationPrivate => return Ok(()),
        MountPropagation::PropagationBidirectional => &["shared:"],
        MountPropagation::PropagationHostToContainer => &["shared:", "master:"],
    };
    let Some(mount) = mountinfo::mount_of(mounts, source) else {
        return Ok(());
    };
    if mount
        .optional
        .iter()
        .any(|o| needs.iter().any(|n| o.starts_with(n)))
    {
        return Ok(());
    }
    Err(ContainerError::Precondition {
        field: "config.mounts.propagation",
        reason: format!(
            "path {} is mounted on {} but it is not a {} mount",
            source.display(),
            mount.mount_point.display(),
            if needs.len() == 1 {
                "shared"
            } else {
                "shared or slave"
            }
        ),
    })
}

/// The mounts' host paths as runc will see them: missing ones are made as directories (as
/// containerd and CRI-O do for kubelet's unchecked hostPath volumes), symlinks resolved, then
/// their propagation checked. Blocking.
pub fn prepare_mount_sources(config: &ContainerConfig) -> Result<(), ContainerError> {
    if config.mounts.is_empty() {
        return Ok(());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mounts = mountinfo::parse(&mountinfo);
    for m in config
        .mounts
        .iter()
        .filter(|m| m.image.as_ref().is_none_or(|i| i.image.is_empty()))
    {
        let source = Path::new(&m.host_path);
        if std::fs::symlink_metadata(source).is_err() {
            std::fs::create_dir_all(source).map_err(|e| {
                invalid(
                    "config.mounts.host_path",
                    format!("{} does not exist and cannot be made: {e}", m.host_path),
                )
            })?;
        }
        let real = std::fs::canonicalize(source)
            .map_err(|e| invalid("config.mounts.host_path", format!("{}: {e}", m.host_path)))?;
        check_propagation(m, &real, &mounts)?;
    }
    Ok(())
}

/// An ExecSync or Exec command line execve can take: a program, no NUL bytes, each argument
/// within MAX_ARG_STRLEN and all of them within the host's ARG_MAX (less room for the runtime's
/// own arguments and environment).
pub fn check_argv(cmd: &[String]) -> Result<(), ContainerError> {
    if cmd.is_empty() || cmd[0].is_empty() {
        return Err(invalid("cmd", "a command is required"));
    }
    if let Some(i) = cmd.iter().position(|a| a.contains('\0')) {
        return Err(invalid("cmd", format!("argument {i} holds a NUL byte")));
    }
    if let Some(i) = cmd.iter().position(|a| a.len() >= MAX_ARG_BYTES) {
        return Err(invalid(
            "cmd",
            format!(
                "argument {i} is {} bytes; the kernel takes at most {} per argument",
                cmd[i].len(),
                MAX_ARG_BYTES - 1
            ),
        ));
    }
    // SAFETY: sysconf has no preconditions.
    let arg_max = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    let limit = usize::try_from(arg_max)
        .unwrap_or(128 * 1024)
        .saturating_sub(64 * 1024);
    let total: usize = cmd
        .iter()
        .map(|a| a.len() + 1 + std::mem::size_of::<usize>())
        .sum();
    if total > limit {
        return Err(invalid(
            "cmd",
            format!(
                "the command line takes {total} bytes, more than the {limit} the kernel allows"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(host: &str, ctr: &str, p: MountPropagation) -> Mount {
        Mount {
            host_path: host.into(),
            container_path: ctr.into(),
            propagation: p as i32,
            ..Default::default()
        }
    }

    #[test]
    fn mount_paths() {
        let ok = mount("/data", "/data", MountPropagation::PropagationPrivate);
        assert!(check_mount(&ok).is_ok());
        assert!(check_mount(&mount(
            "/x",
            "/proc/meminfo",
            MountPropagation::PropagationPrivate
        ))
        .is_ok());
        for (host, ctr, field) in [
            ("data", "/d", "host_path"),
            ("", "/d", "host_path"),
            ("/d/../etc", "/d", "host_path"),
            ("/d", "d", "container_path"),
            ("/d", "/proc", "container_path"),
            ("/d", "/proc/sys", "container_path"),
            ("/d", "/", "container_path"),
        ] {
            let e =
                check_mount(&mount(host, ctr, MountPropagation::PropagationPrivate)).unwrap_err();
            assert!(e.to_string().contains(field), "{host} {ctr}: {e}");
        }
        let mut bad = ok.clone();
        bad.propagation = 9;
        assert!(check_mount(&bad)
            .unwrap_err()
            .to_string()
            .contains("propagation"));
    }

    #[test]
    fn propagation_needs_a_shared_or_slave_host_mount() {
        let info = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                    40 27 0:50 / /shared rw shared:7 - tmpfs tmpfs rw\n\
                    41 27 0:51 / /slave rw master:7 - tmpfs tmpfs rw\n\
                    42 27 0:52 / /with\\040space rw shared:9 - tmpfs tmpfs rw\n";
        let mounts = mountinfo::parse(info);
        assert_eq!(mounts[3].mount_point, Path::new("/with space"));
        let bi = |p: &str| mount(p, "/m", MountPropagation::PropagationBidirectional);
        let slave = |p: &str| mount(p, "/m", MountPropagation::PropagationHostToContainer);
        let check = |m: Mount| check_propagation(&m, Path::new(&m.host_path.clone()), &mounts);
        assert!(check(bi("/shared/a")).is_ok());
        assert!(check(bi("/with space/a")).is_ok());
        let e = check(bi("/var/lib")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid config.mounts.propagation: path /var/lib is mounted on / but it is not a shared mount"
        );
        assert!(check(bi("/slave")).is_err());
        assert!(check(slave("/slave/x")).is_ok());
        assert!(check(slave("/shared")).is_ok());
        assert!(check(slave("/etc"))
            .unwrap_err()
            .to_string()
            .contains("shared or slave"));
        assert!(check(mount("/etc", "/m", MountPropagation::PropagationPrivate)).is_ok());
    }

    #[test]
    fn resources() {
        let cpus = [0, 1];
        let ok = LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_period: 100_000,
            cpu_quota: 50_000,
            cpu_shares: 512,
            oom_score_adj: -999,
            cpuset_cpus: "0-1".into(),
            cpuset_mems: "0".into(),
            ..Default::default()
        };
        assert!(check_resources(&ok, &cpus, &[0]).is_ok());
        type Edit = Box<dyn Fn(&mut LinuxContainerResources)>;
        let cases: [(&str, Edit); 8] = [
            (
                "memory_limit_in_bytes",
                Box::new(|r| r.memory_limit_in_bytes = 1),
            ),
            (
                "memory_swap_limit_in_bytes",
                Box::new(|r| r.memory_swap_limit_in_bytes = 1 << 20),
            ),
            ("cpu_period", Box::new(|r| r.cpu_period = 999)),
            ("cpu_quota", Box::new(|r| r.cpu_quota = 10)),
            ("cpu_shares", Box::new(|r| r.cpu_shares = 1 << 20)),
            ("oom_score_adj", Box::new(|r| r.oom_score_adj = 5000)),
            ("cpuset_cpus", Box::new(|r| r.cpuset_cpus = "99999".into())),
            ("cpuset_mems", Box::new(|r| r.cpuset_mems = "0-x".into())),
        ];
        for (field, edit) in cases {
            let mut r = ok.clone();
            edit(&mut r);
            let e = check_resources(&r, &cpus, &[0]).unwrap_err();
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
        assert_eq!(parse_list("0-2,5").unwrap(), [0, 1, 2, 5]);
        assert!(parse_list("3-1").is_err());
    }

    #[test]
    fn argv_limits() {
        assert!(check_argv(&["true".into()]).is_ok());
        assert!(check_argv(&[]).is_err());
        assert!(check_argv(&["a\0b".into()])
            .unwrap_err()
            .to_string()
            .contains("NUL"));
        let long = "x".repeat(MAX_ARG_BYTES);
        assert!(check_argv(&["echo".into(), long])
            .unwrap_err()
            .to_string()
            .contains("argument 1"));
        let many: Vec<String> = std::iter::once("echo".to_string())
            .chain((0..40).map(|_| "y".repeat(100_000)))
            .collect();
        assert!(check_argv(&many)
            .unwrap_err()
            .to_string()
            .contains("kernel allows"));
    }
}
