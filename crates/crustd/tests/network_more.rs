//! More pod networking: client deadlines during ADD (F4), failed undo (F6) and pause death (F9)
//! in cni mode, teardown racing setup (C3), capability arguments and port mappings, extra networks
//! from the annotation, and the embedded default network.

mod common;

use std::time::Duration;

use common::{ping, pod_ip, stop_remove, Daemon};
use cri_api::v1::{
    PodSandboxState, PodSandboxStatusRequest, PortMapping, Protocol, RemovePodSandboxRequest,
    RunPodSandboxRequest, StopPodSandboxRequest, UpdateRuntimeConfigRequest,
};
use tonic::Code;

#[tokio::test]
async fn f4_client_deadline_during_add_then_retry_gets_the_one_sandbox() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    d.net.fail("bridge", "ADD.sleep", "3");
    let config = d.net_pod("f4", false);
    let mut req = tonic::Request::new(RunPodSandboxRequest {
        config: Some(config.clone()),
        runtime_handler: String::new(),
    });
    req.set_timeout(Duration::from_millis(1500));
    let err = c.run_pod_sandbox(req).await.unwrap_err();
    // tonic enforces the deadline on the client too and then says Cancelled ("Timeout expired").
    assert!(
        matches!(err.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{err:?}"
    );
    // kubelet retries with the same name: the retry waits for the first request and gets its pod.
    let id = d.run_config(&mut c, config.clone()).await;
    let id2 = d.run_config(&mut c, config).await;
    assert_eq!(id, id2);
    let items = common::list(&mut c).await;
    assert_eq!(items.len(), 1, "exactly one sandbox in the end");
    assert_eq!(items[0].state, PodSandboxState::SandboxReady as i32);
    assert!(ping(&pod_ip(&mut c, &id).await));
    stop_remove(&mut c, &id).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn f6_cni_undo_fails_pod_kept_notready_then_cleaned_across_restart() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    // Network first: ADD precedes runc create/start, so the undo has a DEL to run (and fail).
    let config = d.net_pod("f6", true);
    d.fail_runc("start");
    d.net.fail("bridge", "DEL.once", "");
    d.fail_runc("delete.once");
    let err = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: "failing".into(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("not fully cleaned up"),
        "{}",
        err.message()
    );
    let items = common::list(&mut c).await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].state, PodSandboxState::SandboxNotready as i32);
    d.stop_graceful();
    d.clear_runc_failpoints();
    d.restart().await;
    let mut c = d.client().await;
    stop_remove(&mut c, &items[0].id).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn f9_cni_pause_killed_then_stop_frees_the_ip() {
    let d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    let id = d.run_config(&mut c, d.net_pod("f9", false)).await;
    assert_eq!(d.net.allocated_ips().len(), 1);
    unsafe { libc::kill(d.pause_pids()[0], libc::SIGKILL) };
    let notready = common::eventually(Duration::from_secs(1), || {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            let st = c
                .pod_sandbox_status(PodSandboxStatusRequest {
                    pod_sandbox_id: id,
                    verbose: false,
                })
                .await
                .unwrap();
            st.into_inner().status.unwrap().state == PodSandboxState::SandboxNotready as i32
        }
    })
    .await;
    assert!(notready);
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    assert!(d.net.allocated_ips().is_empty());
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c3_cni_teardown_racing_run() {
    let d = Daemon::start().await;
    let c = d.client().await;
    for round in 0..4 {
        let config = d.net_pod(&format!("c3n-{round}"), round % 2 == 0);
        common::race_teardown_against_run(&c, config).await;
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn capabilities_reach_only_declaring_plugins_and_port_rules_come_and_go() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    c.update_runtime_config(UpdateRuntimeConfigRequest {
        runtime_config: Some(cri_api::v1::RuntimeConfig {
            network_config: Some(cri_api::v1::NetworkConfig {
                pod_cidr: d.net.subnet.clone(),
            }),
        }),
    })
    .await
    .unwrap();
    let host_port = 30000 + (std::process::id() % 20000) as i32;
    let mut config = d.net_pod("caps", false);
    config.port_mappings = vec![PortMapping {
        protocol: Protocol::Tcp as i32,
        container_port: 80,
        host_port,
        host_ip: "127.0.0.1".into(),
    }];
    config
        .annotations
        .insert("kubernetes.io/ingress-bandwidth".into(), "10M".into());
    config.annotations.insert(
        "extension.network.kubernetes.io/cniargs/CRUST_TEST".into(),
        "yes".into(),
    );
    let id = d.run_config(&mut c, config).await;
    let portmap = d.net.stdin_of("portmap", "ADD", &id);
    let rc = &portmap["runtimeConfig"];
    assert_eq!(rc["portMappings"][0]["hostPort"], host_port);
    assert_eq!(rc["portMappings"][0]["hostIP"], "127.0.0.1");
    assert_eq!(rc["bandwidth"]["ingressRate"], 10_000_000);
    assert_eq!(rc["ipRanges"][0][0]["subnet"], d.net.subnet.as_str());
    assert!(
        portmap["prevResult"]["ips"].is_array(),
        "chained with prevResult"
    );
    let bridge = d.net.stdin_of("bridge", "ADD", &id);
    assert!(
        bridge.get("runtimeConfig").is_none(),
        "bridge declares no capability: {bridge}"
    );
    let rules = || {
        String::from_utf8_lossy(
            &std::process::Command::new("iptables-save")
                .output()
                .unwrap()
                .stdout,
        )
        .into_owned()
    };
    assert!(
        rules().contains(&format!("--dport {host_port}")),
        "portmap installed its DNAT rule"
    );
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    assert!(
        !rules().contains(&format!("--dport {host_port}")),
        "DEL (with the cached port mappings) removed it"
    );
    let del = d.net.stdin_of("portmap", "DEL", &id);
    assert_eq!(
        del["runtimeConfig"]["portMappings"][0]["hostPort"],
        host_port
    );
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn extra_networks_from_the_annotation_and_dual_attachment_status() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let suffix: String = d.net.bridge.chars().rev().take(5).collect();
    let (name2, bridge2) = (format!("crustextra-{suffix}"), format!("crustx-{suffix}"));
    let subnet2 = {
        let third: u32 = d.net.subnet.split('.').nth(2).unwrap().parse().unwrap();
        format!(
            "10.{}.{}.0/24",
            d.net.subnet.split('.').nth(1).unwrap(),
            (third + 1) % 256
        )
    };
    let conf2 = serde_json::json!({
        "cniVersion": "1.0.0", "name": name2,
        "plugins": [{ "type": "bridge", "bridge": bridge2, "isGateway": false,
                      "ipam": { "type": "host-local", "ranges": [[{ "subnet": subnet2 }]],
                                "dataDir": d.dir.path().join("ipam2") } }]
    });
    std::fs::write(d.net.conf_dir.join("20-extra.conflist"), conf2.to_string()).unwrap();
    let mut config = d.net_pod("extra", false);
    config.annotations.insert(
        "network.alpha.kubernetes.io/network".into(),
        format!("[{{\"name\":\"{name2}\",\"interface\":\"net1\"}}]"),
    );
    let id = d.run_config(&mut c, config).await;
    let st = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        })
        .await
        .unwrap();
    let net = st.into_inner().status.unwrap().network.unwrap();
    assert!(
        net.ip.starts_with(d.net.subnet.trim_end_matches("0/24")),
        "primary is eth0's: {net:?}"
    );
    assert_eq!(net.additional_ips.len(), 1, "{net:?}");
    assert!(net.additional_ips[0]
        .ip
        .starts_with(subnet2.trim_end_matches("0/24")));
    let netns = d.state.join("netns").join(&id);
    let links = std::process::Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        links.contains("net1@") && links.contains("eth0@"),
        "{links}"
    );
    // Unknown networks in the annotation are refused before any side effect.
    let mut bad = d.net_pod("extra-bad", false);
    bad.annotations.insert(
        "network.alpha.kubernetes.io/network".into(),
        "[{\"name\":\"nope\"}]".into(),
    );
    let err = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(bad),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    stop_remove(&mut c, &id).await;
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &bridge2])
        .output();
    let ipam2: Vec<_> = std::fs::read_dir(d.dir.path().join("ipam2").join(&name2))
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name())
                .filter(|n| n != "lock" && !n.to_string_lossy().starts_with("last_"))
                .collect()
        })
        .unwrap_or_default();
    assert!(ipam2.is_empty(), "{ipam2:?}");
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn embedded_default_network_when_the_conf_dir_is_empty() {
    let probe = Daemon::start().await; // only to pick a free subnet and a unique suffix
    let subnet = probe.net.subnet.clone();
    let bridge = format!("crust-e{}", &probe.net.bridge[6..]);
    drop(probe);
    let extra = format!(
        "default_network = true\ndefault_network_bridge = \"{bridge}\"\ndefault_network_subnet = \"{subnet}\"\n"
    );
    let d = Daemon::start_with("", &[]).await;
    // Re-point the daemon at an empty conf dir with the embedded default on.
    let cfg = std::fs::read_to_string(&d.config).unwrap();
    let empty = d.dir.path().join("empty.d");
    std::fs::create_dir_all(&empty).unwrap();
    let cfg = cfg
        .replace(
            &format!("conf_dir = \"{}\"", d.net.conf_dir.display()),
            &format!("conf_dir = \"{}\"", empty.display()),
        )
        .replace("default_network = false\n", &extra);
    std::fs::write(&d.config, cfg).unwrap();
    let mut d = d;
    d.stop_graceful();
    let _ = std::fs::remove_dir_all(d.state.join("cni/net.d"));
    d.restart().await;
    // Written as soon as crustd serves, before any pod (crust bench --floor reads it).
    let conflist = d.state.join("cni/net.d/10-crust.conflist");
    assert!(conflist.exists(), "the embedded network exists at start");
    let mut c = d.client().await;
    let id = d.run_config(&mut c, d.net_pod("embedded", false)).await;
    let ip = pod_ip(&mut c, &id).await;
    assert!(
        ip.starts_with(subnet.trim_end_matches("0/24")),
        "{ip} in {subnet}"
    );
    assert!(ping(&ip));
    let written = std::fs::read_to_string(d.state.join("cni/net.d/10-crust.conflist")).unwrap();
    assert!(written.contains(&bridge));
    stop_remove(&mut c, &id).await;
    let held = std::path::Path::new("/var/lib/cni/networks/crust").join(&ip);
    assert!(!held.exists(), "host-local released {ip}");
    let links = std::process::Command::new("ip")
        .args(["-o", "link", "show", "master", &bridge])
        .output()
        .unwrap();
    assert!(links.stdout.is_empty());
    let _ = std::process::Command::new("ip")
        .args(["link", "del", &bridge])
        .output();
    let rules = String::from_utf8_lossy(
        &std::process::Command::new("iptables-save")
            .output()
            .unwrap()
            .stdout,
    )
    .into_owned();
    assert!(!rules.contains(&id), "ipMasq rules removed");
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn f5_cni_runc_create_fails_after_add_in_network_first_order() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    d.fail_runc("create");
    let err = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(d.net_pod("f5n", true)),
            runtime_handler: "failing".into(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("create the sandbox container"),
        "{}",
        err.message()
    );
    let calls = d.net.calls("bridge");
    assert!(
        calls.iter().any(|l| l.starts_with("ADD")) && calls.iter().any(|l| l.starts_with("DEL")),
        "{calls:?}"
    );
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn stale_netns_files_are_removed_at_start() {
    let mut d = Daemon::start().await;
    d.stop_graceful();
    let stale = d.state.join("netns").join("f".repeat(64));
    std::fs::create_dir_all(stale.parent().unwrap()).unwrap();
    std::fs::write(&stale, b"").unwrap();
    let pinned = std::process::Command::new("unshare")
        .arg(format!("--net={}", stale.display()))
        .arg("true")
        .status()
        .unwrap();
    assert!(pinned.success());
    assert!(std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&stale.display().to_string()));
    d.restart().await;
    assert!(!stale.exists(), "a netns no record owns is removed");
    d.assert_no_leaks().await;
}

/// What a SIGKILL between an atomic write's create and its rename leaves (the CNI cache entry,
/// sandbox, container and image records) is gone after the restart; the pod stays READY and
/// its Stop/Remove leaves nothing.
#[tokio::test]
async fn temp_files_a_kill_left_are_swept_at_start() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    let id = d.run_config(&mut c, d.net_pod("swept", false)).await;
    d.kill9();
    let results = d.root.join("cni/results");
    let left = [
        results.join(format!("{}-{id}-eth1.tmp", d.net.name)),
        results.join("other-net-0123-eth0.tmp"),
        d.root.join("sandboxes").join(&id).join(".sandbox.json.tmp"),
        d.root.join("images/metadata/.abc.json.tmp"),
    ];
    for f in &left {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"{\"trunc").unwrap();
    }
    d.restart().await;
    for f in &left {
        assert!(!f.exists(), "{} swept", f.display());
    }
    let mut c = d.client().await;
    let pods = common::list(&mut c).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        pods[0].state,
        cri_api::v1::PodSandboxState::SandboxReady as i32
    );
    // A temp entry written after the start (a later cut write) goes with its pod.
    let late = results.join(format!("{}-{id}-eth0.tmp", d.net.name));
    std::fs::write(&late, b"").unwrap();
    stop_remove(&mut c, &id).await;
    assert!(!late.exists(), "the pod's temp CNI entry went with the pod");
    d.assert_no_leaks().await;
}

/// A graceful shutdown (SIGTERM) lets a RunPodSandbox that is still running finish instead of
/// cutting it like a crash: the caller gets its pod, which is READY after the restart.
#[tokio::test]
async fn sigterm_waits_for_a_running_run_pod_sandbox() {
    let mut d = Daemon::start().await;
    let c = d.client().await;
    // Longer than the 2 s crustd gives open connections: only the drain lets it finish.
    d.net.fail("bridge", "ADD.sleep", "4");
    let mut client = c.clone();
    let config = d.net_pod("drain", true);
    let run = tokio::spawn(async move {
        client
            .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // SAFETY: a signal to the test's own crustd.
    unsafe { libc::kill(d.pid() as i32, libc::SIGTERM) };
    let id = run
        .await
        .unwrap()
        .expect("the call finished")
        .into_inner()
        .pod_sandbox_id;
    d.stop_graceful();
    d.net.clear_failpoints();
    d.restart().await;
    let mut c = d.client().await;
    let pods = common::list(&mut c).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(
        (pods[0].id.as_str(), pods[0].state),
        (
            id.as_str(),
            cri_api::v1::PodSandboxState::SandboxReady as i32
        )
    );
    stop_remove(&mut c, &id).await;
    d.assert_no_leaks().await;
}
