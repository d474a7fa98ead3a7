//! RunPodSandbox failing or crashing at every step (RELIABILITY.md R3 for host-network pods), via
//! the test-only failpoints compiled in with `--features failpoints`.
#![cfg(feature = "failpoints")]

mod common;

use common::Daemon;
use cri_api::v1::{
    ListPodSandboxRequest, PodSandboxState, RemovePodSandboxRequest, RunPodSandboxRequest,
    StopPodSandboxRequest,
};

const STEPS: [&str; 5] = [
    "run:after_persist",
    "run:after_files",
    "run:after_create",
    "run:before_start",
    "run:after_start",
];

#[tokio::test]
async fn an_error_at_every_step_is_rolled_back_completely() {
    for step in STEPS {
        let d = Daemon::start_with("", &[("CRUST_FAILPOINTS", &format!("{step}=error"))]).await;
        let mut c = d.client().await;
        let err = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(d.pod("fp")),
                runtime_handler: String::new(),
            })
            .await
            .expect_err(step);
        assert!(err.message().contains(step), "{step}: {}", err.message());
        let items = c
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert!(items.is_empty(), "{step}: {items:?}");
        d.assert_no_leaks().await;
    }
}

#[tokio::test]
async fn r3_a_crash_at_every_step_leaves_a_removable_notready_pod() {
    for step in STEPS {
        let mut d = Daemon::start_with("", &[("CRUST_FAILPOINTS", &format!("{step}=abort"))]).await;
        let mut c = d.client().await;
        let res = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(d.pod("crash")),
                runtime_handler: String::new(),
            })
            .await;
        assert!(res.is_err(), "{step}: crustd should have crashed");
        d.kill9();
        d.unset_env("CRUST_FAILPOINTS");
        d.restart().await;
        let mut c = d.client().await;
        let items = c
            .list_pod_sandbox(ListPodSandboxRequest::default())
            .await
            .unwrap()
            .into_inner()
            .items;
        assert_eq!(
            items.len(),
            1,
            "{step}: the write-ahead record survives the crash"
        );
        assert_eq!(
            items[0].state,
            PodSandboxState::SandboxNotready as i32,
            "{step}"
        );
        let id = items[0].id.clone();
        // The name stays with the NOTREADY pod (never two sandboxes for one name)...
        let retry = c
            .run_pod_sandbox(RunPodSandboxRequest {
                config: Some(d.pod("crash")),
                runtime_handler: String::new(),
            })
            .await;
        assert_eq!(
            retry.unwrap_err().code(),
            tonic::Code::AlreadyExists,
            "{step}"
        );
        // ...until Stop/Remove free everything; then the retry succeeds.
        c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .unwrap();
        c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .unwrap();
        d.assert_no_leaks().await;
        let id = d.run_pod(&mut c, "crash").await;
        c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .unwrap();
        d.assert_no_leaks().await;
    }
}
