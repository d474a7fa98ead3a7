//! The CRI v1 surface of cri-api v0.36.3 through the generated tonic client: the streaming list
//! RPCs (batched, 2,000 pods whose List answer is over gRPC's default 4 MiB), the config's
//! stop signal used by StopContainer and reported in ContainerStatus, environment values as
//! bytes. Real runc, images from a real local registry, the leak check after each test.

mod common;

use std::time::{Duration, Instant};

use common::{
    ctr::{busybox, create, ctr, start, status},
    Client, Daemon,
};
use cri_api::v1::{
    image_service_client::ImageServiceClient, ContainerStatsFilter, ListPodSandboxRequest,
    PodSandboxFilter, PodSandboxStatsFilter, Signal, StopContainerRequest,
    StreamContainerStatsRequest, StreamContainersRequest, StreamImagesRequest,
    StreamPodSandboxStatsRequest, StreamPodSandboxesRequest,
};
use prost::Message as _;
use tonic::Code;

/// gRPC's default limit for one received message.
const DEFAULT_MAX: usize = 4 << 20;

/// Copies the record of the stopped pod `id` into `n` new NOTREADY pods (ids and names of
/// their own), while crustd is down: 2,000 pods without 2,000 pause processes.
fn clone_records(d: &Daemon, id: &str, n: usize) -> Vec<String> {
    let dir = d.root.join("sandboxes");
    let text = std::fs::read_to_string(dir.join(id).join("sandbox.json")).unwrap();
    let mut record: serde_json::Value = serde_json::from_str(&text).unwrap();
    let name = record["name"].as_str().unwrap().to_string();
    (0..n)
        .map(|i| {
            let clone = format!("{:0>64x}", 0xc10e_0000_u64 + i as u64);
            record["id"] = clone.clone().into();
            record["name"] = format!("{name}-{i}").into();
            std::fs::create_dir_all(dir.join(&clone)).unwrap();
            std::fs::write(dir.join(&clone).join("sandbox.json"), record.to_string()).unwrap();
            clone
        })
        .collect()
}

async fn stream_pods(c: &mut Client, filter: Option<PodSandboxFilter>) -> Vec<(usize, usize)> {
    let mut s = c
        .stream_pod_sandboxes(StreamPodSandboxesRequest { filter })
        .await
        .unwrap()
        .into_inner();
    let mut batches = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        batches.push((m.pod_sandboxes.len(), m.encoded_len()));
    }
    batches
}

#[tokio::test]
async fn streaming_lists_send_2000_pods_in_batches_under_the_message_limit() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    let mut config = d.pod("stream-big");
    // ~3 KB of labels a pod: 2,000 of them are ~6 MB, more than one default gRPC message.
    for i in 0..3 {
        config.labels.insert(format!("big-{i}"), "x".repeat(1000));
    }
    let id = d.run_config(&mut c, config).await;
    c.stop_pod_sandbox(cri_api::v1::StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    d.stop_graceful();
    let clones = clone_records(&d, &id, 1999);
    d.restart().await;
    let mut c = d.client().await;

    // ListPodSandbox of them all does not fit one default-sized message; the stream does.
    let err = c
        .list_pod_sandbox(ListPodSandboxRequest { filter: None })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    let started = Instant::now();
    let batches = stream_pods(&mut c, None).await;
    let total: usize = batches.iter().map(|b| b.0).sum();
    assert_eq!(total, 2000);
    assert!(batches.len() >= 6, "{batches:?}");
    assert!(batches.iter().all(|b| b.1 < DEFAULT_MAX / 2), "{batches:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The same filters as ListPodSandbox.
    let one = stream_pods(
        &mut c,
        Some(PodSandboxFilter {
            id: clones[7].clone(),
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(one.iter().map(|b| b.0).sum::<usize>(), 1);
    let ready = stream_pods(
        &mut c,
        Some(PodSandboxFilter {
            state: Some(cri_api::v1::PodSandboxStateValue {
                state: cri_api::v1::PodSandboxState::SandboxReady as i32,
            }),
            ..Default::default()
        }),
    )
    .await;
    assert!(ready.is_empty(), "all are NOTREADY: no message at all");
    let mut stats = c
        .stream_pod_sandbox_stats(StreamPodSandboxStatsRequest {
            filter: Some(PodSandboxStatsFilter {
                id: id.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(m) = stats.message().await.unwrap() {
        n += m.pod_sandbox_stats.len();
    }
    assert_eq!(n, 1);
    for pod in std::iter::once(&id).chain(&clones) {
        c.remove_pod_sandbox(cri_api::v1::RemovePodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await
        .unwrap();
    }
    assert!(stream_pods(&mut c, None).await.is_empty());
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn streamed_containers_stats_and_images_match_their_lists() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("stream-ctr")).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let id = create(
            &mut c,
            &pod,
            ctr(&format!("s{i}"), &env.image, "exec sleep 100"),
        )
        .await
        .unwrap();
        start(&mut c, &id).await;
        ids.push(id);
    }
    let mut s = c
        .stream_containers(StreamContainersRequest { filter: None })
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(m) = s.message().await.unwrap() {
        streamed.extend(m.containers.into_iter().map(|c| c.id));
    }
    streamed.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(streamed, want);
    let mut s = c
        .stream_container_stats(StreamContainerStatsRequest {
            filter: Some(ContainerStatsFilter {
                id: ids[1].clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let m = s.message().await.unwrap().unwrap();
    assert_eq!(m.container_stats.len(), 1);
    let stats = &m.container_stats[0];
    assert_eq!(stats.attributes.as_ref().unwrap().id, ids[1]);
    assert!(stats.memory.as_ref().unwrap().working_set_bytes.is_some());
    assert!(s.message().await.unwrap().is_none());
    let mut images = ImageServiceClient::new(d.channel().await.unwrap());
    let mut s = images
        .stream_images(StreamImagesRequest { filter: None })
        .await
        .unwrap()
        .into_inner();
    let m = s.message().await.unwrap().unwrap();
    assert!(
        m.images.iter().any(|i| i.repo_tags.contains(&env.image)),
        "{m:?}"
    );
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn the_configs_stop_signal_is_sent_first_and_reported() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let (pod, logs) = common::ctr::pod_with_logs(&d, &mut c, "stop-signal").await;
    let script = "trap 'echo got-usr1; exit 7' USR1; echo ready; while true; do sleep 0.1; done";
    let mut config = ctr("usr1", &env.image, script);
    config.stop_signal = Signal::Sigusr1 as i32;
    let id = create(&mut c, &pod, config).await.unwrap();
    assert_eq!(
        status(&mut c, &id).await.stop_signal,
        Signal::Sigusr1 as i32
    );
    start(&mut c, &id).await;
    let log = logs.join("usr1.log");
    assert!(
        common::eventually(Duration::from_secs(10), || {
            let log = log.clone();
            async move { std::fs::read_to_string(&log).is_ok_and(|t| t.contains("ready")) }
        })
        .await
    );
    // The container's init blocks no signal (crust-shim's own blocked set once leaked into it,
    // and a SIGUSR1 stop signal then never arrived).
    let (_, out, _) = common::ctr::exec(&mut c, &id, "grep SigBlk /proc/1/status", 5)
        .await
        .unwrap();
    assert_eq!(out.trim(), "SigBlk:\t0000000000000000");
    let started = Instant::now();
    c.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 30,
    })
    .await
    .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "USR1, not the 30 s deadline"
    );
    let s = status(&mut c, &id).await;
    assert_eq!(s.exit_code, 7, "the trap ran");
    assert!(std::fs::read_to_string(&log).unwrap().contains("got-usr1"));
    // Without one: the image has no StopSignal, so SIGTERM is reported.
    let plain = create(&mut c, &pod, ctr("plain", &env.image, "true"))
        .await
        .unwrap();
    assert_eq!(
        status(&mut c, &plain).await.stop_signal,
        Signal::Sigterm as i32
    );
    // Environment values are bytes: text works, bytes that are not UTF-8 are refused.
    let mut bad = ctr("bad-env", &env.image, "true");
    bad.envs = vec![cri_api::v1::KeyValue {
        key: "B".into(),
        value: vec![0xff, 0xfe],
    }];
    let err = create(&mut c, &pod, bad).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("config.envs"), "{}", err.message());
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn update_pod_sandbox_resources_is_kept_across_a_restart() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("resize")).await;
    let resources = cri_api::v1::LinuxContainerResources {
        cpu_shares: 512,
        memory_limit_in_bytes: 256 << 20,
        ..Default::default()
    };
    let request = |id: &str| cri_api::v1::UpdatePodSandboxResourcesRequest {
        pod_sandbox_id: id.to_string(),
        overhead: Some(cri_api::v1::LinuxContainerResources {
            cpu_shares: 2,
            ..Default::default()
        }),
        resources: Some(resources.clone()),
    };
    c.update_pod_sandbox_resources(request(&pod)).await.unwrap();
    let err = c
        .update_pod_sandbox_resources(request(&"e".repeat(64)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let shown = |c: &mut Client, id: &str| {
        let (mut c, id) = (c.clone(), id.to_string());
        async move {
            let r = c
                .pod_sandbox_status(cri_api::v1::PodSandboxStatusRequest {
                    pod_sandbox_id: id,
                    verbose: true,
                })
                .await
                .unwrap()
                .into_inner();
            let info: serde_json::Value = serde_json::from_str(&r.info["info"]).unwrap();
            info["podResources"].clone()
        }
    };
    let before = shown(&mut c, &pod).await;
    assert_eq!(
        before["resources"]["memory_limit_in_bytes"],
        256 << 20,
        "{before}"
    );
    assert_eq!(before["overhead"]["cpu_shares"], 2, "{before}");
    d.kill9();
    d.restart().await;
    let mut c = d.client().await;
    assert_eq!(shown(&mut c, &pod).await, before, "kept across a kill -9");
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// A runc wrapper without a `features` subcommand (as old runtimes are): written by a child
/// `sh`, so no descriptor of this process holds it open for writing when it is exec'd.
fn featureless_runtime(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("no-features-runc");
    let script =
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = features ] && exit 1; done\nexec runc \"$@\"\n";
    let mut sh = std::process::Command::new("sh")
        .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
        .arg(&path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut sh.stdin.take().unwrap(), script.as_bytes()).unwrap();
    assert!(sh.wait().unwrap().success());
    path
}

#[tokio::test]
async fn handlers_report_their_features_and_recursive_read_only_mounts_follow_them() {
    let scratch = tempfile::tempdir().unwrap();
    let old = featureless_runtime(scratch.path());
    let d = Daemon::start_with(
        &format!("[runtimes.old]\npath = \"{}\"\n", old.display()),
        &[],
    )
    .await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let runtime_status = c
        .status(cri_api::v1::StatusRequest { verbose: false })
        .await
        .unwrap()
        .into_inner();
    let rro = |name: &str| {
        runtime_status
            .runtime_handlers
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("{name} in {:?}", runtime_status.runtime_handlers))
            .features
            .as_ref()
            .unwrap()
            .recursive_read_only_mounts
    };
    assert!(rro(""), "the default (runc 1.1.5 lists rro)");
    assert!(rro("runc"));
    assert!(!rro("old"), "no features output: none");
    assert!(
        !runtime_status.runtime_handlers[0]
            .features
            .as_ref()
            .unwrap()
            .user_namespaces
    );

    // A host dir with a tmpfs inside: rro makes the submount read-only too.
    let host = d.root.parent().unwrap().join("rro-src");
    std::fs::create_dir_all(host.join("sub")).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "rro-test"])
        .arg(host.join("sub"))
        .status()
        .unwrap();
    assert!(mounted.success());
    let mount = |rro: bool| cri_api::v1::Mount {
        container_path: "/data".into(),
        host_path: host.display().to_string(),
        readonly: true,
        recursive_read_only: rro,
        ..Default::default()
    };
    let pod = d.run_config(&mut c, d.pod("rro")).await;
    let script = "exec sleep 100";
    let mut plain = ctr("plain-ro", &env.image, script);
    plain.mounts = vec![mount(false)];
    let mut recursive = ctr("rro", &env.image, script);
    recursive.mounts = vec![mount(true)];
    for config in [plain, recursive] {
        let id = create(&mut c, &pod, config).await.unwrap();
        start(&mut c, &id).await;
    }
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
        let name = status(&mut c, id).await.metadata.unwrap().name;
        let (_, out, _) = common::ctr::exec(
            &mut c,
            id,
            "touch /data/sub/y 2>/dev/null && echo writable || echo readonly",
            10,
        )
        .await
        .unwrap();
        let want = if name == "rro" {
            "readonly"
        } else {
            "writable"
        };
        assert_eq!(out.trim(), want, "{name}");
    }
    // Not read-only, not private, or a handler without rro: InvalidArgument.
    let mut not_ro = ctr("not-ro", &env.image, "true");
    not_ro.mounts = vec![cri_api::v1::Mount {
        readonly: false,
        ..mount(true)
    }];
    let err = create(&mut c, &pod, not_ro).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("readonly"), "{}", err.message());
    common::stop_remove(&mut c, &pod).await;
    let old_pod = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(d.pod("rro-old")),
            runtime_handler: "old".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let mut on_old = ctr("on-old", &env.image, "true");
    on_old.mounts = vec![mount(true)];
    let err = create(&mut c, &old_pod, on_old).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("\"old\""), "{}", err.message());
    common::stop_remove(&mut c, &old_pod).await;
    let _ = std::process::Command::new("umount")
        .arg(host.join("sub"))
        .status();
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn image_ref_picks_the_image_and_is_reported_and_psi_is_absent_on_v1() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("image-ref")).await;
    let mut images = ImageServiceClient::new(d.channel().await.unwrap());
    let id = images
        .image_status(cri_api::v1::ImageStatusRequest {
            image: Some(cri_api::v1::ImageSpec {
                image: env.image.clone(),
                ..Default::default()
            }),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner()
        .image
        .unwrap()
        .id;
    let mut config = ctr("by-ref", "name/that-was-never:pulled", "exec sleep 100");
    config.image.as_mut().unwrap().image_ref = id.clone();
    let ctr_id = create(&mut c, &pod, config).await.unwrap();
    start(&mut c, &ctr_id).await;
    let s = status(&mut c, &ctr_id).await;
    assert_eq!(s.image.unwrap().image_ref, id);
    assert_eq!(s.image_ref, id);
    let stats = c
        .container_stats(cri_api::v1::ContainerStatsRequest {
            container_id: ctr_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .stats
        .unwrap();
    // This host is cgroup v1: no PSI and no IO usage at all (absent, not zero).
    assert!(stats.cpu.unwrap().psi.is_none());
    assert!(stats.memory.unwrap().psi.is_none());
    assert!(stats.io.is_none());
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn pod_sandbox_metrics_carry_cadvisor_names_with_their_labels() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.net_pod("metrics", false)).await;
    let ip = common::pod_ip(&mut c, &pod).await;
    assert!(common::ping(&ip), "traffic for the rx/tx counters");
    let ctr_id = create(&mut c, &pod, ctr("m", &env.image, "exec sleep 100"))
        .await
        .unwrap();
    start(&mut c, &ctr_id).await;
    let descriptors = c
        .list_metric_descriptors(cri_api::v1::ListMetricDescriptorsRequest {})
        .await
        .unwrap()
        .into_inner()
        .descriptors;
    let keys: std::collections::HashMap<String, Vec<String>> = descriptors
        .iter()
        .map(|d| (d.name.clone(), d.label_keys.clone()))
        .collect();
    let listed = c
        .list_pod_sandbox_metrics(cri_api::v1::ListPodSandboxMetricsRequest {})
        .await
        .unwrap()
        .into_inner()
        .pod_metrics;
    assert_eq!(listed.len(), 1);
    let m = &listed[0];
    assert_eq!(m.pod_sandbox_id, pod);
    let all = m
        .metrics
        .iter()
        .chain(m.container_metrics.iter().flat_map(|c| c.metrics.iter()));
    for metric in all {
        let k = keys
            .get(&metric.name)
            .unwrap_or_else(|| panic!("{} has a descriptor", metric.name));
        assert_eq!(k.len(), metric.label_values.len(), "{metric:?}");
    }
    let find = |metrics: &[cri_api::v1::Metric], name: &str, extra: &str| {
        metrics
            .iter()
            .find(|x| {
                x.name == name && (extra.is_empty() || x.label_values.contains(&extra.to_string()))
            })
            .and_then(|x| x.value)
            .map(|v| v.value)
    };
    let rx = find(&m.metrics, "container_network_receive_bytes_total", "eth0");
    assert!(rx.unwrap_or(0) > 0, "{:?}", m.metrics);
    let ctr_metrics = &m
        .container_metrics
        .iter()
        .find(|x| x.container_id == ctr_id)
        .unwrap()
        .metrics;
    assert!(find(ctr_metrics, "container_memory_working_set_bytes", "").unwrap() > 0);
    assert_eq!(find(ctr_metrics, "container_processes", ""), Some(1));
    assert!(find(ctr_metrics, "container_start_time_seconds", "").unwrap() > 1_700_000_000);
    let mut s = c
        .stream_pod_sandbox_metrics(cri_api::v1::StreamPodSandboxMetricsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut streamed = Vec::new();
    while let Some(batch) = s.message().await.unwrap() {
        streamed.extend(
            batch
                .pod_sandbox_metrics
                .into_iter()
                .map(|p| p.pod_sandbox_id),
        );
    }
    assert_eq!(streamed, std::slice::from_ref(&pod));
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn image_volumes_mount_an_image_read_only_with_its_sub_path() {
    use common::registry::{Compression, TarBuilder, TestImage, TestLayer};
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    // A two-layer data image (an overlay view) with a symlink that points out of it.
    let mut data = TestImage::new(vec![
        TestLayer::new(
            TarBuilder::new()
                .dir("models")
                .file("models/a.bin", b"layer-1", 0o644)
                .finish(),
            Compression::Gzip,
        ),
        TestLayer::new(
            TarBuilder::new()
                .dir("models")
                .file("models/b.bin", b"layer-2", 0o644)
                .symlink("escape", "/etc")
                .finish(),
            Compression::Gzip,
        ),
    ]);
    data.config = serde_json::json!({});
    env.registry.push_image("test/data", "1", &data).await;
    let data_ref = format!("{}/test/data:1", env.registry.addr);
    let mut images = ImageServiceClient::new(d.channel().await.unwrap());
    let pulled = images
        .pull_image(cri_api::v1::PullImageRequest {
            image: Some(cri_api::v1::ImageSpec {
                image: data_ref.clone(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap()
        .into_inner()
        .image_ref;
    let pod = d.run_config(&mut c, d.pod("image-volume")).await;
    let volume = |path: &str, sub: &str| cri_api::v1::Mount {
        container_path: path.into(),
        image: Some(cri_api::v1::ImageSpec {
            image: pulled.clone(),
            ..Default::default()
        }),
        image_sub_path: sub.into(),
        ..Default::default()
    };
    let mut config = ctr("uses-data", &env.image, "exec sleep 100");
    config.mounts = vec![volume("/data", ""), volume("/models", "models")];
    let id = create(&mut c, &pod, config).await.unwrap();
    start(&mut c, &id).await;
    let (code, out, err) = common::ctr::exec(
        &mut c,
        &id,
        "cat /data/models/a.bin /models/b.bin; touch /models/new 2>/dev/null && echo writable || echo read-only",
        10,
    )
    .await
    .unwrap();
    assert_eq!(
        (code, out.as_str()),
        (0, "layer-1layer-2read-only\n"),
        "{err}"
    );
    // RemoveImage refuses an image a container mounts.
    let err = images
        .remove_image(cri_api::v1::RemoveImageRequest {
            image: Some(cri_api::v1::ImageSpec {
                image: data_ref.clone(),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(&id), "{}", err.message());
    // A sub path the image lacks (or that leads out of it) fails CreateContainer cleanly.
    for (name, sub) in [("missing", "nope"), ("escape", "escape/passwd")] {
        let mut bad = ctr(name, &env.image, "true");
        bad.mounts = vec![volume("/x", sub)];
        let err = create(&mut c, &pod, bad).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{sub}: {err:?}");
        assert!(
            err.message().contains("image_sub_path"),
            "{}",
            err.message()
        );
    }
    let mut both = ctr("both", &env.image, "true");
    both.mounts = vec![cri_api::v1::Mount {
        host_path: "/tmp".into(),
        ..volume("/x", "")
    }];
    assert_eq!(
        create(&mut c, &pod, both).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let mut unpulled = ctr("unpulled", &env.image, "true");
    unpulled.mounts = vec![cri_api::v1::Mount {
        image: Some(cri_api::v1::ImageSpec {
            image: "example.com/never/pulled:1".into(),
            ..Default::default()
        }),
        ..volume("/x", "")
    }];
    assert_eq!(
        create(&mut c, &pod, unpulled).await.unwrap_err().code(),
        Code::NotFound
    );
    common::stop_remove(&mut c, &pod).await;
    images
        .remove_image(cri_api::v1::RemoveImageRequest {
            image: Some(cri_api::v1::ImageSpec {
                image: data_ref,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}
