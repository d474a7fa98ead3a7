//! Pod networking end to end with the real CNI plugins (bridge, host-local, portmap from
//! /usr/lib/cni) wrapped by the failpoint plugin: both RunPodSandbox orders, and RELIABILITY.md
//! F1, F2, F3, F7, R2, C1. Traffic goes only to pod addresses in namespaces these tests created.

mod common;

use std::time::Duration;

use common::{ping, pod_ip, stop_remove, Daemon};
use cri_api::v1::{
    PodSandboxState, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StatusRequest, StopPodSandboxRequest,
};
use tonic::Code;

fn in_subnet(ip: &str, subnet: &str) -> bool {
    ip.starts_with(subnet.trim_end_matches("0/24"))
}

fn calls_for(d: &Daemon, plugin: &str, id: &str) -> Vec<String> {
    d.net
        .calls(plugin)
        .into_iter()
        .filter(|l| l.contains(id))
        .collect()
}

#[tokio::test]
async fn both_orders_give_a_pingable_pod_and_the_order_is_observable() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let status = c
        .status(StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert!(status
        .status
        .unwrap()
        .conditions
        .iter()
        .any(|c| c.r#type == "NetworkReady" && c.status));

    for network_first in [false, true] {
        let id = d
            .run_config(
                &mut c,
                d.net_pod(&format!("order-{network_first}"), network_first),
            )
            .await;
        let ip = pod_ip(&mut c, &id).await;
        assert!(in_subnet(&ip, &d.net.subnet), "{ip} in {}", d.net.subnet);
        assert!(ping(&ip), "pod {ip} answers ping");
        let adds = calls_for(&d, "bridge", &id);
        // A pinned sandbox (the default) has no process in either order; start-first, its
        // namespaces are pinned before the ADD (network-first, the pinning overlaps the ADD).
        assert_eq!(adds.len(), 1, "{adds:?}");
        assert!(
            adds[0].starts_with("ADD") && adds[0].contains("pause_running=0"),
            "network_first={network_first}: {adds:?}"
        );
        if !network_first {
            assert!(adds[0].contains("sandbox_up=1"), "{adds:?}");
        }
        let netns = d.state.join("netns").join(&id);
        assert!(netns.exists());
        let st = c
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            st.status.unwrap().state,
            PodSandboxState::SandboxReady as i32
        );
        assert!(
            st.info["info"].contains(&netns.display().to_string()),
            "sandbox key in the settings"
        );

        c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .unwrap();
        let calls = calls_for(&d, "bridge", &id);
        assert!(
            calls.iter().any(|l| l.starts_with("DEL")),
            "Stop ran DEL: {calls:?}"
        );
        assert!(d.net.allocated_ips().is_empty(), "Stop freed the IP");
        assert!(!ping(&ip));
        stop_remove(&mut c, &id).await;
        assert!(!netns.exists(), "Remove deleted the netns file");
        d.assert_no_leaks().await;
    }
}

/// Network-first: the CNI ADD and the pause's creation overlap (both need only the netns), and
/// the pause starts after both; start-first: ADD runs with the pause running.
#[tokio::test]
async fn network_first_overlaps_the_add_with_the_creation_and_starts_after_it() {
    let d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    d.net.fail("bridge", "ADD.sleep", "1");
    for network_first in [true, false] {
        let id = d
            .run_config(
                &mut c,
                d.net_pod(&format!("overlap-{network_first}"), network_first),
            )
            .await;
        let seen: Vec<String> = d
            .net
            .observed("bridge")
            .into_iter()
            .filter(|l| l.contains(&id))
            .collect();
        let want = match network_first {
            true => "created=1 running=0", // created during the ADD, not started before it ended
            false => "created=1 running=1",
        };
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert!(
            seen[0].ends_with(want),
            "network_first={network_first}: {seen:?}"
        );
        stop_remove(&mut c, &id).await;
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn f1_add_failure_carries_the_plugin_message_runs_del_and_leaves_nothing() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    for network_first in [false, true] {
        d.net.fail("bridge", "ADD", "");
        let config = d.net_pod("f1", network_first);
        let err = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config.clone()),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Internal);
        assert!(
            err.message().contains("set up the pod network"),
            "{}",
            err.message()
        );
        assert!(
            err.message().contains("injected ADD failure"),
            "{}",
            err.message()
        );
        let calls = d.net.calls("bridge");
        let last_add = calls.iter().rposition(|l| l.starts_with("ADD")).unwrap();
        assert!(
            calls[last_add..].iter().any(|l| l.starts_with("DEL")),
            "DEL after the failed ADD: {calls:?}"
        );
        assert!(common::list(&mut c).await.is_empty());
        d.assert_no_leaks().await;
        d.net.clear_failpoints();
        let id = d.run_config(&mut c, config).await;
        stop_remove(&mut c, &id).await;
        d.assert_no_leaks().await;
    }
}

#[tokio::test]
async fn f2_chain_fails_after_ipam_and_del_fails_once_ip_is_freed_eventually() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    for round in 0..3 {
        d.net.fail("portmap", "ADD.once", "");
        d.net.fail("bridge", "DEL.once", "");
        let err = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(d.net_pod("f2", false)),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert!(
            err.message().contains("not fully cleaned up"),
            "round {round}: {}",
            err.message()
        );
        let items = common::list(&mut c).await;
        assert_eq!(items.len(), 1, "kept NOTREADY while its IP is held");
        assert_eq!(d.net.allocated_ips().len(), 1, "no growth per retry");
        // Remove retries the DEL (which works now) and frees the IP.
        c.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: items[0].id.clone(),
        })
        .await
        .unwrap();
        d.assert_no_leaks().await;
    }
}

#[tokio::test]
async fn f3_junk_result_is_a_clear_error_and_a_corrupt_cache_does_not_wedge_stop() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    d.net.fail("portmap", "ADD.junk", "");
    let err = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(d.net_pod("f3", false)),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("unusable result"),
        "{}",
        err.message()
    );
    d.assert_no_leaks().await;
    d.net.clear_failpoints();

    let id = d.run_config(&mut c, d.net_pod("f3", false)).await;
    let cache = d.root.join("cni").join("results");
    for entry in std::fs::read_dir(&cache).unwrap() {
        std::fs::write(entry.unwrap().path(), b"{\"kind\":\"cniCa").unwrap();
    }
    stop_remove(&mut c, &id).await;
    assert!(calls_for(&d, "bridge", &id)
        .iter()
        .any(|l| l.starts_with("DEL")));
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn f7_without_cni_config_network_is_not_ready_and_run_fails_fast() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let id = d.run_config(&mut c, d.net_pod("f7", false)).await;
    let conf = d.net.conf_dir.join("10-test.conflist");
    std::fs::remove_file(&conf).unwrap();
    let st = c
        .status(StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    let network = st
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.r#type == "NetworkReady")
        .unwrap();
    assert!(!network.status);
    assert_eq!(network.reason, "NetworkPluginNotReady");
    assert!(
        network.message.contains("no CNI network config"),
        "{}",
        network.message
    );
    let started = std::time::Instant::now();
    let err = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(d.net_pod("f7b", false)),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(started.elapsed() < Duration::from_secs(1));
    // Host-network pods still run, and the existing pod is torn down with its cached config.
    let host = d.run_pod(&mut c, "f7-host").await;
    stop_remove(&mut c, &host).await;
    stop_remove(&mut c, &id).await;
    d.assert_no_leaks().await;
    // Picked up again without a restart.
    std::fs::write(&conf, d.net.conflist()).unwrap();
    let id = d.run_config(&mut c, d.net_pod("f7c", false)).await;
    stop_remove(&mut c, &id).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn r2_crash_during_add_leaves_a_notready_pod_whose_stop_runs_del() {
    let mut d = Daemon::start().await;
    let c = d.client().await;
    d.net.fail("portmap", "ADD.sleep", "3");
    let mut runner = c.clone();
    let config = d.net_pod("r2", false);
    let run = tokio::spawn(async move {
        runner
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
    });
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            !d.net.allocated_ips().is_empty()
        })
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.kill9();
    assert!(run.await.unwrap().is_err());
    d.net.clear_failpoints();
    d.restart().await;
    let mut c = d.client().await;
    let items = common::list(&mut c).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].state, PodSandboxState::SandboxNotready as i32);
    let id = items[0].id.clone();
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    assert!(
        d.net.allocated_ips().is_empty(),
        "Stop freed the IP of the interrupted ADD"
    );
    assert!(calls_for(&d, "bridge", &id)
        .iter()
        .any(|l| l.starts_with("DEL")));
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c1_hundred_parallel_pods_get_unique_ips_and_are_all_cleaned() {
    let d = Daemon::start().await;
    let c = d.client().await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let mut c = c.clone();
        let config = d.net_pod(&format!("c1-{i}"), i % 2 == 0);
        tasks.push(tokio::spawn(async move {
            c.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(
            t.await
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()))
                .into_inner()
                .pod_sandbox_id,
        );
    }
    let mut ips = std::collections::BTreeSet::new();
    for id in &ids {
        let mut c = c.clone();
        ips.insert(pod_ip(&mut c, id).await);
    }
    assert_eq!(ips.len(), 100, "100 unique IPs");
    let mut removals = Vec::new();
    for id in ids {
        let mut c = c.clone();
        removals.push(tokio::spawn(async move { stop_remove(&mut c, &id).await }));
    }
    for r in removals {
        r.await.unwrap();
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn r5_simulated_reboot_pods_notready_and_del_runs_with_an_empty_netns() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    let id = d.run_config(&mut c, d.net_pod("r5", false)).await;
    d.stop_graceful();
    // "Reboot": processes, runc state, mounts and the volatile state are gone.
    for pid in d.pause_pids() {
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert!(
        common::eventually(Duration::from_secs(2), || async {
            d.pause_pids().is_empty()
        })
        .await
    );
    let runc_root = d.state.join("runtime").join("runc");
    let _ = std::process::Command::new("runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["delete", "--force", &id])
        .status();
    std::fs::remove_dir_all(&runc_root).unwrap();
    let netns = d.state.join("netns").join(&id);
    nix::mount::umount2(&netns, nix::mount::MntFlags::MNT_DETACH).unwrap();
    let shm = d.state.join("sandboxes").join(&id).join("shm");
    nix::mount::umount2(&shm, nix::mount::MntFlags::MNT_DETACH).unwrap();
    for ns in ["ipc", "uts"] {
        let pin = d.state.join("sandboxes").join(&id).join("ns").join(ns);
        nix::mount::umount2(&pin, nix::mount::MntFlags::MNT_DETACH).unwrap();
    }
    d.restart().await;
    let mut c = d.client().await;
    let pods = common::list(&mut c).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].state, PodSandboxState::SandboxNotready as i32);
    stop_remove(&mut c, &id).await;
    let dels = calls_for(&d, "bridge", &id);
    let del = dels.iter().rev().find(|l| l.starts_with("DEL")).unwrap();
    assert!(
        del.ends_with("netns="),
        "DEL with an empty netns path: {dels:?}"
    );
    assert!(d.net.allocated_ips().is_empty(), "the IP was released");
    d.assert_no_leaks().await;
}
