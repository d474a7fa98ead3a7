//! `crust doctor`: checks the node for what crustd needs (the OCI runtimes, crust-shim, the
//! cgroup layout, CNI plugins and configs, kernel features: overlayfs, openat2 and pidfd,
//! bridge netfilter, IP forwarding, user namespaces) and says what to fix. Every path is read
//! below `--root` (default `/`), so a host root can be checked from outside. Exits non-zero
//! when something blocks crustd. Needs no running crustd.

use std::path::{Path, PathBuf};

use crust::config::Config;
use serde::Serialize;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    /// Works, with something missing (a feature, performance, Services).
    Warn,
    /// crustd cannot run pods.
    Fail,
}

/// One check's finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub level: Level,
    pub found: String,
    /// What to do, when not Ok.
    pub fix: Option<String>,
}

fn finding(check: &'static str, level: Level, found: String, fix: &str) -> Finding {
    let fix = (level != Level::Ok).then(|| fix.to_string());
    Finding {
        check,
        level,
        found,
        fix,
    }
}

/// `root` joined with an absolute host path.
fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn read(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(under(root, Path::new(path)))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Every check, in the order they are printed.
pub fn examine(root: &Path, config: &Config) -> Vec<Finding> {
    let mut out: Vec<Finding> = config
        .runtimes
        .iter()
        .map(|(name, rt)| runtime(root, name, &rt.binary(name)))
        .collect();
    out.push(shim(root));
    out.push(cgroups(root));
    out.extend(cni(root, config));
    out.push(overlay(root));
    out.push(kernel(root));
    out.push(sysctl(
        root,
        "bridge netfilter",
        "/proc/sys/net/bridge/bridge-nf-call-iptables",
        "modprobe br_netfilter && sysctl -w net.bridge.bridge-nf-call-iptables=1 (Services need it)",
    ));
    out.push(sysctl(
        root,
        "ip forwarding",
        "/proc/sys/net/ipv4/ip_forward",
        "sysctl -w net.ipv4.ip_forward=1 (pod traffic leaving the node needs it)",
    ));
    out.push(user_namespaces(root));
    out
}

/// The search path for a bare binary name, under `root`.
fn find_binary(root: &Path, name: &Path) -> Option<PathBuf> {
    if name.is_absolute() {
        let p = under(root, name);
        return p.is_file().then_some(p);
    }
    let mut dirs: Vec<PathBuf> = [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ]
    .map(PathBuf::from)
    .to_vec();
    if root == Path::new("/") {
        let search = std::env::var_os("PATH").unwrap_or_default();
        dirs.splice(0..0, std::env::split_paths(&search));
    }
    dirs.iter()
        .map(|d| under(root, &d.join(name)))
        .find(|p| p.is_file())
}

fn runtime(root: &Path, handler: &str, path: &Path) -> Finding {
    let check = "OCI runtime";
    let Some(found) = find_binary(root, path) else {
        let fix = format!(
            "install {} (apt install runc) or fix [runtimes.{handler}] path",
            path.display()
        );
        return finding(
            check,
            Level::Fail,
            format!("handler {handler}: {} not found", path.display()),
            &fix,
        );
    };
    let version = std::process::Command::new(&found)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        });
    match version {
        Some(v) => finding(
            check,
            Level::Ok,
            format!("handler {handler}: {} ({v})", found.display()),
            "",
        ),
        None => finding(
            check,
            Level::Fail,
            format!(
                "handler {handler}: {} does not run `--version`",
                found.display()
            ),
            "reinstall the runtime; it must be an OCI runtime CLI (runc, crun, runsc)",
        ),
    }
}

fn shim(root: &Path) -> Finding {
    let beside = (root == Path::new("/"))
        .then(|| std::env::current_exe().ok())
        .flatten()
        .and_then(|exe| exe.parent().map(|d| d.join("crust-shim")))
        .filter(|p| p.is_file());
    match beside.or_else(|| find_binary(root, Path::new("crust-shim"))) {
        Some(p) => finding("crust-shim", Level::Ok, p.display().to_string(), ""),
        None => finding(
            "crust-shim",
            Level::Fail,
            "not beside crust nor on PATH".into(),
            "install crust-shim next to crustd (the package puts both in /usr/bin)",
        ),
    }
}

fn cgroups(root: &Path) -> Finding {
    let base = under(root, Path::new("/sys/fs/cgroup"));
    let found = if base.join("cgroup.controllers").is_file() {
        Some("cgroup v2 (unified)")
    } else if base.join("memory").is_dir() && base.join("pids").is_dir() {
        Some(if base.join("unified").is_dir() {
            "cgroup v1 (hybrid)"
        } else {
            "cgroup v1"
        })
    } else {
        None
    };
    match found {
        Some(f) => finding("cgroups", Level::Ok, f.into(), ""),
        None => finding(
            "cgroups",
            Level::Fail,
            format!("no cgroup hierarchy at {}", base.display()),
            "mount cgroup2 on /sys/fs/cgroup (or the v1 controllers memory, cpu, pids, ...)",
        ),
    }
}

fn cni(root: &Path, config: &Config) -> Vec<Finding> {
    let dirs: Vec<PathBuf> = config.cni.bin_dirs.iter().map(|d| under(root, d)).collect();
    let missing: Vec<&str> = ["bridge", "host-local", "loopback", "portmap"]
        .into_iter()
        .filter(|p| !dirs.iter().any(|d| d.join(p).is_file()))
        .collect();
    let plugins = if missing.is_empty() {
        finding("CNI plugins", Level::Ok, format!("in {}", show(&dirs)), "")
    } else {
        finding(
            "CNI plugins",
            Level::Fail,
            format!("{} missing from {}", missing.join(", "), show(&dirs)),
            "apt install containernetworking-plugins (or fix [cni] bin_dirs)",
        )
    };
    let conf_dir = under(root, &config.cni.conf_dir);
    let (lists, errors) = cni::load_dir(&conf_dir);
    let names: Vec<&str> = lists.iter().map(|l| l.name.as_str()).collect();
    let configs = match (
        names.is_empty(),
        config.cni.default_network,
        errors.is_empty(),
    ) {
        (_, _, false) => finding(
            "CNI configs",
            Level::Fail,
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; "),
            "fix or remove the broken network configs",
        ),
        (false, _, true) => finding(
            "CNI configs",
            Level::Ok,
            format!("{} in {}", names.join(", "), conf_dir.display()),
            "",
        ),
        (true, true, true) => finding(
            "CNI configs",
            Level::Ok,
            format!(
                "none in {}: crustd writes its embedded network",
                conf_dir.display()
            ),
            "",
        ),
        (true, false, true) => finding(
            "CNI configs",
            Level::Fail,
            format!(
                "none in {} and [cni] default_network = false",
                conf_dir.display()
            ),
            "add a .conflist or set [cni] default_network = true",
        ),
    };
    vec![plugins, configs]
}

fn show(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(":")
}

fn overlay(root: &Path) -> Finding {
    let filesystems = read(root, "/proc/filesystems").unwrap_or_default();
    if filesystems
        .lines()
        .any(|l| l.split_whitespace().last() == Some("overlay"))
    {
        finding("overlayfs", Level::Ok, "in /proc/filesystems".into(), "")
    } else {
        finding(
            "overlayfs",
            Level::Fail,
            "not in /proc/filesystems".into(),
            "modprobe overlay",
        )
    }
}

/// openat2 (5.6) keeps image files inside their rootfs; pidfd_open (5.3) watches processes.
fn kernel(root: &Path) -> Finding {
    let release = read(root, "/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if version >= (5, 6) {
        finding(
            "kernel",
            Level::Ok,
            format!("{release}: openat2, pidfd"),
            "",
        )
    } else {
        finding(
            "kernel",
            Level::Fail,
            format!("{:?}: older than 5.6 (openat2, pidfd_open)", release),
            "run crust on Linux 5.6 or newer",
        )
    }
}

fn sysctl(root: &Path, check: &'static str, path: &str, fix: &str) -> Finding {
    match read(root, path).as_deref() {
        Some("1") => finding(check, Level::Ok, format!("{path} = 1"), ""),
        Some(v) => finding(check, Level::Warn, format!("{path} = {v}"), fix),
        None => finding(check, Level::Warn, format!("{path} missing"), fix),
    }
}

fn user_namespaces(root: &Path) -> Finding {
    let path = "/proc/sys/user/max_user_namespaces";
    match read(root, path).and_then(|v| v.parse::<u64>().ok()) {
        Some(n) if n > 0 => finding("user namespaces", Level::Ok, format!("{path} = {n}"), ""),
        _ => finding(
            "user namespaces",
            Level::Warn,
            format!("{path} is 0 or missing"),
            "sysctl -w user.max_user_namespaces=15000 (for pods with user namespaces and rootless tools)",
        ),
    }
}

/// Prints the findings (a table, or JSON) and returns whether nothing blocks crustd.
pub fn report(findings: &[Finding], json: bool) -> anyhow::Result<bool> {
    let blocked = findings.iter().any(|f| f.level == Level::Fail);
    if json {
        let out = serde_json::json!({"ok": !blocked, "checks": findings});
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(!blocked);
    }
    for f in findings {
        let level = match f.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{level}  {:<17} {}", f.check, f.found);
        if let Some(fix) = &f.fix {
            println!("      {:<17} fix: {fix}", "");
        }
    }
    println!(
        "{}",
        if blocked {
            "crust cannot run pods here until the FAIL lines are fixed"
        } else {
            "crust can run pods here"
        }
    );
    Ok(!blocked)
}
