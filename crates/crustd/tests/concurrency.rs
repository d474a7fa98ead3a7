//! Concurrency (RELIABILITY.md C2, C3): identical parallel runs, and teardown racing setup.

mod common;

use common::Daemon;
use cri_api::v1::{
    ListPodSandboxRequest, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StopPodSandboxRequest,
};
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
    let items = c
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner()
        .items;
    assert_eq!(items.len(), 1);
    assert_eq!(d.pause_pids().len(), 1);
    let id = ids.into_iter().next().unwrap();
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
        let name = format!("c3-{round}");
        let config = d.pod(&name);
        let mut runner = c.clone();
        let run = tokio::spawn(async move {
            runner
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                })
                .await
        });
        // Race Stop/Remove against the run by listing until the sandbox shows up.
        let mut lister = c.clone();
        let id = loop {
            let items = lister
                .list_pod_sandbox(ListPodSandboxRequest::default())
                .await
                .unwrap()
                .into_inner()
                .items;
            if let Some(p) = items
                .iter()
                .find(|p| p.metadata.as_ref().unwrap().name == name)
            {
                break p.id.clone();
            }
            tokio::task::yield_now().await;
        };
        let mut stops = Vec::new();
        for _ in 0..10 {
            let mut c = c.clone();
            let id = id.clone();
            stops.push(tokio::spawn(async move {
                c.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: id })
                    .await
            }));
        }
        let mut remover = c.clone();
        let rid = id.clone();
        let remove = tokio::spawn(async move {
            remover
                .remove_pod_sandbox(RemovePodSandboxRequest {
                    pod_sandbox_id: rid,
                })
                .await
        });
        for s in stops {
            s.await.unwrap().expect("Stop never fails");
        }
        remove.await.unwrap().expect("Remove never fails");
        let _ = run.await.unwrap(); // either outcome is fine; what matters is the end state
        let mut c2 = c.clone();
        // If Run finished after Remove, the pod may exist again only as a fresh READY one: remove it.
        if let Ok(st) = c2
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.clone(),
                verbose: false,
            })
            .await
        {
            assert!(st.into_inner().status.is_some());
            c2.remove_pod_sandbox(RemovePodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .unwrap();
        }
        let err = c2
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id,
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    d.assert_no_leaks().await;
}
