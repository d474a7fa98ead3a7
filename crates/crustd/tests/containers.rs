//! Containers in pods end to end: images from a real registry, real runc, crust-shim with CRI
//! logs and exit codes, stop escalation, pod teardown cascading to containers, restart recovery,
//! guards, and the leak check (shims, runc containers, overlay mounts, cgroups, records).

mod common;

use std::time::Duration;

use common::{
    ctr::{busybox, create, ctr, exec, pod_with_logs, start, status, wait_exited},
    Client, Daemon,
};
use cri_api::v1::{
    ContainerFilter, ContainerState, ContainerStateValue, ContainerStatusRequest, ImageSpec,
    LinuxContainerConfig, LinuxContainerSecurityContext, ListContainersRequest,
    RemoveContainerRequest, StartContainerRequest, StopContainerRequest,
};
use tonic::Code;

#[tokio::test]
async fn lifecycle_logs_exit_codes_and_stop_escalation() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = pod_with_logs(&d, &mut c, "ctr-life").await;
    let mut events = c
        .clone()
        .get_container_events(cri_api::v1::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let script = "echo hello; echo oops >&2; echo $FROM_IMAGE $MINE; printf partial; exit 3";
    let mut config = ctr("echo", &env.image, script);
    config.envs = vec![cri_api::v1::KeyValue {
        key: "MINE".into(),
        value: "2".into(),
    }];
    let id = create(&mut c, &pod, config).await.unwrap();
    assert_eq!(
        status(&mut c, &id).await.state,
        ContainerState::ContainerCreated as i32
    );
    start(&mut c, &id).await;
    let s = wait_exited(&mut c, &id).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (3, "Error"));
    assert!(s.started_at > 0 && s.finished_at >= s.started_at);
    assert_eq!(s.log_path, logs.join("echo.log").display().to_string());
    let text = std::fs::read_to_string(logs.join("echo.log")).unwrap();
    let records: Vec<(&str, &str, &str)> = text
        .lines()
        .map(|l| {
            let mut it = l.splitn(4, ' ');
            let ts = it.next().unwrap();
            assert!(ts.ends_with('Z') && ts.len() == 30, "RFC3339Nano: {ts}");
            (
                it.next().unwrap(),
                it.next().unwrap(),
                it.next().unwrap_or(""),
            )
        })
        .collect();
    assert!(records.contains(&("stdout", "F", "hello")), "{text}");
    assert!(records.contains(&("stderr", "F", "oops")), "{text}");
    assert!(
        records.contains(&("stdout", "F", "1 2")),
        "image env + config env: {text}"
    );
    assert!(records.contains(&("stdout", "F", "partial")), "{text}");
    // CREATED, STARTED, STOPPED on the bus, with the container's and the pod's status.
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let e = tokio::time::timeout(Duration::from_secs(5), events.message())
            .await
            .expect("container events")
            .unwrap()
            .unwrap();
        if e.container_id == id {
            assert_eq!(e.containers_statuses[0].id, id);
            assert_eq!(e.pod_sandbox_status.as_ref().unwrap().id, pod);
            seen.push(e.container_event_type);
        }
    }
    use cri_api::v1::ContainerEventType as T;
    assert_eq!(
        seen,
        [
            T::ContainerCreatedEvent as i32,
            T::ContainerStartedEvent as i32,
            T::ContainerStoppedEvent as i32
        ]
    );
    // A process that ignores SIGTERM (pid 1 without a handler) is killed at the deadline.
    let id2 = create(&mut c, &pod, ctr("sleeper", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id2).await;
    assert_eq!(
        status(&mut c, &id2).await.state,
        ContainerState::ContainerRunning as i32
    );
    let running = c
        .list_containers(ListContainersRequest {
            filter: Some(ContainerFilter {
                state: Some(ContainerStateValue {
                    state: ContainerState::ContainerRunning as i32,
                }),
                pod_sandbox_id: pod[..12].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(
        running.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
        [id2.as_str()]
    );
    let started = std::time::Instant::now();
    c.stop_container(StopContainerRequest {
        container_id: id2.clone(),
        timeout: 1,
    })
    .await
    .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    let s = status(&mut c, &id2).await;
    assert_eq!(
        (s.state, s.exit_code),
        (ContainerState::ContainerExited as i32, 137)
    );
    c.stop_container(StopContainerRequest {
        container_id: id2.clone(),
        timeout: 1,
    })
    .await
    .unwrap();
    for id in [&id, &id2] {
        for _ in 0..2 {
            c.remove_container(RemoveContainerRequest {
                container_id: id.to_string(),
            })
            .await
            .unwrap();
        }
        let err = c
            .container_status(ContainerStatusRequest {
                container_id: id.to_string(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    // A running container goes with its pod.
    let id3 = create(&mut c, &pod, ctr("third", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &id3).await;
    common::stop_remove(&mut c, &pod).await;
    assert!(c
        .list_containers(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers
        .is_empty());
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn guards_give_clear_errors() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, _) = pod_with_logs(&d, &mut c, "ctr-guards").await;
    let mut privileged = ctr("p", &env.image, "true");
    privileged.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            privileged: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    let err = create(&mut c, &pod, privileged).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut escape = ctr("e", &env.image, "true");
    escape.log_path = "../../etc/evil.log".into();
    assert_eq!(
        create(&mut c, &pod, escape).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut group_only = ctr("g", &env.image, "true");
    group_only.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            run_as_group: Some(cri_api::v1::Int64Value { value: 5 }),
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        create(&mut c, &pod, group_only).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let err = create(&mut c, &pod, ctr("m", "example.com/not/pulled:1", "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = create(&mut c, &"f".repeat(64), ctr("n", &env.image, "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let id = create(&mut c, &pod, ctr("dup", &env.image, "true"))
        .await
        .unwrap();
    let err = d
        .image_client()
        .await
        .remove_image(cri_api::v1::RemoveImageRequest {
            image: Some(ImageSpec {
                image: env.image.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "in use: {err:?}");
    assert!(err.message().contains(&id), "{}", err.message());
    let err = create(&mut c, &pod, ctr("dup", &env.image, "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    c.stop_pod_sandbox(cri_api::v1::StopPodSandboxRequest {
        pod_sandbox_id: pod.clone(),
    })
    .await
    .unwrap();
    let err = create(&mut c, &pod, ctr("late", &env.image, "true"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(
        status(&mut c, &id).await.state,
        ContainerState::ContainerExited as i32,
        "StopPodSandbox stopped the created container"
    );
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn containers_run_on_across_a_crustd_kill_and_keep_their_exit_codes() {
    let mut d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = pod_with_logs(&d, &mut c, "ctr-restart").await;
    let quick = create(
        &mut c,
        &pod,
        ctr("quick", &env.image, "sleep 1; echo done; exit 7"),
    )
    .await
    .unwrap();
    let long = create(&mut c, &pod, ctr("long", &env.image, "exec sleep 1000"))
        .await
        .unwrap();
    start(&mut c, &quick).await;
    start(&mut c, &long).await;
    d.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.restart().await;
    let mut c = d.client().await;
    let s = wait_exited(&mut c, &quick).await;
    assert_eq!(s.exit_code, 7, "exit code kept while crustd was down");
    assert!(std::fs::read_to_string(logs.join("quick.log"))
        .unwrap()
        .contains("stdout F done"));
    assert_eq!(
        status(&mut c, &long).await.state,
        ContainerState::ContainerRunning as i32
    );
    c.stop_container(StopContainerRequest {
        container_id: long.clone(),
        timeout: 0,
    })
    .await
    .unwrap();
    assert_eq!(status(&mut c, &long).await.exit_code, 137);
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn seen_from_inside_security_context_pod_files_and_exec() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let mut pod_config = d.net_pod("ctr-inside", false);
    pod_config.dns_config = Some(cri_api::v1::DnsConfig {
        servers: vec!["10.0.0.53".into()],
        searches: vec!["inside.test".into()],
        options: vec![],
    });
    let logs = d.root.parent().unwrap().join("logs-inside");
    pod_config.log_directory = logs.display().to_string();
    let pod = d.run_config(&mut c, pod_config).await;
    let mut config = ctr(
        "inside",
        &env.image,
        "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done",
    );
    config.linux = Some(LinuxContainerConfig {
        security_context: Some(LinuxContainerSecurityContext {
            run_as_user: Some(cri_api::v1::Int64Value { value: 1000 }),
            supplemental_groups: vec![4000],
            readonly_rootfs: true,
            capabilities: Some(cri_api::v1::Capability {
                drop_capabilities: vec!["ALL".into()],
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = create(&mut c, &pod, config).await.unwrap();
    start(&mut c, &id).await;
    let (code, out, _) = exec(&mut c, &id, "id", 10).await.unwrap();
    assert_eq!(code, 0);
    assert!(out.contains("uid=1000(app) gid=1000(app)"), "{out}");
    assert!(
        out.contains("2000(extra)") && out.contains("4000"),
        "image group + supplemental: {out}"
    );
    // A non-root process keeps no effective capabilities (as with containerd); the bounding
    // set shows what the spec granted.
    let (_, out, _) = exec(&mut c, &id, "grep CapBnd /proc/self/status", 10)
        .await
        .unwrap();
    assert!(
        out.trim().ends_with("0000000000000400"),
        "only NET_BIND_SERVICE: {out}"
    );
    let (code, _, err) = exec(&mut c, &id, "touch /new-file", 10).await.unwrap();
    assert_ne!(code, 0, "readonly rootfs: {err}");
    let (_, out, err) = exec(
        &mut c,
        &id,
        "hostname; cat /etc/resolv.conf; stat -c '%t,%T' /proc/keys; ls /sys/firmware | wc -l",
        10,
    )
    .await
    .unwrap();
    assert!(out.starts_with("ctr-inside\n"), "{out}");
    assert!(
        out.contains("nameserver 10.0.0.53") && out.contains("search inside.test"),
        "{out}"
    );
    assert!(
        out.trim_end().ends_with("1,3\n0"),
        "masked /proc/keys is /dev/null, /sys/firmware empty: {out} {err}"
    );
    let (_, inside, _) = exec(&mut c, &id, "readlink /proc/self/ns/net", 10)
        .await
        .unwrap();
    let netns = std::fs::metadata(d.state.join("netns").join(&pod)).unwrap();
    assert_eq!(
        inside.trim(),
        format!("net:[{}]", std::os::unix::fs::MetadataExt::ino(&netns)),
        "the pod's netns"
    );
    // Exit code, timeout, output cap.
    assert_eq!(exec(&mut c, &id, "exit 4", 10).await.unwrap().0, 4);
    let started = std::time::Instant::now();
    let err = exec(&mut c, &id, "sleep 30", 1).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // (kubelet raises its gRPC message limit to 16 MiB and more for this; so does this client)
    let mut big =
        cri_api::v1::runtime_service_client::RuntimeServiceClient::new(d.channel().await.unwrap())
            .max_decoding_message_size(64 << 20);
    let (_, out, _) = exec(&mut big, &id, "yes | head -c 20000000", 30)
        .await
        .unwrap();
    assert_eq!(out.len(), 16 << 20, "stdout capped at 16 MiB");
    // ReopenContainerLog after a rotation.
    let log = logs.join("inside.log");
    let rotated = logs.join("inside.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    c.reopen_container_log(cri_api::v1::ReopenContainerLogRequest {
        container_id: id.clone(),
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let fresh = std::fs::read_to_string(&log).unwrap();
    assert!(
        fresh.lines().any(|l| l.contains(" stdout F tick ")),
        "new file gets new lines: {fresh}"
    );
    assert!(std::fs::read_to_string(&rotated)
        .unwrap()
        .contains("stdout F tick 0"));
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn stats_and_resource_updates() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.net_pod("ctr-stats", true)).await;
    let id = create(
        &mut c,
        &pod,
        ctr(
            "busy",
            &env.image,
            "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 1000",
        ),
    )
    .await
    .unwrap();
    start(&mut c, &id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = |c: &mut Client| {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            c.container_stats(cri_api::v1::ContainerStatsRequest { container_id: id })
                .await
                .unwrap()
                .into_inner()
                .stats
                .unwrap()
        }
    };
    let first = stats(&mut c).await;
    assert!(
        first
            .cpu
            .as_ref()
            .unwrap()
            .usage_core_nano_seconds
            .as_ref()
            .unwrap()
            .value
            > 0
    );
    assert!(
        first
            .memory
            .as_ref()
            .unwrap()
            .working_set_bytes
            .as_ref()
            .unwrap()
            .value
            > 0
    );
    assert!(first.writable_layer.is_some());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let second = stats(&mut c).await;
    assert!(
        second.cpu.unwrap().usage_nano_cores.is_some(),
        "a rate from two samples"
    );
    let listed = c
        .list_container_stats(cri_api::v1::ListContainerStatsRequest {
            filter: Some(cri_api::v1::ContainerStatsFilter {
                pod_sandbox_id: pod.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .stats;
    assert_eq!(listed.len(), 1);
    let ps = c
        .pod_sandbox_stats(cri_api::v1::PodSandboxStatsRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    let linux = ps.linux.unwrap();
    assert!(
        linux.process.unwrap().process_count.unwrap().value >= 1,
        "the sleep (a pinned pod has no pause)"
    );
    assert_eq!(linux.containers.len(), 1);
    let net = linux.network.expect("pod network counters");
    assert_eq!(net.default_interface.unwrap().name, "eth0");
    // Resources change on the running container's cgroup.
    c.update_container_resources(cri_api::v1::UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(cri_api::v1::LinuxContainerResources {
            memory_limit_in_bytes: 64 << 20,
            cpu_shares: 512,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let cgroup = format!("{}/{id}", d.cgroup_parent);
    let limit = std::fs::read_to_string(format!(
        "/sys/fs/cgroup/memory{cgroup}/memory.limit_in_bytes"
    ))
    .unwrap();
    assert_eq!(limit.trim(), (64u64 << 20).to_string());
    let shares = std::fs::read_to_string(format!("/sys/fs/cgroup/cpu{cgroup}/cpu.shares")).unwrap();
    assert_eq!(shares.trim(), "512");
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn the_cli_runs_a_container() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let dir = d.root.parent().unwrap().to_path_buf();
    let mut pod_config = d.pod("cli-pod");
    pod_config.log_directory = dir.join("cli-logs").display().to_string();
    let pod_file = dir.join("pod.json");
    std::fs::write(&pod_file, serde_json::to_string(&pod_config).unwrap()).unwrap();
    let ctr_file = dir.join("ctr.yaml");
    std::fs::write(
        &ctr_file,
        format!(
            "metadata:\n  name: cli\nimage:\n  image: {}\ncommand: [/bin/sh, -c, 'echo from-cli; exec sleep 1000']\nlog_path: cli.log\n",
            env.image
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let out = d.crust_cli().args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, pod, err) = cli(&["runp", pod_file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let pod = pod.trim().to_string();
    let (code, id, err) = cli(&[
        "create",
        &pod,
        ctr_file.to_str().unwrap(),
        pod_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let id = id.trim().to_string();
    assert_eq!(cli(&["start", &id]).0, 0);
    let (_, ps, _) = cli(&["ps", "--pod", &pod]);
    assert!(
        ps.contains(&id[..13]) && ps.contains("Running") && ps.contains("cli"),
        "{ps}"
    );
    let (code, out, _) = cli(&["exec", &id, "--", "/bin/sh", "-c", "echo inside; exit 5"]);
    assert_eq!((code, out.as_str()), (5, "inside\n"));
    let mut logs = String::new();
    for _ in 0..50 {
        logs = cli(&["logs", &id]).1;
        if !logs.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(logs, "from-cli\n");
    let (code, stats, _) = cli(&["stats"]);
    assert!(code == 0 && stats.contains(&id[..13]), "{stats}");
    let (_, inspect, _) = cli(&["inspect", &id]);
    assert!(inspect.contains("\"exit_code\""), "{inspect}");
    assert_eq!(cli(&["stop", "--timeout", "0", &id]).0, 0);
    assert_eq!(cli(&["rm", &id]).0, 0);
    assert_eq!(cli(&["stopp", &pod]).0, 0);
    assert_eq!(cli(&["rmp", &pod]).0, 0);
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn seccomp_profiles_and_devices() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("ctr-seccomp")).await;
    let with = |name: &str, profile: Option<cri_api::v1::SecurityProfile>| {
        let mut config = ctr(name, &env.image, "exec sleep 1000");
        config.linux = Some(LinuxContainerConfig {
            security_context: Some(LinuxContainerSecurityContext {
                seccomp: profile,
                ..Default::default()
            }),
            ..Default::default()
        });
        config
    };
    let runtime_default = cri_api::v1::SecurityProfile {
        profile_type: cri_api::v1::security_profile::ProfileType::RuntimeDefault as i32,
        localhost_ref: String::new(),
    };
    let mut confined = with("confined", Some(runtime_default));
    confined.devices = vec![cri_api::v1::Device {
        container_path: "/dev/mynull".into(),
        host_path: "/dev/null".into(),
        permissions: "rw".into(),
    }];
    let confined = create(&mut c, &pod, confined).await.unwrap();
    let open = create(&mut c, &pod, with("open", None)).await.unwrap();
    start(&mut c, &confined).await;
    start(&mut c, &open).await;
    let (_, out, _) = exec(&mut c, &confined, "grep Seccomp: /proc/self/status", 10)
        .await
        .unwrap();
    assert!(out.contains("\t2"), "filtered: {out}");
    let (code, _, err) = exec(&mut c, &confined, "unshare -U true", 10)
        .await
        .unwrap();
    assert_ne!(code, 0, "unshare is denied by the default profile: {err}");
    let (_, out, _) = exec(&mut c, &open, "grep Seccomp: /proc/self/status", 10)
        .await
        .unwrap();
    assert!(
        out.contains("\t0"),
        "an absent profile is unconfined: {out}"
    );
    let (code, _, err) = exec(&mut c, &open, "unshare -U true", 10).await.unwrap();
    assert_eq!(code, 0, "unconfined, the same unshare works: {err}");
    let (code, out, err) = exec(
        &mut c,
        &confined,
        "test -c /dev/mynull && echo x > /dev/mynull && echo ok",
        10,
    )
    .await
    .unwrap();
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    let mut missing = with(
        "missing",
        Some(cri_api::v1::SecurityProfile {
            profile_type: cri_api::v1::security_profile::ProfileType::Localhost as i32,
            localhost_ref: "/nonexistent/profile.json".into(),
        }),
    );
    missing.log_path = "missing.log".into();
    let err = create(&mut c, &pod, missing).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn a_tty_container_logs_its_terminal_output() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = pod_with_logs(&d, &mut c, "ctr-tty").await;
    let mut config = ctr("tty", &env.image, "tty; echo on-a-terminal");
    config.tty = true;
    let id = create(&mut c, &pod, config).await.unwrap();
    start(&mut c, &id).await;
    assert_eq!(wait_exited(&mut c, &id).await.exit_code, 0);
    let text = std::fs::read_to_string(logs.join("tty.log")).unwrap();
    assert!(text.contains(" stdout F /dev/pts/0"), "{text:?}");
    assert!(text.contains(" stdout F on-a-terminal"), "{text:?}");
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// C4 (RELIABILITY.md): CreateContainer racing StopPodSandbox never leaves a running container
/// in a stopped pod, and nothing survives RemovePodSandbox.
#[tokio::test]
async fn c4_create_container_racing_stop_pod() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    for round in 0..3u64 {
        let pod = d.run_config(&mut c, d.pod(&format!("c4-{round}"))).await;
        let mut tasks = Vec::new();
        for i in 0..4 {
            let mut c = d.client().await;
            let (pod, image) = (pod.clone(), env.image.clone());
            tasks.push(tokio::spawn(async move {
                let created = create(
                    &mut c,
                    &pod,
                    ctr(&format!("c{i}"), &image, "exec sleep 1000"),
                )
                .await;
                match created {
                    Ok(id) => {
                        let _ = c
                            .start_container(StartContainerRequest {
                                container_id: id.clone(),
                            })
                            .await;
                        Ok(id)
                    }
                    Err(e) => Err(e.code()),
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(20 * round)).await;
        c.stop_pod_sandbox(cri_api::v1::StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
        for t in tasks {
            match t.await.unwrap() {
                Ok(id) => assert_ne!(
                    status(&mut c, &id).await.state,
                    ContainerState::ContainerRunning as i32,
                    "a container runs on in a stopped pod"
                ),
                Err(code) => assert_eq!(code, Code::FailedPrecondition),
            }
        }
        c.remove_pod_sandbox(cri_api::v1::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
        let left = c
            .list_containers(ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers;
        assert!(left.is_empty(), "{left:?}");
    }
    d.assert_no_leaks().await;
}

/// I1 for containers: Stop/Remove of unknown ids succeed; Status of one is NotFound; an empty
/// id is InvalidArgument.
#[tokio::test]
async fn i1_unknown_containers() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let unknown = "e".repeat(64);
    c.stop_container(StopContainerRequest {
        container_id: unknown.clone(),
        timeout: 1,
    })
    .await
    .unwrap();
    c.remove_container(RemoveContainerRequest {
        container_id: unknown.clone(),
    })
    .await
    .unwrap();
    let err = c
        .container_status(ContainerStatusRequest {
            container_id: unknown.clone(),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .start_container(StartContainerRequest {
            container_id: unknown,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = c
        .stop_container(StopContainerRequest {
            container_id: String::new(),
            timeout: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn oom_kill_and_long_lines() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = pod_with_logs(&d, &mut c, "ctr-oom").await;
    let mut hog = ctr(
        "hog",
        &env.image,
        "exec dd if=/dev/zero of=/dev/null bs=96M count=4",
    );
    hog.linux = Some(LinuxContainerConfig {
        resources: Some(cri_api::v1::LinuxContainerResources {
            memory_limit_in_bytes: 32 << 20,
            ..Default::default()
        }),
        ..Default::default()
    });
    let hog = create(&mut c, &pod, hog).await.unwrap();
    start(&mut c, &hog).await;
    let s = wait_exited(&mut c, &hog).await;
    assert_eq!(
        (s.exit_code, s.reason.as_str()),
        (137, "OOMKilled"),
        "{s:?}"
    );
    // A 40000-byte line is logged as P, P, F pieces of at most 16 KiB.
    let long = create(
        &mut c,
        &pod,
        ctr(
            "long",
            &env.image,
            "head -c 40000 /dev/zero | tr '\\\\0' x; echo; echo next",
        ),
    )
    .await
    .unwrap();
    start(&mut c, &long).await;
    wait_exited(&mut c, &long).await;
    let text = std::fs::read_to_string(logs.join("long.log")).unwrap();
    let tags: Vec<(&str, usize)> = text
        .lines()
        .map(|l| {
            let parts: Vec<&str> = l.splitn(4, ' ').collect();
            (parts[2], parts.get(3).map_or(0, |t| t.len()))
        })
        .collect();
    assert_eq!(
        tags,
        [("P", 16384), ("P", 16384), ("F", 40000 - 32768), ("F", 4)],
        "{tags:?}"
    );
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn attach_socket_streams_output_and_feeds_stdin() {
    use std::io::{Read, Write};
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = pod_with_logs(&d, &mut c, "ctr-attach").await;
    let mut config = ctr("echoer", &env.image, "echo ready; exec cat");
    config.stdin = true;
    let id = create(&mut c, &pod, config).await.unwrap();
    start(&mut c, &id).await;
    let info = c
        .container_status(ContainerStatusRequest {
            container_id: id.clone(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner()
        .info["info"]
        .clone();
    let info: serde_json::Value = serde_json::from_str(&info).unwrap();
    let socket = std::path::PathBuf::from(info["attachSocket"].as_str().unwrap());
    let dir = std::fs::File::open(socket.parent().unwrap()).unwrap();
    let short = format!(
        "/proc/self/fd/{}/attach.sock",
        std::os::fd::AsRawFd::as_raw_fd(&dir)
    );
    let mut client = std::os::unix::net::UnixStream::connect(&short).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client.write_all(b"ping over attach\n").unwrap();
    let mut header = [0u8; 5];
    client.read_exact(&mut header).unwrap();
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    let mut data = vec![0u8; len];
    client.read_exact(&mut data).unwrap();
    assert_eq!(
        (header[0], data.as_slice()),
        (1, b"ping over attach\n".as_slice())
    );
    drop(client);
    // stdin_once: the first session's end closes stdin, so `cat` ends and the container exits.
    let mut once = ctr("once", &env.image, "cat; echo cat-saw-eof");
    once.stdin = true;
    once.stdin_once = true;
    let once = create(&mut c, &pod, once).await.unwrap();
    start(&mut c, &once).await;
    let dir_once =
        std::fs::File::open(socket.parent().unwrap().parent().unwrap().join(&once)).unwrap();
    let short_once = format!(
        "/proc/self/fd/{}/attach.sock",
        std::os::fd::AsRawFd::as_raw_fd(&dir_once)
    );
    let mut session = std::os::unix::net::UnixStream::connect(&short_once).unwrap();
    session.write_all(b"only once\n").unwrap();
    drop(session);
    let s = wait_exited(&mut c, &once).await;
    assert_eq!(s.exit_code, 0);
    let text = std::fs::read_to_string(logs.join("once.log")).unwrap();
    assert!(
        text.contains("stdout F only once") && text.contains("stdout F cat-saw-eof"),
        "{text}"
    );
    let text = std::fs::read_to_string(logs.join("echoer.log")).unwrap();
    assert!(
        text.contains("stdout F ready") && text.contains("stdout F ping over attach"),
        "{text}"
    );
    // The CLI attaches and ends with the container.
    let quick = create(
        &mut c,
        &pod,
        ctr(
            "quick",
            &env.image,
            "sleep 0.5; echo one; echo two >&2; sleep 0.3",
        ),
    )
    .await
    .unwrap();
    start(&mut c, &quick).await;
    let out = tokio::process::Command::from(d.crust_cli())
        .args(["attach", &quick])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("two"));
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// A container that exits as soon as it starts: its exit is seen while StartContainer is still
/// persisting RUNNING. STOPPED must still follow STARTED on the bus (CI saw them swapped on a
/// busy machine), for every one of several started at once.
#[tokio::test]
async fn events_of_containers_that_exit_at_once_come_in_order() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("ctr-quick-events")).await;
    let mut events = c
        .clone()
        .get_container_events(cri_api::v1::GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(
            create(&mut c, &pod, ctr(&format!("q{i}"), &env.image, "true"))
                .await
                .unwrap(),
        );
    }
    let starts = ids.iter().map(|id| {
        let (mut c, id) = (c.clone(), id.clone());
        tokio::spawn(async move { start(&mut c, &id).await })
    });
    for s in starts {
        s.await.unwrap();
    }
    let mut seen: std::collections::HashMap<String, Vec<i32>> = Default::default();
    while seen.values().map(Vec::len).sum::<usize>() < ids.len() * 3 {
        let e = tokio::time::timeout(Duration::from_secs(10), events.message())
            .await
            .expect("container events")
            .unwrap()
            .unwrap();
        if ids.contains(&e.container_id) {
            seen.entry(e.container_id)
                .or_default()
                .push(e.container_event_type);
        }
    }
    use cri_api::v1::ContainerEventType as T;
    for id in &ids {
        assert_eq!(
            seen[id],
            [
                T::ContainerCreatedEvent as i32,
                T::ContainerStartedEvent as i32,
                T::ContainerStoppedEvent as i32
            ],
            "{id}"
        );
    }
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}
