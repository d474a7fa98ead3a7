//! Container helpers shared by the container test binaries: a busybox image pulled from a real
//! local registry, container configs, and the CRI calls the tests repeat.

use std::time::Duration;

use super::{
    registry::{busybox_layer, Compression, Registry, TestImage, TestLayer},
    Client, Daemon,
};
use cri_api::v1::{
    ContainerConfig, ContainerMetadata, ContainerState, ContainerStatusRequest,
    CreateContainerRequest, ImageSpec, PullImageRequest, StartContainerRequest,
};

pub struct Env {
    pub registry: Registry,
    pub image: String,
}

pub async fn busybox(d: &Daemon) -> Env {
    let registry = Registry::start().await;
    let mut image = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    image.config = serde_json::json!({"Cmd": ["/bin/sh"], "Env": ["FROM_IMAGE=1"]});
    let image = push_and_pull(d, &registry, "test/busybox", &image).await;
    Env { registry, image }
}

/// Pushes `image` as `repo:1` and pulls it into crustd; its reference.
pub async fn push_and_pull(
    d: &Daemon,
    registry: &Registry,
    repo: &str,
    image: &TestImage,
) -> String {
    registry.push_image(repo, "1", image).await;
    let name = format!("{}/{repo}:1", registry.addr);
    d.image_client()
        .await
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: name.clone(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap();
    name
}

pub fn ctr(name: &str, image: &str, script: &str) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        labels: [("ctr".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

pub async fn create(
    c: &mut Client,
    pod: &str,
    config: ContainerConfig,
) -> Result<String, tonic::Status> {
    c.create_container(CreateContainerRequest {
        pod_sandbox_id: pod.into(),
        config: Some(config),
        sandbox_config: None,
    })
    .await
    .map(|r| r.into_inner().container_id)
}

pub async fn start(c: &mut Client, id: &str) {
    c.start_container(StartContainerRequest {
        container_id: id.into(),
    })
    .await
    .unwrap();
}

pub async fn status(c: &mut Client, id: &str) -> cri_api::v1::ContainerStatus {
    c.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .unwrap()
    .into_inner()
    .status
    .unwrap()
}

pub async fn wait_exited(c: &mut Client, id: &str) -> cri_api::v1::ContainerStatus {
    for _ in 0..200 {
        let s = status(c, id).await;
        if s.state == ContainerState::ContainerExited as i32 {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("container {id} did not exit");
}

pub async fn pod_with_logs(d: &Daemon, c: &mut Client, name: &str) -> (String, std::path::PathBuf) {
    let logs = d.root.parent().unwrap().join(format!("logs-{name}"));
    let mut config = d.pod(name);
    config.log_directory = logs.display().to_string();
    (d.run_config(c, config).await, logs)
}

pub async fn exec(
    c: &mut Client,
    id: &str,
    script: &str,
    timeout: i64,
) -> Result<(i32, String, String), tonic::Status> {
    c.exec_sync(cri_api::v1::ExecSyncRequest {
        container_id: id.into(),
        cmd: vec!["/bin/sh".into(), "-c".into(), script.into()],
        timeout,
    })
    .await
    .map(|r| {
        let r = r.into_inner();
        (
            r.exit_code,
            String::from_utf8_lossy(&r.stdout).into_owned(),
            String::from_utf8_lossy(&r.stderr).into_owned(),
        )
    })
}
