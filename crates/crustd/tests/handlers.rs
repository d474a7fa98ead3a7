//! Runtime handlers (#13): the RunPodSandbox order each handler defaults to and the pod
//! annotation overriding it both ways (seen through the failpoint CNI plugin's record of whether
//! the pause ran at ADD, and in verbose status), and what a handler's table changes for its pods:
//! `runtime_args` on every runtime call, `pod_annotations` in the OCI specs, and
//! `privileged_without_host_devices`.

mod common;

use std::path::Path;

use common::{
    ctr::{busybox, create, ctr, exec, start},
    stop_remove, Client, Daemon,
};
use cri_api::v1::{
    LinuxContainerConfig, LinuxContainerSecurityContext, PodSandboxConfig, RunPodSandboxRequest,
};
use tonic::Code;

const ANNOTATION: &str = "cri.sandbox.network.setup.v2";

async fn run_on(
    c: &mut Client,
    config: PodSandboxConfig,
    handler: &str,
) -> Result<String, tonic::Status> {
    c.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: handler.into(),
    })
    .await
    .map(|r| r.into_inner().pod_sandbox_id)
}

async fn info(c: &mut Client, id: &str) -> serde_json::Value {
    common::pod_info(c, id).await.1
}

#[tokio::test]
async fn the_handler_default_order_and_the_annotation_override_both_ways() {
    let d = Daemon::start_with(
        // Pause sandboxes: whether the pause ran at ADD shows the order.
        &format!("{}[runtimes.runc-netfirst]\npath = \"runc\"\nnetwork_setup = \"before-start\"\nsandbox = \"pause\"\n", common::PAUSE_SANDBOX),
        &[],
    )
    .await;
    let mut c = d.client().await;
    // (handler, annotation, pause running at CNI ADD, order, reason mentions)
    let cases = [
        ("", None, true, "after-start", "handler \"runc\" default"),
        ("", Some("true"), false, "before-start", "annotation"),
        (
            "runc-netfirst",
            None,
            false,
            "before-start",
            "\"runc-netfirst\" default",
        ),
        (
            "runc-netfirst",
            Some("false"),
            true,
            "after-start",
            "annotation",
        ),
    ];
    for (i, (handler, annotation, after_start, order, why)) in cases.into_iter().enumerate() {
        let mut config = d.net_pod(&format!("order-{i}"), false);
        if let Some(v) = annotation {
            config.annotations.insert(ANNOTATION.into(), v.into());
        }
        let id = run_on(&mut c, config, handler).await.unwrap();
        let adds: Vec<String> = d
            .net
            .calls("bridge")
            .into_iter()
            .filter(|l| l.starts_with("ADD") && l.contains(&id))
            .collect();
        let expected = format!("pause_running={}", after_start as u8);
        assert!(
            adds.len() == 1 && adds[0].contains(&expected),
            "case {i} ({handler:?}, {annotation:?}): {adds:?}"
        );
        let chosen = &info(&mut c, &id).await["networkSetup"];
        assert_eq!(chosen["order"], order, "case {i}: {chosen}");
        let reason = chosen["reason"].as_str().unwrap();
        assert!(reason.contains(why), "case {i}: {reason}");
        stop_remove(&mut c, &id).await;
    }
    let mut config = d.net_pod("order-bad", false);
    config.annotations.insert(ANNOTATION.into(), "maybe".into());
    let err = run_on(&mut c, config, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains(ANNOTATION), "{err}");
    assert!(common::list(&mut c).await.is_empty(), "nothing half-built");
    d.assert_no_leaks().await;
}

/// A privileged container's view of host devices: which of `devices` it sees.
async fn visible(c: &mut Client, id: &str, devices: &[&str]) -> Vec<String> {
    let script = format!(
        "for f in {}; do [ -e $f ] && echo $f; done; true",
        devices.join(" ")
    );
    let (code, out, _) = exec(c, id, &script, 10).await.unwrap();
    assert_eq!(code, 0);
    out.lines().map(str::to_string).collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn privileged(name: &str, image: &str) -> cri_api::v1::ContainerConfig {
    let mut config = ctr(name, image, "sleep 60");
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    config
}

#[tokio::test]
async fn a_handler_table_shapes_its_pods_args_annotations_and_devices() {
    // Pause sandboxes: the pause's spec and runc log show what the handler passed.
    let d = Daemon::start_with(
        &format!(
            "{}[runtimes.runc-vm]\npath = \"runc\"\nruntime_args = [\"--debug\"]\n\
             pod_annotations = [\"example.com/pass-*\"]\nprivileged_without_host_devices = true\n\
             sandbox = \"pause\"\n",
            common::PAUSE_SANDBOX
        ),
        &[],
    )
    .await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    // Host device nodes that runc does not create on its own.
    let host: Vec<&str> = [
        "/dev/net/tun",
        "/dev/loop-control",
        "/dev/kmsg",
        "/dev/fuse",
    ]
    .into_iter()
    .filter(|p| Path::new(p).exists())
    .collect();
    assert!(!host.is_empty(), "this host has none of the probe devices");
    for handler in ["runc", "runc-vm"] {
        let mut config = d.pod(&format!("shape-{handler}"));
        let sc = config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap();
        sc.privileged = true;
        config
            .annotations
            .insert("example.com/pass-me".into(), "1".into());
        config
            .annotations
            .insert("example.com/hidden".into(), "2".into());
        let pod = run_on(&mut c, config, handler).await.unwrap();
        let bundle = d.state.join("sandboxes").join(&pod).join("bundle");
        let spec = json(&bundle.join("config.json"));
        let vm = handler == "runc-vm";
        let a = &spec["annotations"];
        assert_eq!(a["io.kubernetes.cri.sandbox-id"], pod.as_str());
        assert_eq!(a.get("example.com/pass-me").is_some(), vm, "{a}");
        assert!(a.get("example.com/hidden").is_none(), "{a}");

        let id = create(&mut c, &pod, privileged("dev", &env.image))
            .await
            .unwrap();
        start(&mut c, &id).await;
        let dir = d.root.join("containers").join(&id);
        let a = json(&dir.join("config.json"))["annotations"].clone();
        assert_eq!(a["io.kubernetes.cri.container-type"], "container");
        assert_eq!(a["io.kubernetes.cri.sandbox-id"], pod.as_str());
        assert_eq!(a["io.kubernetes.cri.container-name"], "dev");
        assert_eq!(a["io.kubernetes.cri.image-name"], env.image.as_str());
        assert_eq!(a.get("example.com/pass-me").is_some(), vm, "{a}");
        assert!(a.get("example.com/hidden").is_none(), "{a}");

        // `--debug` went to the pause's create (crustd) and the container's (crust-shim).
        for log in [bundle.join("runc.log"), dir.join("runc.log")] {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert_eq!(
                text.contains("\"level\":\"debug\""),
                vm,
                "{}: {text}",
                log.display()
            );
        }
        let seen = visible(&mut c, &id, &host).await;
        if vm {
            assert!(seen.is_empty(), "privileged_without_host_devices: {seen:?}");
        } else {
            assert_eq!(seen, host, "a privileged container sees the host's devices");
        }
        stop_remove(&mut c, &pod).await;
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn bad_handler_tables_are_refused_at_start() {
    for (table, needle) in [
        ("[runtimes.x]\nroot = \"relative\"\n", "root"),
        (
            "[runtimes.x]\npod_annotations = [\"*\"]\n",
            "pod_annotations",
        ),
        (
            "[runtimes.x]\nnetwork_setup = \"sometimes\"\n",
            "network_setup",
        ),
        ("[runtimes.x]\ntype = \"kvm\"\n", "type"),
        ("[runtimes.x]\nbinary = \"runc\"\n", "binary"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(&config, table).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_crustd"))
            .arg("--config")
            .arg(&config)
            .arg("config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(needle),
            "{table}: {err}"
        );
    }
}

async fn container_stats(c: &mut Client, id: &str) -> cri_api::v1::ContainerStats {
    c.container_stats(cri_api::v1::ContainerStatsRequest {
        container_id: id.into(),
    })
    .await
    .unwrap()
    .into_inner()
    .stats
    .unwrap()
}

/// gVisor (Debian's runsc) as an `oci` handler: a host-network pod whose containers run inside
/// one gVisor sandbox (grouped by the container-type / sandbox-id annotations), with CRI logs,
/// ExecSync, stats, exit codes and stop; then nothing of it is left.
#[tokio::test]
async fn runsc_runs_a_host_network_pod_inside_gvisor() {
    let d = Daemon::start_with(
        "[runtimes.runsc]\nruntime_args = [\"--network=host\"]\n",
        &[],
    )
    .await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let mut config = d.pod("gvisor");
    let logs = d.root.parent().unwrap().join("logs-gvisor");
    config.log_directory = logs.display().to_string();
    let pod = run_on(&mut c, config, "runsc")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    let script =
        "echo hello from $(busybox uname -s); busybox dmesg | busybox head -1; exec sleep 60";
    let long = create(&mut c, &pod, ctr("long", &env.image, script))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    start(&mut c, &long).await;
    let short = create(&mut c, &pod, ctr("short", &env.image, "echo bye; exit 3"))
        .await
        .unwrap();
    start(&mut c, &short).await;
    let s = common::ctr::wait_exited(&mut c, &short).await;
    assert_eq!(s.exit_code, 3, "the exit code comes through runsc wait");
    let (code, out, _) = exec(&mut c, &long, "busybox dmesg", 10).await.unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("Starting gVisor"), "gVisor's kernel: {out}");
    let (code, _, _) = exec(&mut c, &long, "exit 5", 10).await.unwrap();
    assert_eq!(code, 5);
    let ok = common::eventually(std::time::Duration::from_secs(5), || {
        let logs = logs.clone();
        async move {
            let text = std::fs::read_to_string(logs.join("long.log")).unwrap_or_default();
            text.contains("Starting gVisor")
        }
    })
    .await;
    let text = std::fs::read_to_string(logs.join("long.log")).unwrap_or_default();
    assert!(ok && text.contains("stdout F hello from Linux"), "{text}");
    let bye = std::fs::read_to_string(logs.join("short.log")).unwrap_or_default();
    assert!(bye.contains("stdout F bye"), "{bye}");
    let stats = container_stats(&mut c, &long).await;
    assert_eq!(stats.attributes.unwrap().id, long);
    c.stop_container(cri_api::v1::StopContainerRequest {
        container_id: long.clone(),
        timeout: 2,
    })
    .await
    .unwrap();
    let s = common::ctr::status(&mut c, &long).await;
    assert_eq!(s.state, cri_api::v1::ContainerState::ContainerExited as i32);
    assert!(s.exit_code == 137 || s.exit_code == 143, "{}", s.exit_code);
    // A created container that never starts is removable too.
    let idle = create(&mut c, &pod, ctr("idle", &env.image, "true"))
        .await
        .unwrap();
    c.remove_container(cri_api::v1::RemoveContainerRequest { container_id: idle })
        .await
        .unwrap();
    stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// Pod-network pods under runsc. gVisor's own netstack (`--network=sandbox`, runsc's default)
/// refuses every network namespace on this kernel: Debian's runsc (20221219) tells the root
/// netns by `/proc/sys/net/core/rmem_default`, which Linux 6.x shows in every netns
/// (google/gvisor#10704, fixed upstream in 2024). RunPodSandbox then fails cleanly. With
/// `--network=host` the sandbox uses the host kernel's stack inside the pod's pinned netns, so the
/// pod gets its CNI address and answers on it.
#[tokio::test]
async fn runsc_pod_network_pods_work_with_the_host_stack_in_the_pod_netns() {
    let d = Daemon::start_with(
        "[runtimes.runsc]\nruntime_args = [\"--network=host\"]\nnetwork_setup = \"before-start\"\n\
         [runtimes.runsc-netstack]\npath = \"runsc\"\n",
        &[],
    )
    .await;
    let mut c = d.client().await;
    let pod = run_on(&mut c, d.net_pod("gvisor-net", false), "runsc")
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()));
    assert_eq!(
        info(&mut c, &pod).await["networkSetup"]["order"],
        "before-start"
    );
    let ip = common::pod_ip(&mut c, &pod).await;
    assert!(common::ping(&ip), "the gVisor pod answers on {ip}");
    stop_remove(&mut c, &pod).await;

    let err = run_on(
        &mut c,
        d.net_pod("gvisor-netstack", false),
        "runsc-netstack",
    )
    .await
    .unwrap_err();
    assert!(
        err.message().contains("root network namespace"),
        "runsc's own netstack on this kernel: {err}"
    );
    assert!(common::list(&mut c).await.is_empty(), "rolled back");
    d.assert_no_leaks().await; // runsc's list of every handler root included
}
