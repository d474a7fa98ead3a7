//! Bad input gets a clear gRPC error and leaves nothing behind (RELIABILITY.md V1, I1, I2), and the
//! runtime-level RPCs answer as kubelet expects.

mod common;

use common::Daemon;
use cri_api::v1::{
    PodSandboxConfig, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    RuntimeConfigRequest, StatusRequest, StopPodSandboxRequest, UpdateRuntimeConfigRequest,
    VersionRequest,
};
use tonic::Code;

async fn run_err(
    d: &Daemon,
    c: &mut common::Client,
    config: Option<PodSandboxConfig>,
    handler: &str,
) -> tonic::Status {
    let err = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config,
            runtime_handler: handler.to_string(),
        })
        .await
        .expect_err("request must fail");
    let items = common::list(c).await;
    assert!(items.is_empty(), "a rejected request left {items:?}");
    d.assert_no_leaks().await;
    err
}

#[tokio::test]
async fn v1_malformed_run_requests_are_invalid_argument_naming_the_field() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let err = run_err(&d, &mut c, None, "").await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("config"), "{}", err.message());

    let mut no_meta = d.pod("v1");
    no_meta.metadata = None;
    let err = run_err(&d, &mut c, Some(no_meta), "").await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("config.metadata"),
        "{}",
        err.message()
    );

    for (field, edit) in [
        (
            "config.metadata.name",
            Box::new(|p: &mut PodSandboxConfig| p.metadata.as_mut().unwrap().name.clear())
                as Box<dyn Fn(&mut PodSandboxConfig)>,
        ),
        (
            "config.metadata.namespace",
            Box::new(|p: &mut PodSandboxConfig| {
                p.metadata.as_mut().unwrap().namespace = "a/b".into()
            }),
        ),
        (
            "config.metadata.uid",
            Box::new(|p: &mut PodSandboxConfig| p.metadata.as_mut().unwrap().uid.clear()),
        ),
        (
            "config.log_directory",
            Box::new(|p: &mut PodSandboxConfig| p.log_directory = "/var/log/pods/../../etc".into()),
        ),
        (
            "config.annotations",
            Box::new(|p: &mut PodSandboxConfig| {
                p.annotations.insert("huge".into(), "x".repeat(300 * 1024));
            }),
        ),
        (
            "config.linux.cgroup_parent",
            Box::new(|p: &mut PodSandboxConfig| {
                p.linux.as_mut().unwrap().cgroup_parent = "relative/parent".into()
            }),
        ),
    ] {
        let mut config = d.pod("v1");
        edit(&mut config);
        let err = run_err(&d, &mut c, Some(config), "").await;
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }

    let err = run_err(&d, &mut c, Some(d.pod("v1")), "kata-nonexistent").await;
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("kata-nonexistent"),
        "{}",
        err.message()
    );
    // The daemon is healthy afterwards and the same name runs fine.
    let id = d.run_pod(&mut c, "v1").await;
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn i1_i2_idempotent_teardown_and_bad_ids() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let unknown = "0".repeat(64);
    common::stop_remove(&mut c, &unknown).await;
    let err = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: unknown,
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    for rpc in ["stop", "remove", "status"] {
        let err = match rpc {
            "stop" => c
                .stop_pod_sandbox(StopPodSandboxRequest {
                    pod_sandbox_id: String::new(),
                })
                .await
                .map(drop),
            "remove" => c
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: String::new(),
                })
                .await
                .map(drop),
            _ => c
                .pod_sandbox_status(PodSandboxStatusRequest::default())
                .await
                .map(drop),
        }
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{rpc} with empty id");
    }

    // Pigeonhole: 17 pods share a first hex digit somewhere, making a 1-char prefix ambiguous.
    let mut ids = Vec::new();
    for i in 0..17 {
        ids.push(d.run_pod(&mut c, &format!("i2-{i}")).await);
    }
    let prefix = (0..16)
        .map(|n| format!("{n:x}"))
        .find(|p| ids.iter().filter(|id| id.starts_with(p.as_str())).count() >= 2)
        .unwrap();
    let err = c
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: prefix.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("ambiguous"), "{}", err.message());
    let err = c
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: prefix,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        d.pinned_namespaces().len(),
        17,
        "an ambiguous id touched nothing"
    );
    for id in ids {
        c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .unwrap();
        common::stop_remove(&mut c, &id).await;
        c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .unwrap();
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn runtime_rpcs_and_unimplemented_ones() {
    let secret = "s3cr3t-registry-password";
    let registry = format!(
        "[registries.\"r.example\"]\nusername = \"bob\"\npassword = \"{secret}\"\nmirrors = [\"https://bob:{secret}@m.example\"]\n"
    );
    let d = Daemon::start_with(&registry, &[]).await;
    let mut c = d.client().await;
    let v = c
        .version(VersionRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "crust");
    assert_eq!(v.runtime_api_version, "v1");

    let st = c
        .status(StatusRequest { verbose: true })
        .await
        .unwrap()
        .into_inner();
    let conds = st.status.unwrap().conditions;
    let runtime = conds.iter().find(|c| c.r#type == "RuntimeReady").unwrap();
    assert!(runtime.status);
    let network = conds.iter().find(|c| c.r#type == "NetworkReady").unwrap();
    assert!(
        network.status,
        "the harness gives crustd a CNI config: {network:?}"
    );
    // crictl info parses every value as JSON; secrets never show.
    for (key, value) in &st.info {
        serde_json::from_str::<serde_json::Value>(value)
            .unwrap_or_else(|e| panic!("info[{key}] is not JSON ({e}): {value}"));
        assert!(!value.contains(secret), "info[{key}] shows the password");
    }
    let config: serde_json::Value = serde_json::from_str(&st.info["config"]).unwrap();
    assert!(
        config["runtimes"]["failing"]["path"].is_string(),
        "{config}"
    );
    assert_eq!(config["registries"]["r.example"]["username"], "bob");
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_crustd"))
        .arg("--config")
        .arg(&d.config)
        .arg("config")
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&printed.stdout);
    assert!(printed.contains("[registries.\"r.example\"]"), "{printed}");
    assert!(
        !printed.contains(secret),
        "crustd config shows the password"
    );

    let rc = c
        .runtime_config(RuntimeConfigRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        rc.linux.unwrap().cgroup_driver,
        cri_api::v1::CgroupDriver::Cgroupfs as i32
    );

    let update = UpdateRuntimeConfigRequest {
        runtime_config: Some(cri_api::v1::RuntimeConfig {
            network_config: Some(cri_api::v1::NetworkConfig {
                pod_cidr: "10.250.0.0/24".into(),
            }),
        }),
    };
    c.update_runtime_config(update).await.unwrap();
    assert!(d.log_text().contains("10.250.0.0/24"));
    assert!(!d.log_text().contains(secret), "the log shows the password");

    let err = c
        .exec(cri_api::v1::ExecRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "Exec without a command: {err:?}"
    );
    assert!(err.message().contains("cmd"), "{}", err.message());
    let err = c
        .exec_sync(cri_api::v1::ExecSyncRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let mut images = d.image_client().await;
    let err = images
        .pull_image(cri_api::v1::PullImageRequest::default())
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::InvalidArgument,
        "PullImage without an image"
    );
    assert!(err.message().contains("image"), "{}", err.message());
}
