//! What a hostile image or pod spec tries (issue #14's security defects) and the client mistakes
//! that must come back as InvalidArgument naming the field, never INTERNAL with runc's text:
//! image account files that are FIFOs, symlinks to host files or to /dev/zero; pid namespace
//! targets in other pods; unbounded seccomp files and seccomp typos; mount propagation the host
//! mount cannot give; absurd resources, sysctls, groups and exec argv. Also the privileged and
//! `ALL`-capabilities containers on this host's reduced bounding set (issue #12). Real runc,
//! images from a real local registry, the leak check after each test.

mod common;

use std::time::{Duration, Instant};

use common::{
    ctr::{busybox, create, ctr, exec, start, Env},
    peak_rss_kib,
    registry::{busybox_layer, Compression, TarBuilder, TestImage, TestLayer},
    Client, Daemon,
};
use cri_api::v1::{
    security_profile::ProfileType, ContainerConfig, ExecRequest, LinuxContainerConfig,
    LinuxContainerResources, LinuxContainerSecurityContext, ListContainersRequest, Mount,
    MountPropagation, NamespaceMode, NamespaceOption, SecurityProfile, VersionRequest,
};
use tonic::Code;

/// Pushes busybox plus `extra` (a layer on top) as `repo` and pulls it into crustd.
async fn image_with(d: &Daemon, env: &Env, repo: &str, extra: Vec<u8>) -> String {
    let mut image = TestImage::new(vec![
        TestLayer::new(busybox_layer(), Compression::Gzip),
        TestLayer::new(extra, Compression::Gzip),
    ]);
    image.config = serde_json::json!({"Cmd": ["/bin/sh"]});
    common::ctr::push_and_pull(d, &env.registry, repo, &image).await
}

fn with_sc(mut config: ContainerConfig, sc: LinuxContainerSecurityContext) -> ContainerConfig {
    config
        .linux
        .get_or_insert_with(LinuxContainerConfig::default)
        .security_context = Some(sc);
    config
}

async fn containers(c: &mut Client) -> usize {
    c.list_containers(ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers
        .len()
}

/// crustd's peak resident memory (VmHWM) in KiB.

#[tokio::test]
async fn image_account_files_are_read_inside_the_rootfs_bounded_and_off_the_workers() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let fifo = image_with(
        &d,
        &env,
        "hostile/fifo",
        TarBuilder::new().dir("etc").fifo("etc/passwd").finish(),
    )
    .await;
    // A host file the image points at by absolute path: it must resolve inside the rootfs.
    let host_file = d.root.parent().unwrap().join("host-passwd");
    std::fs::write(&host_file, "hostonly:x:4242:4242::/:/bin/sh\n").unwrap();
    let to_host = TarBuilder::new()
        .dir("etc")
        .symlink("etc/passwd", &host_file.display().to_string())
        .finish();
    let to_host = image_with(&d, &env, "hostile/host", to_host).await;
    let zero = TarBuilder::new()
        .dir("etc")
        .symlink("etc/passwd", "/dev/zero")
        .symlink("etc/group", "../../../../dev/zero")
        .finish();
    let zero = image_with(&d, &env, "hostile/zero", zero).await;

    // Two FIFO images at once used to freeze crustd: now each fails fast, naming the file.
    let pods = [
        d.run_config(&mut c, d.pod("fifo-a")).await,
        d.run_config(&mut c, d.pod("fifo-b")).await,
    ];
    let started = Instant::now();
    let attempts = pods.iter().map(|pod| {
        let (mut c, pod, image) = (c.clone(), pod.clone(), fifo.clone());
        tokio::spawn(async move { create(&mut c, &pod, ctr("f", &image, "true")).await })
    });
    let mut version = c.clone();
    let v = tokio::time::timeout(
        Duration::from_secs(2),
        version.version(VersionRequest::default()),
    );
    assert!(
        v.await.is_ok(),
        "Version answers while the FIFO images are tried"
    );
    for attempt in attempts {
        let err = tokio::time::timeout(Duration::from_secs(10), attempt)
            .await
            .expect("CreateContainer of a FIFO /etc/passwd does not hang")
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
        assert!(
            err.message().contains("/etc/passwd is a FIFO"),
            "{}",
            err.message()
        );
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(containers(&mut c).await, 0, "nothing half-made is listed");

    // The host's user is not found through the image's symlink.
    let pod = &pods[0];
    let sc = LinuxContainerSecurityContext {
        run_as_username: "hostonly".into(),
        ..Default::default()
    };
    let err = create(&mut c, pod, with_sc(ctr("h", &to_host, "id -u"), sc))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("hostonly"), "{}", err.message());

    // /dev/zero behind the account files is nothing crustd reads (it used to take 2 GB). runc
    // reads the container's own view of the files inside the container and may refuse the
    // image ("token too long"); either way crustd stays small and nothing is half-made.
    let before = peak_rss_kib(&d);
    match create(&mut c, pod, ctr("z", &zero, "exec sleep 100")).await {
        Ok(_) => assert_eq!(containers(&mut c).await, 1),
        Err(e) => {
            assert!(e.message().contains("runc"), "{e:?}");
            assert_eq!(containers(&mut c).await, 0);
        }
    }
    let after = peak_rss_kib(&d);
    assert!(
        after < before + 64 * 1024,
        "crustd peak RSS went from {before} to {after} KiB"
    );
    for pod in &pods {
        common::stop_remove(&mut c, pod).await;
    }
    d.assert_no_leaks().await;
}

fn pid_target(target: &str) -> LinuxContainerSecurityContext {
    LinuxContainerSecurityContext {
        namespace_options: Some(NamespaceOption {
            pid: NamespaceMode::Target as i32,
            target_id: target.into(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_pid_namespace_target_must_be_a_running_container_of_the_same_pod() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("target-a")).await;
    let other = d.run_config(&mut c, d.pod("target-b")).await;
    let sleeper = |name: &str| ctr(name, &env.image, "exec sleep 1000");
    let target = create(&mut c, &pod, sleeper("target")).await.unwrap();
    let foreign = create(&mut c, &other, sleeper("foreign")).await.unwrap();
    start(&mut c, &foreign).await;

    let join = |name: &str, t: &str| with_sc(sleeper(name), pid_target(t));
    let err = create(&mut c, &pod, join("j1", &target)).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "created, not running: {err:?}"
    );
    start(&mut c, &target).await;
    let err = create(&mut c, &pod, join("j2", &foreign))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "another pod's: {err:?}");
    assert!(err.message().contains(&other), "{}", err.message());
    let err = create(&mut c, &pod, join("j3", &"b".repeat(64)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = create(&mut c, &pod, join("j4", "")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(
        containers(&mut c).await,
        2,
        "no refused container is listed"
    );

    let joined = create(&mut c, &pod, join("j5", &target)).await.unwrap();
    start(&mut c, &joined).await;
    let ns = |c: &mut Client, id: &str| {
        let (mut c, id) = (c.clone(), id.to_string());
        async move {
            exec(
                &mut c,
                &id,
                "readlink /proc/1/ns/pid; cat /proc/1/cmdline",
                10,
            )
            .await
            .unwrap()
            .1
        }
    };
    assert_eq!(
        ns(&mut c, &joined).await,
        ns(&mut c, &target).await,
        "one pid namespace"
    );
    for p in [&pod, &other] {
        common::stop_remove(&mut c, p).await;
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
#[allow(deprecated)]
async fn seccomp_and_capability_typos_are_invalid_argument_and_profiles_are_bounded() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("seccomp-typos")).await;
    let dir = d.root.parent().unwrap();
    let not_a_profile = dir.join("not-a-profile.json");
    std::fs::write(&not_a_profile, r#"{"hello": "world"}"#).unwrap();
    let localhost = |path: &str| LinuxContainerSecurityContext {
        seccomp: Some(SecurityProfile {
            profile_type: ProfileType::Localhost as i32,
            localhost_ref: path.into(),
        }),
        ..Default::default()
    };
    let cases = [
        ("/dev/zero", localhost("/dev/zero")),
        (
            "defaultAction",
            localhost(&not_a_profile.display().to_string()),
        ),
        ("relative/p.json", localhost("relative/p.json")),
        (
            "77",
            LinuxContainerSecurityContext {
                seccomp: Some(SecurityProfile {
                    profile_type: 77,
                    localhost_ref: String::new(),
                }),
                ..Default::default()
            },
        ),
        (
            "runtime/defualt",
            LinuxContainerSecurityContext {
                seccomp_profile_path: "runtime/defualt".into(),
                ..Default::default()
            },
        ),
        (
            "CAP_FLY",
            LinuxContainerSecurityContext {
                capabilities: Some(cri_api::v1::Capability {
                    add_capabilities: vec!["FLY".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
    ];
    for (i, (named, sc)) in cases.into_iter().enumerate() {
        let started = Instant::now();
        let config = with_sc(ctr(&format!("s{i}"), &env.image, "true"), sc);
        let err = create(&mut c, &pod, config).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{named}: {err:?}");
        assert!(err.message().contains(named), "{named}: {}", err.message());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{named} answered fast"
        );
    }
    assert!(
        peak_rss_kib(&d) < 256 * 1024,
        "the /dev/zero profile was not read whole"
    );
    assert_eq!(containers(&mut c).await, 0);
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// A directory bind-mounted onto itself and made shared, unmounted on drop.
struct SharedMount(std::path::PathBuf);

impl SharedMount {
    fn new(path: std::path::PathBuf) -> SharedMount {
        std::fs::create_dir_all(&path).unwrap();
        let run = |args: &[&str]| {
            let ok = std::process::Command::new("mount")
                .args(args)
                .status()
                .unwrap();
            assert!(ok.success(), "mount {args:?}");
        };
        let p = path.display().to_string();
        run(&["--bind", &p, &p]);
        run(&["--make-shared", &p]);
        SharedMount(path)
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-R", "-l"])
            .arg(&self.0)
            .status();
    }
}

fn mounted(
    config: ContainerConfig,
    host: &std::path::Path,
    p: MountPropagation,
) -> ContainerConfig {
    ContainerConfig {
        mounts: vec![Mount {
            container_path: "/data".into(),
            host_path: host.display().to_string(),
            propagation: p as i32,
            ..Default::default()
        }],
        ..config
    }
}

fn privileged_pod(d: &Daemon, name: &str) -> cri_api::v1::PodSandboxConfig {
    let mut pod = d.pod(name);
    let sc = pod
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap();
    sc.privileged = true;
    pod
}

fn privileged() -> LinuxContainerSecurityContext {
    LinuxContainerSecurityContext {
        privileged: true,
        ..Default::default()
    }
}

/// The CapBnd line of a status text.
fn cap_bnd(status: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with("CapBnd:"))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn privileged_all_capabilities_and_mount_propagation_on_this_host() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, privileged_pod(&d, "privileged")).await;
    let dir = d.root.parent().unwrap();
    // Not on a shared mount (this VM's / is private): refused up front, as containerd does.
    let private = dir.join("private-data");
    std::fs::create_dir_all(&private).unwrap();
    let bi = mounted(
        ctr("bi", &env.image, "true"),
        &private,
        MountPropagation::PropagationBidirectional,
    );
    let err = create(&mut c, &pod, with_sc(bi, privileged()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message().contains("is not a shared mount"),
        "{}",
        err.message()
    );
    let slave = mounted(
        ctr("sl", &env.image, "true"),
        &private,
        MountPropagation::PropagationHostToContainer,
    );
    let err = create(&mut c, &pod, slave).await.unwrap_err();
    assert!(
        err.message().contains("not a shared or slave mount"),
        "{}",
        err.message()
    );

    // A privileged container with a bidirectional mount of a shared one, and an ALL one.
    let shared = SharedMount::new(dir.join("shared-data"));
    let script = "exec sleep 1000";
    let bi = mounted(
        ctr("priv", &env.image, script),
        &shared.0,
        MountPropagation::PropagationBidirectional,
    );
    let priv_id = create(&mut c, &pod, with_sc(bi, privileged()))
        .await
        .unwrap();
    start(&mut c, &priv_id).await;
    let all = LinuxContainerSecurityContext {
        capabilities: Some(cri_api::v1::Capability {
            add_capabilities: vec!["ALL".into()],
            ..Default::default()
        }),
        ..Default::default()
    };
    let all_id = create(&mut c, &pod, with_sc(ctr("all", &env.image, script), all))
        .await
        .unwrap();
    start(&mut c, &all_id).await;
    let own = cap_bnd(&std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap());
    for id in [&priv_id, &all_id] {
        let (_, out, _) = exec(&mut c, id, "cat /proc/self/status", 10).await.unwrap();
        assert_eq!(cap_bnd(&out), own, "all = crustd's bounding set");
    }
    // A tmpfs mounted inside the privileged container shows on the host (rshared).
    let (code, _, err) = exec(
        &mut c,
        &priv_id,
        "mount -t tmpfs t /data && touch /data/from-inside",
        10,
    )
    .await
    .unwrap();
    assert_eq!(code, 0, "{err}");
    assert!(
        shared.0.join("from-inside").exists(),
        "propagated to the host"
    );
    // Lazily unmount the host view so the stopped container's propagated mount goes too.
    let _ = std::process::Command::new("umount").arg(&shared.0).status();
    common::stop_remove(&mut c, &pod).await;
    drop(shared);
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn client_mistakes_are_invalid_argument_naming_the_field() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("mistakes")).await;
    let resources = |edit: fn(&mut LinuxContainerResources)| {
        move |config: &mut ContainerConfig| {
            let mut r = LinuxContainerResources::default();
            edit(&mut r);
            config.linux.get_or_insert_with(Default::default).resources = Some(r);
        }
    };
    let mount = |host: &'static str, ctr: &'static str| {
        move |config: &mut ContainerConfig| {
            config.mounts = vec![Mount {
                host_path: host.into(),
                container_path: ctr.into(),
                ..Default::default()
            }];
        }
    };
    type Edit = Box<dyn Fn(&mut ContainerConfig)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "config.mounts.host_path",
            Box::new(mount("relative/dir", "/d")),
        ),
        (
            "config.mounts.container_path",
            Box::new(mount("/tmp", "/proc")),
        ),
        (
            "memory_limit_in_bytes",
            Box::new(resources(|r| r.memory_limit_in_bytes = 1)),
        ),
        (
            "cpuset_cpus",
            Box::new(resources(|r| r.cpuset_cpus = "99999".into())),
        ),
        ("cpu_period", Box::new(resources(|r| r.cpu_period = 500))),
        (
            "oom_score_adj",
            Box::new(resources(|r| r.oom_score_adj = 5000)),
        ),
        (
            "supplemental_groups",
            Box::new(|config: &mut ContainerConfig| {
                let sc = LinuxContainerSecurityContext {
                    supplemental_groups: (0..100_000).collect(),
                    ..Default::default()
                };
                *config = with_sc(config.clone(), sc);
            }),
        ),
    ];
    for (i, (field, edit)) in cases.into_iter().enumerate() {
        let mut config = ctr(&format!("m{i}"), &env.image, "true");
        edit(&mut config);
        let err = create(&mut c, &pod, config).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    assert_eq!(containers(&mut c).await, 0);

    // A missing host path is made (as containerd does), and works.
    let fresh = d.root.parent().unwrap().join("made-for-me/deep");
    let mut config = ctr("fresh", &env.image, "exec sleep 100");
    config.mounts = vec![Mount {
        host_path: fresh.display().to_string(),
        container_path: "/fresh".into(),
        ..Default::default()
    }];
    let id = create(&mut c, &pod, config).await.unwrap();
    assert!(fresh.is_dir());
    start(&mut c, &id).await;
    // ExecSync past the kernel's argv limit.
    let huge = c
        .exec_sync(cri_api::v1::ExecSyncRequest {
            container_id: id.clone(),
            cmd: vec!["echo".into(), "x".repeat(200_000)],
            timeout: 10,
        })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), Code::InvalidArgument, "{huge:?}");
    assert!(huge.message().contains("cmd"), "{}", huge.message());
    common::stop_remove(&mut c, &pod).await;

    // Sysctls are checked at RunPodSandbox: node-wide, malformed, or needing an own namespace.
    for (name, value) in [
        ("kernel.panic", "1"),
        ("net..x", "1"),
        ("net.core.somaxconn", "1"),
    ] {
        let mut config = d.pod("sysctl");
        config.linux.as_mut().unwrap().sysctls = [(name.to_string(), value.to_string())].into();
        let err = c
            .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name}: {err:?}");
        assert!(
            err.message().contains("sysctls") && err.message().contains(name),
            "{}",
            err.message()
        );
    }
    assert!(common::list(&mut c).await.is_empty());
    d.assert_no_leaks().await;
}

/// 500 concurrent bad requests of several kinds, each answered with a caller's error (never
/// Unknown or Internal); crustd answers Version within a second afterwards.
#[tokio::test]
async fn a_burst_of_bad_requests_leaves_crustd_responsive() {
    let d = Daemon::start().await;
    let c = d.client().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let mut c = c.clone();
        let mut pod = d.pod(&format!("burst-{i}"));
        tasks.spawn(async move {
            let status = match i % 5 {
                0 => {
                    pod.metadata.as_mut().unwrap().name = "../../etc".into();
                    c.run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
                        config: Some(pod),
                        runtime_handler: String::new(),
                    })
                    .await
                    .map(drop)
                }
                1 => c
                    .create_container(cri_api::v1::CreateContainerRequest {
                        pod_sandbox_id: "x/../y".into(),
                        config: Some(ContainerConfig::default()),
                        sandbox_config: None,
                    })
                    .await
                    .map(drop),
                2 => c
                    .exec_sync(cri_api::v1::ExecSyncRequest {
                        container_id: "a".repeat(64),
                        cmd: vec!["true".into()],
                        timeout: 1,
                    })
                    .await
                    .map(drop),
                3 => {
                    pod.annotations.insert("big".into(), "x".repeat(300 * 1024));
                    c.run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
                        config: Some(pod),
                        runtime_handler: String::new(),
                    })
                    .await
                    .map(drop)
                }
                _ => c
                    .exec(ExecRequest {
                        container_id: String::new(),
                        cmd: vec![],
                        ..Default::default()
                    })
                    .await
                    .map(drop),
            };
            status.expect_err("a bad request fails").code()
        });
    }
    while let Some(code) = tasks.join_next().await {
        let code = code.unwrap();
        assert!(
            matches!(
                code,
                Code::InvalidArgument | Code::NotFound | Code::FailedPrecondition
            ),
            "{code:?}"
        );
    }
    let mut c = d.client().await;
    let started = Instant::now();
    c.version(VersionRequest::default()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert!(common::list(&mut c).await.is_empty());
    d.assert_no_leaks().await;
}

/// Container logs never go through a symlink below the pod's log directory, nor into a
/// non-regular file, and log paths cannot climb out of it (FailedPrecondition / InvalidArgument
/// naming config.log_path, nothing written outside); AppArmor profiles are names, checked
/// against the host: here, a Localhost profile (escaping or not) is refused with the field named
/// and Unconfined runs.
#[tokio::test]
async fn log_paths_and_apparmor_profiles_cannot_escape() {
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut c = d.client().await;
    let outside = d.dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let (pod, logs) = common::ctr::pod_with_logs(&d, &mut c, "logs-escape").await;
    std::fs::create_dir_all(&logs).unwrap();
    std::os::unix::fs::symlink(&outside, logs.join("via-dir")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim.log"), logs.join("via-file.log")).unwrap();
    std::os::unix::fs::symlink("/dev/null", logs.join("dev.log")).unwrap();
    let cases = [
        ("via-dir/0.log", Code::FailedPrecondition),
        ("via-file.log", Code::FailedPrecondition),
        ("dev.log", Code::FailedPrecondition),
        ("../escape.log", Code::InvalidArgument),
        ("/etc/escape.log", Code::InvalidArgument),
    ];
    for (i, (log_path, code)) in cases.into_iter().enumerate() {
        let mut config = ctr(&format!("log{i}"), &env.image, "echo leaked");
        config.log_path = log_path.into();
        let err = create(&mut c, &pod, config).await.unwrap_err();
        assert_eq!(err.code(), code, "{log_path}: {err:?}");
        assert!(
            err.message().contains("config.log_path"),
            "{log_path}: {err:?}"
        );
    }
    assert_eq!(containers(&mut c).await, 0);
    assert_eq!(
        std::fs::read_dir(&outside).unwrap().count(),
        0,
        "written outside"
    );
    // A plain log path still works, in a subdirectory the shim makes.
    let mut config = ctr("fine", &env.image, "echo logged");
    config.log_path = "fine/0.log".into();
    let id = create(&mut c, &pod, config).await.unwrap();
    start(&mut c, &id).await;
    common::ctr::wait_exited(&mut c, &id).await;
    let text = std::fs::read_to_string(logs.join("fine/0.log")).unwrap();
    assert!(text.contains(" stdout F logged"), "{text}");

    let apparmor_on = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.starts_with('Y'));
    let profile = |kind: ProfileType, reference: &str| SecurityProfile {
        profile_type: kind as i32,
        localhost_ref: reference.into(),
    };
    for reference in ["../../etc/passwd", "localhost/crust-test-not-loaded"] {
        let sc = LinuxContainerSecurityContext {
            apparmor: Some(profile(ProfileType::Localhost, reference)),
            ..Default::default()
        };
        let err = create(&mut c, &pod, with_sc(ctr("aa", &env.image, "true"), sc))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{reference}: {err:?}");
        assert!(err.message().contains("apparmor"), "{err:?}");
    }
    if !apparmor_on {
        let sc = LinuxContainerSecurityContext {
            apparmor: Some(profile(ProfileType::RuntimeDefault, "")),
            ..Default::default()
        };
        let err = create(&mut c, &pod, with_sc(ctr("aa", &env.image, "true"), sc))
            .await
            .unwrap_err();
        assert!(err.message().contains("not enabled"), "{err:?}");
        let mut pod_config = d.pod("aa-pod");
        let pod_sc = pod_config
            .linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap();
        pod_sc.apparmor = Some(profile(ProfileType::Localhost, "x"));
        let err = c
            .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
                config: Some(pod_config),
                runtime_handler: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains("apparmor"), "{err:?}");
    }
    let sc = LinuxContainerSecurityContext {
        apparmor: Some(profile(ProfileType::Unconfined, "")),
        ..Default::default()
    };
    create(
        &mut c,
        &pod,
        with_sc(ctr("unconfined", &env.image, "true"), sc),
    )
    .await
    .unwrap();
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}

/// `limits.max_grpc_message_size` bounds what crustd decodes: a larger request is refused
/// before it is read into a CRI message (tonic's OutOfRange, naming the limit), a smaller one
/// is served, and crustd goes on.
#[tokio::test]
async fn requests_over_the_grpc_message_limit_are_refused() {
    let d = Daemon::start_with("[limits]\nmax_grpc_message_size = \"64KiB\"\n", &[]).await;
    let mut c = d.client().await;
    let mut big = d.pod("grpc-big");
    big.annotations.insert("big".into(), "x".repeat(100 << 10));
    let err = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(big),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("65536"), "{err:?}");
    let mut small = d.pod("grpc-small");
    small
        .annotations
        .insert("small".into(), "x".repeat(32 << 10));
    let pod = d.run_config(&mut c, small).await;
    c.version(VersionRequest::default()).await.unwrap();
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}
