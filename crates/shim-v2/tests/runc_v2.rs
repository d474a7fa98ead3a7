//! Against the real `containerd-shim-runc-v2` (Debian package `containerd`): start a shim for a
//! bundle, talk to it over ttrpc (Connect, Create, Start, Wait, Delete, Shutdown), see the
//! container's output and exit code, and leave nothing: no shim process, no socket, no runc
//! container. Each run uses its own containerd namespace (the shim keeps runc's state under
//! /run/containerd/runc/<namespace>), removed at the end.

use std::{path::Path, process::Command, time::Duration};

use shim_v2::{api, bootstrap::ttrpc_address, EventsServer, Shim, ShimBinary, ShimLog};

const SHIM: &str = "/usr/bin/containerd-shim-runc-v2";

/// A bundle running `script` in busybox (no terminal, its own namespaces).
fn bundle(dir: &Path, script: &str) {
    let rootfs = dir.join("rootfs/bin");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("sh")).unwrap();
    let out = Command::new("runc")
        .arg("spec")
        .arg("--bundle")
        .arg(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "runc spec: {out:?}");
    let path = dir.join("config.json");
    let mut spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    spec["process"]["terminal"] = false.into();
    spec["process"]["args"] = serde_json::json!(["/bin/sh", "-c", script]);
    spec["root"]["readonly"] = false.into();
    std::fs::write(&path, spec.to_string()).unwrap();
}

fn shim_processes(bundle: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let cwd = std::fs::read_link(entry.path().join("cwd")).unwrap_or_default();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if !zombie && cwd == bundle && String::from_utf8_lossy(&cmdline).contains("containerd-shim")
        {
            out.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    out
}

/// Kills this test's shims and removes runc's state of its namespace, also when the test fails.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args([
                "-9",
                "-f",
                &format!("containerd-shim-runc-v2 -namespace {}", self.0),
            ])
            .status();
        let root = Path::new("/run/containerd/runc").join(&self.0);
        let listed = Command::new("runc")
            .arg("--root")
            .arg(&root)
            .args(["list", "-q"])
            .output();
        for id in listed
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
            .lines()
        {
            let _ = Command::new("runc")
                .arg("--root")
                .arg(&root)
                .args(["delete", "-f", id])
                .status();
        }
        let _ = std::fs::remove_dir_all(root);
    }
}

/// One test's shim: its dir and namespace, the task bundle `<dir>/<id>` running `script`, the
/// events server, the shim's log, and the connected shim. Field order is drop order: the shim
/// connection and log go before the cleanup kills what is left.
struct Fixture {
    shim: Shim,
    address: String,
    _log: ShimLog,
    events: EventsServer,
    received: tokio::sync::mpsc::UnboundedReceiver<containerd_shim_protos::shim::event::Envelope>,
    binary: ShimBinary,
    bundle: std::path::PathBuf,
    namespace: String,
    _cleanup: Cleanup,
    dir: tempfile::TempDir,
}

impl Fixture {
    async fn start(id: &str, script: &str) -> Fixture {
        let dir = tempfile::Builder::new()
            .prefix("crust-shimv2-")
            .tempdir()
            .unwrap();
        let namespace = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let cleanup = Cleanup(namespace.clone());
        // The runc shim finds a bundle at `<dir of its cwd>/<id>` (containerd's layout): the
        // bundle dir is named after the task.
        let bundle_dir = dir.path().join(id);
        bundle(&bundle_dir, script);
        let binary = ShimBinary {
            binary: SHIM.into(),
            namespace: namespace.clone(),
            address: dir.path().join("crustd-events.sock"),
            publish_binary: "/bin/true".into(),
        };
        let (events, received) = EventsServer::serve(&ttrpc_address(&binary.address))
            .await
            .unwrap();
        let log = ShimLog::open(&bundle_dir, id).unwrap();
        let address = binary.start(id, &bundle_dir).await.unwrap();
        let shim = Shim::connect(&address).await.unwrap();
        Fixture {
            shim,
            address,
            _log: log,
            events,
            received,
            binary,
            bundle: bundle_dir,
            namespace,
            _cleanup: cleanup,
            dir,
        }
    }

    /// Creates task `id` with both streams in the file `out` (the runc shim's `file://` IO takes
    /// stdout's file for both and wants stderr set): its init pid.
    async fn create(&self, id: &str, out: &Path) -> u32 {
        let req = api::CreateTaskRequest {
            id: id.into(),
            bundle: self.bundle.display().to_string(),
            stdout: format!("file://{}", out.display()),
            stderr: format!("file://{}", out.display()),
            ..Default::default()
        };
        self.shim.create(&req).await.unwrap()
    }
}

/// Waits (up to 2 s) until `path` holds something; its text.
async fn read_eventually(path: &Path) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        text = std::fs::read_to_string(path).unwrap_or_default();
        if !text.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    text
}

/// Waits (up to 5 s) until no shim runs in `bundle`.
async fn wait_no_shim(bundle: &Path) {
    for _ in 0..250 {
        if shim_processes(bundle).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_task_runs_through_the_runc_v2_shim_and_nothing_is_left() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("shim_v2=debug")
        .with_test_writer()
        .try_init();
    let id = "task1";
    let f = Fixture::start(id, "echo out; exit 3").await;
    let (b, shim, address) = (f.bundle.clone(), &f.shim, f.address.clone());
    assert_eq!(
        std::fs::read_to_string(b.join("address")).unwrap().trim(),
        address
    );
    let info = shim.info(id).await.unwrap();
    assert!(info.shim_pid > 0, "{info:?}");
    let out = f.dir.path().join("out");
    let pid = f.create(id, &out).await;
    assert!(pid > 0);
    assert_eq!(shim.state(id, "").await.unwrap().pid, pid);
    shim.start(id, "").await.unwrap();
    let code = tokio::time::timeout(Duration::from_secs(10), shim.wait(id, ""))
        .await
        .expect("the task exits")
        .unwrap();
    assert_eq!(code, 3);
    assert_eq!(shim.delete(id, "").await.unwrap(), 3);
    // The shim copies the stream into the file on its own; the copy may trail the exit.
    assert_eq!(read_eventually(&out).await, "out\n");
    let gone = shim.state(id, "").await.unwrap_err();
    assert!(gone.is_not_found(), "{gone}");
    shim.shutdown(id, true).await.unwrap();
    let Fixture {
        shim,
        _log: log,
        events,
        mut received,
        binary,
        namespace,
        _cleanup,
        dir: _dir,
        ..
    } = f;
    drop(shim); // the shim's ttrpc server waits for its clients to go
    wait_no_shim(&b).await;
    assert!(
        shim_processes(&b).is_empty(),
        "the shim exited: {:?}",
        shim_processes(&b)
    );
    // The task's life as the shim published it (flushed before it exited), in order.
    let mut topics = Vec::new();
    while let Ok(e) = received.try_recv() {
        assert_eq!(e.namespace, namespace);
        topics.push(e.topic);
    }
    assert_eq!(
        topics,
        [
            "/tasks/create",
            "/tasks/start",
            "/tasks/exit",
            "/tasks/delete"
        ],
        "events"
    );
    let socket = address.trim_start_matches("unix://");
    assert!(!Path::new(socket).exists(), "the shim removed {socket}");
    drop(log);
    events.shutdown().await;
    // `delete` after the shim is gone: the cleanup path for a shim that crashed.
    binary.delete(id, &b).await.unwrap();
    assert!(runc_list(&namespace).is_empty());
}

fn runc_list(namespace: &str) -> Vec<String> {
    let root = Path::new("/run/containerd/runc").join(namespace);
    let out = Command::new("runc")
        .arg("--root")
        .arg(&root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A shim killed with SIGKILL while its task runs: the task survives in runc; `SHIM delete` (what
/// a runtime runs for a shim that is gone) kills and deletes it.
#[tokio::test]
async fn delete_cleans_up_after_a_shim_killed_mid_task() {
    let id = "task2";
    let f = Fixture::start(id, "exec sleep 60").await;
    let (shim, dir) = (&f.shim, f.dir.path());
    let pid = f.create(id, &dir.join("out")).await;
    shim.start(id, "").await.unwrap();
    // An exec in the running task, its processes and stats.
    let exec_out = dir.join("exec-out");
    let process = serde_json::json!({
        "args": ["/bin/sh", "-c", "echo from-exec; exit 4"],
        "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0},
    });
    let exec = api::ExecProcessRequest {
        id: id.into(),
        exec_id: "e1".into(),
        stdout: format!("file://{}", exec_out.display()),
        stderr: format!("file://{}", exec_out.display()),
        spec: Some(shim_v2::process_spec(process.to_string().as_bytes())).into(),
        ..Default::default()
    };
    shim.exec(&exec).await.unwrap();
    shim.start(id, "e1").await.unwrap();
    assert_eq!(shim.wait(id, "e1").await.unwrap(), 4);
    assert_eq!(shim.delete(id, "e1").await.unwrap(), 4);
    assert_eq!(read_eventually(&exec_out).await, "from-exec\n");
    assert!(shim.pids(id).await.unwrap().contains(&pid));
    assert!(shim.stats(id).await.unwrap().stats.is_some());
    let shim_pid = shim.info(id).await.unwrap().shim_pid;
    // SAFETY: plain kill of the shim's pid.
    assert_eq!(unsafe { libc::kill(shim_pid as i32, libc::SIGKILL) }, 0);
    wait_no_shim(&f.bundle).await;
    assert_eq!(runc_list(&f.namespace), [id], "the task outlives its shim");
    let deleted = f.binary.delete(id, &f.bundle).await.unwrap();
    assert_eq!(deleted.pid, pid, "{deleted:?}");
    assert!(
        runc_list(&f.namespace).is_empty(),
        "delete removed the runc container"
    );
    // Killed; a zombie until init (its parent once the shim died) reaps it.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat.rsplit_once(") ").map(|(_, rest)| &rest[..1]);
    assert!(
        matches!(state, None | Some("Z")),
        "the task's process is gone: {stat}"
    );
    let Fixture { shim, events, .. } = f;
    drop(shim);
    events.shutdown().await;
}
