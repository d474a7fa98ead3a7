//! Concurrency (RELIABILITY.md C2, C3): identical parallel runs, and teardown racing setup.

mod common;

use common::Daemon;
use cri_api::v1::{RemovePodSandboxRequest, RunPodSandboxRequest};
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c2_hundred_identical_runs_make_exactly_one_sandbox() {
    let d = Daemon::start().await;
    let c = d.client().await;
    let config = d.pod("c2");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let mut c = c.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            c.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                ids.insert(r.into_inner().pod_sandbox_id);
            }
            Err(e) => assert_eq!(e.code(), Code::AlreadyExists, "{e:?}"),
        }
    }
    assert_eq!(
        ids.len(),
        1,
        "all successful calls name one sandbox: {ids:?}"
    );
    let mut c = c.clone();
    let items = common::list(&mut c).await;
    assert_eq!(items.len(), 1);
    let id = ids.into_iter().next().unwrap();
    assert_eq!(d.pinned_namespaces(), vec![format!("{id}/ipc")]);
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn c3_teardown_racing_run_and_concurrent_stops() {
    let d = Daemon::start().await;
    let c = d.client().await;
    for round in 0..5 {
        common::race_teardown_against_run(&c, d.pod(&format!("c3-{round}"))).await;
    }
    d.assert_no_leaks().await;
}
