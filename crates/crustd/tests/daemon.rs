//! Daemon-level properties: socket and directory permissions (RELIABILITY.md S1), the pod files
//! from dns_config, the oom_score_adj clamp, and no fd growth across a pod's life.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::Daemon;
use cri_api::v1::{DnsConfig, RemovePodSandboxRequest, RunPodSandboxRequest};

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[tokio::test]
async fn s1_socket_is_0660_in_a_0700_dir_and_refuses_other_users() {
    // The harness puts the socket in `run/`, which crustd creates.
    let d = Daemon::start().await;
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let dir_mode = std::fs::metadata(d.socket.parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
    // Another user cannot connect.
    let path = std::ffi::CString::new(d.socket.to_str().unwrap()).unwrap();
    let errno = connect_as_nobody(&path);
    assert_eq!(errno, libc::EACCES, "connect as uid 65534");
    // An existing socket directory is the operator's choice and keeps its mode.
    let mut d = d;
    d.stop_graceful();
    let run_dir = d.socket.parent().unwrap().to_path_buf();
    std::fs::set_permissions(&run_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    d.restart().await;
    let kept = std::fs::metadata(&run_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(kept, 0o755, "crustd must not chmod an existing directory");
    assert_eq!(
        std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777,
        0o660
    );
}

/// Forks, drops to uid/gid 65534 and tries to connect; returns the child's errno (0 on success).
fn connect_as_nobody(path: &std::ffi::CStr) -> i32 {
    // SAFETY: the child only makes async-signal-safe syscalls and exits with _exit.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0);
        if pid == 0 {
            if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                libc::_exit(99);
            }
            let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
            let mut addr: libc::sockaddr_un = std::mem::zeroed();
            addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
            for (i, b) in path.to_bytes().iter().enumerate() {
                addr.sun_path[i] = *b as libc::c_char;
            }
            let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
            let r = libc::connect(fd, &addr as *const _ as *const libc::sockaddr, len);
            libc::_exit(if r == 0 { 0 } else { *libc::__errno_location() });
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::WEXITSTATUS(status)
    }
}

#[tokio::test]
async fn pod_files_oom_clamp_and_no_fd_growth() {
    let d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    // Warm up once so lazily opened fds (the events machinery, the runtime's pipes) are counted.
    let id = d.run_pod(&mut c, "warm").await;
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    let baseline = fd_count(d.pid());

    let mut config = d.pod("files");
    config.dns_config = Some(DnsConfig {
        servers: vec!["10.96.0.10".into()],
        searches: vec!["ns.svc.cluster.local".into(), "svc.cluster.local".into()],
        options: vec!["ndots:5".into()],
    });
    let id = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let dir = d.state.join("sandboxes").join(&id);
    assert_eq!(
        std::fs::read_to_string(dir.join("resolv.conf")).unwrap(),
        "nameserver 10.96.0.10\nsearch ns.svc.cluster.local svc.cluster.local\noptions ndots:5\n"
    );
    assert!(std::fs::read_to_string(dir.join("hosts"))
        .unwrap()
        .contains("localhost"));

    let own: i32 = std::fs::read_to_string(format!("/proc/{}/oom_score_adj", d.pid()))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pause = d.pause_pids()[0];
    let adj: i32 = std::fs::read_to_string(format!("/proc/{pause}/oom_score_adj"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let caps = std::fs::read_to_string("/proc/self/status").unwrap();
    let cap_eff = caps
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .unwrap()
        .trim()
        .to_string();
    let has_sys_resource = u64::from_str_radix(&cap_eff, 16).unwrap() & (1 << 24) != 0;
    if has_sys_resource {
        assert_eq!(adj, -998);
    } else {
        assert_eq!(adj, own.max(-998), "clamped to crustd's own score");
        assert!(d.log_text().contains("oom_score_adj clamped"));
    }

    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    assert_eq!(
        fd_count(d.pid()),
        baseline,
        "crustd's fds back to the baseline"
    );
    d.assert_no_leaks().await;
}

#[test]
fn crustd_config_prints_the_effective_config_and_names_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[cni]\nplugin_timeout_s = 7\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crustd"))
        .args(["--config"])
        .arg(&file)
        .args(["--socket", "/tmp/x.sock", "config"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("plugin_timeout_s = 7") && text.contains("socket = \"/tmp/x.sock\""),
        "{text}"
    );
    assert!(
        text.contains("root = \"/var/lib/crust\""),
        "defaults filled in: {text}"
    );
    std::fs::write(&file, "[cni]\nplugin_timeout = 7\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_crustd"))
        .arg("--config")
        .arg(&file)
        .arg("config")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plugin_timeout"),
        "{out:?}"
    );
}

/// A SIGTERM as soon as the socket exists is a graceful stop, never the default action (the
/// handlers are installed before the socket is bound; a CI run under load once saw crustd die of
/// a SIGTERM that landed after it had answered Version but before its shutdown future was first
/// polled).
#[test]
fn sigterm_right_after_the_socket_appears_is_a_graceful_stop() {
    for round in 0..20 {
        let d = Daemon::prepare("", &[]);
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_crustd"))
            .arg("--socket")
            .arg(&d.socket)
            .arg("--root")
            .arg(&d.root)
            .arg("--state")
            .arg(&d.state)
            .arg("--config")
            .arg(&d.config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !d.socket.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        assert!(
            d.socket.exists(),
            "round {round}: crustd never bound its socket"
        );
        // SAFETY: plain kill of our child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = child.wait().unwrap();
        assert!(status.success(), "round {round}: {status}");
    }
}
