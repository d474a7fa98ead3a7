//! Failure paths of RunPodSandbox (RELIABILITY.md F5, F6 for host-network pods): runc failing at
//! create or start is undone completely; an undo that itself fails keeps the pod NOTREADY until a
//! later Stop/Remove frees it, also across a restart.

mod common;

use common::Daemon;
use cri_api::v1::{PodSandboxState, RemovePodSandboxRequest, RunPodSandboxRequest};
use tonic::Code;

async fn run_failing(d: &Daemon, c: &mut common::Client, name: &str) -> tonic::Status {
    c.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(d.pod(name)),
        runtime_handler: "failing".into(),
    })
    .await
    .expect_err("run must fail")
}

#[tokio::test]
async fn f5_runc_create_or_start_failure_is_undone_completely() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    for op in ["create", "start"] {
        d.fail_runc(op);
        let err = run_failing(&d, &mut c, "f5").await;
        assert_eq!(err.code(), Code::Internal);
        assert!(
            err.message()
                .contains(&format!("{op} the sandbox container")),
            "{}",
            err.message()
        );
        assert!(
            err.message()
                .contains(&format!("injected failure: runc {op}")),
            "{}",
            err.message()
        );
        let items = common::list(&mut c).await;
        assert!(items.is_empty(), "{items:?}");
        d.assert_no_leaks().await;
        d.clear_runc_failpoints();
    }
    // Retrying the same pod now succeeds.
    let id = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(d.pod("f5")),
            runtime_handler: "failing".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn f6_failed_undo_keeps_the_pod_notready_for_remove_also_across_restart() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    d.fail_runc("start");
    d.fail_runc("delete"); // the undo's runc delete fails too
    let err = run_failing(&d, &mut c, "f6").await;
    assert!(
        err.message().contains("not fully cleaned up"),
        "{}",
        err.message()
    );
    let items = common::list(&mut c).await;
    assert_eq!(items.len(), 1, "the half-built pod stays visible");
    assert_eq!(items[0].state, PodSandboxState::SandboxNotready as i32);
    let id = items[0].id.clone();
    // Remove cannot finish while runc delete keeps failing, and says so.
    let err = c
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .unwrap_err();
    assert!(
        err.message().contains("injected failure: runc delete"),
        "{}",
        err.message()
    );
    // The name stays taken by the NOTREADY pod: a retry is refused, not duplicated.
    let err = run_failing(&d, &mut c, "f6").await;
    assert_eq!(err.code(), Code::AlreadyExists);
    // Across a restart, then with runc healthy again, Stop/Remove free everything.
    d.stop_graceful();
    d.restart().await;
    let mut c = d.client().await;
    let items = common::list(&mut c).await;
    assert_eq!(items.len(), 1);
    d.clear_runc_failpoints();
    common::stop_remove(&mut c, &id).await;
    d.assert_no_leaks().await;
}
