//! Pinned-namespace sandboxes (#16): a pod whose containers do not share a PID namespace runs
//! no process of its own; crustd pins its network, IPC and UTS namespaces, sets its hostname and
//! sysctls in them, and its containers join them. Events, stats, restart and teardown as for a
//! pause sandbox; pods sharing a PID namespace, and `sandbox = "pause"` handlers, keep the pause.

mod common;

use std::{os::unix::fs::MetadataExt, path::Path, time::Duration};

use common::{
    ctr::{busybox, create, ctr, exec, start, status},
    Client, Daemon,
};
use cri_api::v1::{
    ContainerEventType, ContainerState, GetEventsRequest, LinuxContainerConfig,
    LinuxContainerSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxState, PodSandboxStatsRequest, RemovePodSandboxRequest, StopPodSandboxRequest,
};
use futures_util::StreamExt;
use tonic::Code;

async fn info(c: &mut Client, id: &str) -> (i32, serde_json::Value) {
    common::pod_info(c, id).await
}

/// `<kind>:[<inode>]`, as `readlink /proc/self/ns/<kind>` prints a namespace.
fn ns_link(kind: &str, pin: &Path) -> String {
    format!("{kind}:[{}]", std::fs::metadata(pin).unwrap().ino())
}

/// Processes (other than runc's own) in the network namespace pinned at `netns`.
fn processes_in(netns: &Path) -> Vec<String> {
    let ino = std::fs::metadata(netns).unwrap().ino();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| std::fs::metadata(e.path().join("ns/net")).is_ok_and(|m| m.ino() == ino))
        .map(|e| std::fs::read_to_string(e.path().join("comm")).unwrap_or_default())
        .collect()
}

fn pinned_pod(d: &Daemon, name: &str) -> PodSandboxConfig {
    let mut config = d.net_pod(name, false);
    config.hostname = format!("{name}-host");
    let linux = config.linux.as_mut().unwrap();
    linux.sysctls = [
        ("kernel.shm_rmid_forced".to_string(), "1".to_string()),
        (
            "net.ipv4.ip_unprivileged_port_start".to_string(),
            "81".to_string(),
        ),
    ]
    .into();
    config
}

async fn next_event(events: &mut tonic::Streaming<cri_api::v1::ContainerEventResponse>) -> i32 {
    tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("event")
        .unwrap()
        .unwrap()
        .container_event_type
}

#[tokio::test]
async fn a_pinned_pod_runs_no_process_and_its_containers_share_its_namespaces() {
    let mut d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let mut events = c
        .clone()
        .get_container_events(GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let pod = d.run_config(&mut c, pinned_pod(&d, "pin")).await;
    assert_eq!(
        next_event(&mut events).await,
        ContainerEventType::ContainerCreatedEvent as i32
    );
    assert_eq!(
        next_event(&mut events).await,
        ContainerEventType::ContainerStartedEvent as i32
    );

    // No process at all: none in the pod's cgroups, none in its netns.
    let netns = d.state.join("netns").join(&pod);
    assert!(d.pause_pids().is_empty(), "{:?}", d.pause_pids());
    assert!(
        processes_in(&netns).is_empty(),
        "{:?}",
        processes_in(&netns)
    );
    let mut pins = d.pinned_namespaces();
    pins.sort();
    assert_eq!(pins, [format!("{pod}/ipc"), format!("{pod}/uts")]);
    let (state, inf) = info(&mut c, &pod).await;
    assert_eq!(state, PodSandboxState::SandboxReady as i32);
    assert_eq!(inf["sandbox"]["kind"], "pinned", "{inf}");
    assert!(inf["pause"].is_null(), "{inf}");
    let ns_dir = d.state.join("sandboxes").join(&pod).join("ns");
    assert_eq!(
        inf["sandbox"]["ipc"],
        ns_dir.join("ipc").display().to_string()
    );

    // Two containers: the pod's network, IPC and UTS namespaces, each its own PID namespace.
    let probe = "for n in net ipc uts; do readlink /proc/self/ns/$n; done; hostname; \
                 cat /proc/sys/kernel/shm_rmid_forced /proc/sys/net/ipv4/ip_unprivileged_port_start; \
                 readlink /proc/self/ns/pid";
    let want = [
        ns_link("net", &netns),
        ns_link("ipc", &ns_dir.join("ipc")),
        ns_link("uts", &ns_dir.join("uts")),
        "pin-host".to_string(),
        "1".to_string(),
        "81".to_string(),
    ];
    let mut pid_namespaces = Vec::new();
    for name in ["a", "b"] {
        let id = create(&mut c, &pod, ctr(name, &env.image, "exec sleep 100"))
            .await
            .unwrap();
        start(&mut c, &id).await;
        let (code, out, err) = exec(&mut c, &id, probe, 10).await.unwrap();
        assert_eq!(code, 0, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 7, "{out}");
        assert_eq!(lines[..6], want.each_ref().map(String::as_str), "{out}");
        pid_namespaces.push(lines[6].to_string());
    }
    assert_ne!(pid_namespaces[0], pid_namespaces[1], "own PID namespaces");

    // The pod has no PID namespace to share.
    let mut shared = ctr("shared", &env.image, "exec sleep 100");
    shared.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            namespace_options: Some(NamespaceOption {
                network: NamespaceMode::Pod as i32,
                pid: NamespaceMode::Pod as i32,
                ipc: NamespaceMode::Pod as i32,
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let err = create(&mut c, &pod, shared).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Pod stats: the network counters read inside the netns, the containers' processes.
    let stats = c
        .pod_sandbox_stats(PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = stats.linux.unwrap();
    let net = linux.network.expect("pod network counters");
    assert_eq!(net.default_interface.unwrap().name, "eth0");
    assert_eq!(linux.process.unwrap().process_count.unwrap().value, 2);

    // kill -9 and restart: still READY (nothing died), the containers still run in it.
    d.kill9();
    d.restart().await;
    let mut c = d.client().await;
    assert_eq!(
        info(&mut c, &pod).await.0,
        PodSandboxState::SandboxReady as i32
    );
    let ids: Vec<String> = c
        .list_containers(cri_api::v1::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids.len(), 2);
    for id in &ids {
        assert_eq!(
            status(&mut c, id).await.state,
            ContainerState::ContainerRunning as i32
        );
        let (_, out, _) = exec(&mut c, id, probe, 10).await.unwrap();
        assert!(out.starts_with(&want[0]), "{out}");
    }

    // Stop unpins (the namespaces go with the containers); Stop and Remove are idempotent.
    for _ in 0..2 {
        c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    }
    assert_eq!(
        info(&mut c, &pod).await.0,
        PodSandboxState::SandboxNotready as i32
    );
    assert!(
        d.pinned_namespaces().is_empty(),
        "{:?}",
        d.pinned_namespaces()
    );
    for _ in 0..2 {
        c.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn pins_gone_while_crustd_was_down_make_the_pod_notready() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, pinned_pod(&d, "gone")).await;
    d.kill9();
    let uts = d.state.join("sandboxes").join(&pod).join("ns/uts");
    nix::mount::umount2(&uts, nix::mount::MntFlags::MNT_DETACH).unwrap();
    d.restart().await;
    let mut c = d.client().await;
    let (state, inf) = info(&mut c, &pod).await;
    assert_eq!(state, PodSandboxState::SandboxNotready as i32);
    assert!(
        inf["reason"]
            .as_str()
            .unwrap()
            .contains("pinned namespaces are gone"),
        "{inf}"
    );
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn shared_pid_pods_and_pause_handlers_keep_the_pause() {
    let d = Daemon::start_with(
        "[runtimes.runc-pause]\npath = \"runc\"\nsandbox = \"pause\"\n",
        &[],
    )
    .await;
    let mut c = d.client().await;
    let mut shared = d.net_pod("shared-pid", false);
    common::ns_options(&mut shared).pid = NamespaceMode::Pod as i32;
    let a = d.run_config(&mut c, shared).await;
    let b = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(d.net_pod("pause-handler", false)),
            runtime_handler: "runc-pause".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    assert_eq!(d.pause_pids().len(), 2, "one pause each");
    for id in [&a, &b] {
        let (_, inf) = info(&mut c, id).await;
        assert_eq!(inf["sandbox"]["kind"], "pause", "{inf}");
        assert!(inf["pause"]["pid"].as_i64().unwrap() > 0, "{inf}");
        let netns = d.state.join("netns").join(id);
        assert_eq!(processes_in(&netns), ["pause\n"]);
    }
    assert!(d.pinned_namespaces().is_empty());
    for id in [a, b] {
        common::stop_remove(&mut c, &id).await;
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn a_sysctl_the_kernel_refuses_fails_run_and_leaves_nothing() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let mut config = pinned_pod(&d, "bad-sysctl");
    let linux = config.linux.as_mut().unwrap();
    linux.sysctls.insert(
        "net.ipv4.ip_unprivileged_port_start".into(),
        "not-a-number".into(),
    );
    let err = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message()
            .contains("net.ipv4.ip_unprivileged_port_start"),
        "{err:?}"
    );
    assert!(common::list(&mut c).await.is_empty());
    assert!(d.pinned_namespaces().is_empty());
    d.assert_no_leaks().await;
}
