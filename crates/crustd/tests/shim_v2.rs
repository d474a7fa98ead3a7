//! `shim-v2` runtime handlers (#13) with Debian's `containerd-shim-runc-v2`, the shim containerd
//! itself runs, configured as a handler `runc-shim` beside the default: one shim per pod holding
//! the sandbox and its containers, CRI logs written by crust-shim task-io from the task's FIFOs,
//! ExecSync through the shim's Exec, stats, UpdateContainerResources, exit codes, stop/remove;
//! crustd killed with SIGKILL and restarted (the shims are reconnected); a shim killed mid-pod
//! (pod NOTREADY, containers EXITED, everything removable). Each ends with the leak check,
//! which covers shim processes, task bundles and the runc root the shims use; the shims' sockets
//! are checked here.

mod common;

use std::{path::PathBuf, time::Duration};

use common::{
    ctr::{busybox, create, ctr, exec, start, status, wait_exited},
    stop_remove, Client, Daemon,
};
use cri_api::v1::{ContainerState, PodSandboxState, PodSandboxStatusRequest, StopContainerRequest};

const HANDLER: &str = common::RUNC_SHIM_HANDLER;

async fn run_on_shim(d: &Daemon, c: &mut Client, name: &str) -> (String, PathBuf) {
    let mut config = d.net_pod(name, false);
    let logs = d.root.parent().unwrap().join(format!("logs-{name}"));
    config.log_directory = logs.display().to_string();
    (common::run_on_runc_shim(d, c, config).await, logs)
}

/// The unix socket the pod's shim serves, from the address file in the sandbox's task bundle.
fn shim_socket(d: &Daemon, pod: &str) -> PathBuf {
    let file = d
        .state
        .join("runtime/runc-shim/tasks")
        .join(pod)
        .join("address");
    let address = std::fs::read_to_string(&file).unwrap();
    PathBuf::from(address.trim().trim_start_matches("unix://"))
}

async fn pod_state(c: &mut Client, id: &str) -> i32 {
    c.pod_sandbox_status(PodSandboxStatusRequest {
        pod_sandbox_id: id.into(),
        verbose: false,
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .unwrap()
    .state
}

async fn log_has(logs: &std::path::Path, file: &str, text: &str) -> bool {
    let path = logs.join(file);
    let text = text.to_string();
    common::eventually(Duration::from_secs(5), || {
        let (path, text) = (path.clone(), text.clone());
        async move {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .contains(&text)
        }
    })
    .await
}

/// A protobuf field: tag (wire type 2) then the length-prefixed bytes (all under 128 here).
fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![number << 3 | 2, bytes.len() as u8];
    out.extend_from_slice(bytes);
    out
}

/// crustd as a shim's `-publish-binary`: `crustd --address A publish --topic T --namespace N`
/// with a `google.protobuf.Any` (a TaskOOM) on stdin, as containerd's older shim library runs
/// it; the event reaches crustd's events server.
fn publish_checks(d: &Daemon, container: &str) {
    let oom = field(1, container.as_bytes());
    let mut any = field(1, b"containerd.events.TaskOOM");
    any.extend(field(2, &oom));
    let address = d.state.join("runtime/runc-shim/events");
    let publish = |topic: &str, stdin: &[u8]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_crustd"))
            .arg("--address")
            .arg(&address)
            .args(["publish", "--topic", topic, "--namespace", "k8s.io"])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child.stdin.take().unwrap().write_all(stdin).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = publish("/tasks/oom", &any);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let logged = "shim event topic=/tasks/oom namespace=k8s.io";
    assert!(d.log_text().contains(logged), "{}", d.log_text());
    let junk = publish("/tasks/oom", b"\xff\xff\xff");
    assert!(!junk.status.success(), "junk is refused");
    assert!(String::from_utf8_lossy(&junk.stderr).contains("not a protobuf Any"));
}

#[tokio::test]
async fn a_pod_and_its_containers_run_in_one_containerd_shim() {
    let d = Daemon::start_with(HANDLER, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = run_on_shim(&d, &mut c, "shim-pod").await;
    // Status: the runc shim's handler has the features of the runc it runs.
    let handlers = c
        .status(cri_api::v1::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner()
        .runtime_handlers;
    let features = |name: &str| {
        let h = handlers.iter().find(|h| h.name == name);
        h.and_then(|h| h.features)
            .unwrap_or_else(|| panic!("{name} in {handlers:?}"))
    };
    assert_eq!(features("runc-shim"), features("runc"), "{handlers:?}");
    assert!(features("runc-shim").recursive_read_only_mounts);
    let long = create(
        &mut c,
        &pod,
        ctr(
            "long",
            &env.image,
            "echo hello; echo oops >&2; exec sleep 60",
        ),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    start(&mut c, &long).await;
    let short = create(&mut c, &pod, ctr("short", &env.image, "echo bye; exit 3"))
        .await
        .unwrap();
    start(&mut c, &short).await;
    assert_eq!(
        d.processes("containerd-shim").len(),
        1,
        "one shim for the pod: {:?}",
        d.processes("containerd-shim")
    );
    assert_eq!(
        wait_exited(&mut c, &short).await.exit_code,
        3,
        "the exit status from the shim's Wait"
    );
    let reported = format!("the shim reported the task's exit id={short} exit_status=3");
    assert!(
        d.log_text().contains(&reported),
        "the exit was the shim's report, not a pid's: {}",
        d.log_text()
    );
    assert!(log_has(&logs, "long.log", "stdout F hello").await);
    assert!(log_has(&logs, "long.log", "stderr F oops").await);
    assert!(log_has(&logs, "short.log", "stdout F bye").await);
    // ReopenContainerLog: task-io reopens the path kubelet's rotation left empty.
    let ticker = create(
        &mut c,
        &pod,
        ctr(
            "ticker",
            &env.image,
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
        ),
    )
    .await
    .unwrap();
    start(&mut c, &ticker).await;
    assert!(log_has(&logs, "ticker.log", "stdout F tick 0").await);
    std::fs::rename(logs.join("ticker.log"), logs.join("ticker.log.1")).unwrap();
    c.reopen_container_log(cri_api::v1::ReopenContainerLogRequest {
        container_id: ticker.clone(),
    })
    .await
    .unwrap();
    assert!(
        log_has(&logs, "ticker.log", "stdout F tick").await,
        "the new file gets lines"
    );
    // A container created and removed without a start leaves no task-io or FIFO behind (the
    // leak check at the end).
    let never = create(&mut c, &pod, ctr("never", &env.image, "true"))
        .await
        .unwrap();
    c.remove_container(cri_api::v1::RemoveContainerRequest {
        container_id: never,
    })
    .await
    .unwrap();

    let (code, out, err) = exec(&mut c, &long, "echo out; echo err >&2; exit 5", 10)
        .await
        .unwrap();
    assert_eq!((code, out.as_str(), err.as_str()), (5, "out\n", "err\n"));
    let (code, out, _) = exec(&mut c, &long, "echo $FROM_IMAGE", 10).await.unwrap();
    assert_eq!((code, out.as_str()), (0, "1\n"), "the container's own env");
    let started = std::time::Instant::now();
    let timed = c
        .exec_sync(cri_api::v1::ExecSyncRequest {
            container_id: long.clone(),
            cmd: vec!["sleep".into(), "30".into()],
            timeout: 1,
        })
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the timeout killed the exec: {timed:?}"
    );

    let stats = c
        .container_stats(cri_api::v1::ContainerStatsRequest {
            container_id: long.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    assert!(stats.memory.unwrap().working_set_bytes.unwrap().value > 0);
    c.update_container_resources(cri_api::v1::UpdateContainerResourcesRequest {
        container_id: long.clone(),
        linux: Some(cri_api::v1::LinuxContainerResources {
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| panic!("update through the shim: {e}"));
    let cgroup = format!("{}/{long}", d.cgroup_parent);
    let shares = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cgroup}/cpu.shares")).unwrap();
    assert_eq!(shares.trim(), "512", "the shim's runc applied the update");

    publish_checks(&d, &long);

    let socket = shim_socket(&d, &pod);
    assert!(socket.exists());
    c.stop_container(StopContainerRequest {
        container_id: long.clone(),
        timeout: 2,
    })
    .await
    .unwrap();
    let s = status(&mut c, &long).await;
    assert_eq!(s.state, ContainerState::ContainerExited as i32);
    assert!(s.exit_code == 137 || s.exit_code == 143, "{}", s.exit_code);
    stop_remove(&mut c, &pod).await;
    assert!(!socket.exists(), "the shim removed its socket as it exited");
    let log = d.log_text();
    assert!(
        !log.contains("shim still running"),
        "the shim exited when told: {log}"
    );
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn crustd_killed_with_shim_v2_pods_running_reconnects_after_restart() {
    let mut d = Daemon::start_with(HANDLER, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = run_on_shim(&d, &mut c, "shim-restart").await;
    let long = create(
        &mut c,
        &pod,
        ctr(
            "long",
            &env.image,
            "echo one; sleep 1; echo two; exec sleep 60",
        ),
    )
    .await
    .unwrap();
    start(&mut c, &long).await;
    let short = create(&mut c, &pod, ctr("short", &env.image, "sleep 2; exit 7"))
        .await
        .unwrap();
    start(&mut c, &short).await;
    d.kill9();
    // While crustd is down the short container exits and the long one keeps logging.
    tokio::time::sleep(Duration::from_secs(3)).await;
    d.restart().await;
    let mut c = d.client().await;
    assert_eq!(
        pod_state(&mut c, &pod).await,
        PodSandboxState::SandboxReady as i32
    );
    assert_eq!(
        status(&mut c, &long).await.state,
        ContainerState::ContainerRunning as i32
    );
    let s = wait_exited(&mut c, &short).await;
    assert_eq!(
        s.exit_code,
        7,
        "the exit while crustd was down, from the shim: {}",
        d.log_text()
    );
    assert!(
        log_has(&logs, "long.log", "stdout F two").await,
        "the logger outlived crustd"
    );
    let (code, out, _) = exec(&mut c, &long, "echo again", 10).await.unwrap();
    assert_eq!(
        (code, out.as_str()),
        (0, "again\n"),
        "the shim was reconnected"
    );
    let socket = shim_socket(&d, &pod);
    stop_remove(&mut c, &pod).await;
    assert!(!socket.exists());
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn a_shim_killed_mid_pod_leaves_it_notready_with_its_containers_exited() {
    let d = Daemon::start_with(HANDLER, &[]).await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, _logs) = run_on_shim(&d, &mut c, "shim-crash").await;
    let long = create(&mut c, &pod, ctr("long", &env.image, "exec sleep 60"))
        .await
        .unwrap();
    start(&mut c, &long).await;
    let socket = shim_socket(&d, &pod);
    let shims = d.processes("containerd-shim");
    assert_eq!(shims.len(), 1, "{shims:?}");
    let pid: i32 = shims[0].split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: SIGKILL to the shim process this test found.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let s = wait_exited(&mut c, &long).await;
    assert_eq!(
        s.exit_code, 137,
        "killed by the cleanup of the dead shim: {s:?}"
    );
    let notready = common::eventually(Duration::from_secs(10), || {
        let mut c = c.clone();
        let pod = pod.clone();
        async move { pod_state(&mut c, &pod).await == PodSandboxState::SandboxNotready as i32 }
    })
    .await;
    assert!(notready, "{}", d.log_text());
    stop_remove(&mut c, &pod).await;
    assert!(!socket.exists(), "the dead shim's socket was removed");
    d.assert_no_leaks().await;
}
