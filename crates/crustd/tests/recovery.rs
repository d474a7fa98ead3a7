//! Restart recovery (RELIABILITY.md R1, R4, R6) for host-network pods.

mod common;

use common::Daemon;
use cri_api::v1::{PodSandboxState, PodSandboxStatusRequest, StopPodSandboxRequest};
use tonic::Code;

async fn state_of(c: &mut common::Client, id: &str) -> (i32, String) {
    let r = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    (r.status.unwrap().state, r.info["info"].clone())
}

#[tokio::test]
async fn r1_graceful_restart_keeps_ready_and_notready_pods() {
    let mut d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    let ready = d.run_pod(&mut c, "r1-ready").await;
    let stopped = d.run_pod(&mut c, "r1-stopped").await;
    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: stopped.clone(),
    })
    .await
    .unwrap();
    let before = common::list(&mut c).await;
    let pause_before = d.pause_pids();

    d.stop_graceful();
    assert_eq!(
        d.pause_pids(),
        pause_before,
        "pods keep running while crustd is down"
    );
    d.restart().await;
    let mut c = d.client().await;

    let after = common::list(&mut c).await;
    let key = |v: &Vec<cri_api::v1::PodSandbox>| {
        let mut v: Vec<_> = v
            .iter()
            .map(|p| {
                (
                    p.id.clone(),
                    p.state,
                    p.created_at,
                    format!("{:?}", p.metadata),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&before), key(&after));
    assert_eq!(
        state_of(&mut c, &ready).await.0,
        PodSandboxState::SandboxReady as i32
    );
    assert_eq!(
        state_of(&mut c, &stopped).await.0,
        PodSandboxState::SandboxNotready as i32
    );
    // The name is still reserved: the same request gets the same pod.
    assert_eq!(d.run_pod(&mut c, "r1-ready").await, ready);
    // The pause is watched again: killing it now is noticed.
    let pid = d.pause_pids()[0];
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let noticed = common::eventually(std::time::Duration::from_secs(2), || {
        let mut c = c.clone();
        let ready = ready.clone();
        async move { state_of(&mut c, &ready).await.0 == PodSandboxState::SandboxNotready as i32 }
    })
    .await;
    assert!(noticed, "exit of a recovered pause is noticed");
    for id in [ready, stopped] {
        common::stop_remove(&mut c, &id).await;
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn r4_pause_died_while_crustd_was_down() {
    let mut d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    let id = d.run_pod(&mut c, "r4").await;
    d.stop_graceful();
    let pid = d.pause_pids()[0];
    unsafe { libc::kill(pid, libc::SIGKILL) };
    assert!(
        common::eventually(std::time::Duration::from_secs(2), || async {
            d.pause_pids().is_empty()
        })
        .await
    );
    d.restart().await;
    let mut c = d.client().await;
    let (state, info) = state_of(&mut c, &id).await;
    assert_eq!(state, PodSandboxState::SandboxNotready as i32);
    assert!(info.contains("exited while crustd was down"), "{info}");
    common::stop_remove(&mut c, &id).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn r6_corrupt_truncated_and_future_records_do_not_stop_crustd() {
    let mut d = Daemon::start().await;
    let mut c = d.client().await;
    let good = d.run_pod(&mut c, "r6-good").await;
    let corrupt = d.run_pod(&mut c, "r6-corrupt").await;
    let truncated = d.run_pod(&mut c, "r6-truncated").await;
    let future = d.run_pod(&mut c, "r6-future").await;
    d.stop_graceful();
    let sandboxes = d.root.join("sandboxes");
    let record = |id: &str| sandboxes.join(id).join("sandbox.json");
    std::fs::write(record(&corrupt), b"{ this is not json").unwrap();
    let text = std::fs::read(record(&truncated)).unwrap();
    std::fs::write(record(&truncated), &text[..text.len() / 2]).unwrap();
    let text = std::fs::read_to_string(record(&future)).unwrap();
    std::fs::write(
        record(&future),
        text.replacen("\"version\": 1", "\"version\": 999", 1),
    )
    .unwrap();

    d.restart().await;
    let mut c = d.client().await;
    assert_eq!(
        state_of(&mut c, &good).await.0,
        PodSandboxState::SandboxReady as i32
    );
    let items = common::list(&mut c).await;
    assert_eq!(items.len(), 4, "bad records are listed, not dropped");
    for bad in [&corrupt, &truncated, &future] {
        let (state, info) = state_of(&mut c, bad).await;
        assert_eq!(state, PodSandboxState::SandboxNotready as i32);
        assert!(info.contains("loadError"), "{info}");
        assert!(record(bad).exists(), "a bad record is kept until Remove");
    }
    // Unreadable records are removable; their pause containers are killed and deleted with them.
    for id in [&good, &corrupt, &truncated, &future] {
        common::stop_remove(&mut c, id).await;
        let err = c
            .pod_sandbox_status(PodSandboxStatusRequest {
                pod_sandbox_id: id.to_string(),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
    }
    assert!(d.pause_pids().is_empty());
    assert!(
        d.pinned_namespaces().is_empty(),
        "unreadable records' pins are removed"
    );
    d.assert_no_leaks().await;
}

/// A removal cut by a crash after its rename (a `.ID.removing` directory, half deleted, under
/// the containers and sandboxes roots) is finished at start: nothing is listed for it, nothing
/// of it stays.
#[tokio::test]
async fn removals_cut_by_a_crash_are_finished_at_start() {
    let mut d = Daemon::start().await;
    d.kill9();
    let cut = |root: &std::path::Path, id: &str| {
        let trash = root.join(format!(".{id}.removing"));
        std::fs::create_dir_all(trash.join("rootfs/etc")).unwrap();
        std::fs::write(trash.join("config.json"), b"{}").unwrap();
        trash
    };
    let ctr = cut(&d.root.join("containers"), &"c".repeat(64));
    let pod = cut(&d.root.join("sandboxes"), &"d".repeat(64));
    d.restart().await;
    let mut c = d.client().await;
    assert!(
        common::list(&mut c).await.is_empty(),
        "no pod for a cut removal"
    );
    let listed = c
        .list_containers(cri_api::v1::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert!(
        listed.is_empty(),
        "no container for a cut removal: {listed:?}"
    );
    assert!(
        !ctr.exists() && !pod.exists(),
        "the cut removals were finished"
    );
    d.assert_no_leaks().await;
}

/// crustd killed while its `runc create` of a pause runs: the create outlives it, and recovery
/// waits for it, so the pause it makes is found (and Stop/Remove delete it) instead of turning
/// up after the pod was removed.
#[tokio::test]
async fn a_pause_create_cut_off_by_a_crash_is_waited_for_and_found() {
    let mut d = Daemon::start().await;
    let c = d.client().await;
    std::fs::write(d.failpoints.join("create.sleep"), "1.5").unwrap();
    let config = d.pod("r7");
    let run = tokio::spawn(async move {
        let mut c = c;
        c.run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: "failing".into(),
        })
        .await
    });
    // The wrapper sleeps before the real runc create: crustd dies while it is underway.
    let underway = common::eventually(std::time::Duration::from_secs(5), || async {
        !d.processes("runc-failpoint").is_empty()
    })
    .await;
    assert!(underway, "runc create is running");
    d.kill9();
    assert!(run.await.unwrap().is_err(), "the RunPodSandbox was cut");
    d.clear_runc_failpoints();
    d.restart().await;
    assert!(
        d.log_text().contains("found the pause through the runtime"),
        "recovery waited for the create: {}",
        d.log_text()
    );
    let mut c = d.client().await;
    let pods = common::list(&mut c).await;
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0].state, PodSandboxState::SandboxNotready as i32);
    common::stop_remove(&mut c, &pods[0].id.clone()).await;
    d.assert_no_leaks().await;
}

/// The same for a container: crustd killed while crust-shim's `runc create` runs. Recovery
/// waits for it (the daemon says so), so a Remove right after the restart cannot run while the
/// create is halfway and miss what it makes.
#[tokio::test]
async fn a_container_create_cut_off_by_a_crash_is_waited_for_and_removable() {
    let mut d = Daemon::start().await;
    let env = common::ctr::busybox(&d).await;
    let mut c = d.client().await;
    let pod = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(d.pod("r7c")),
            runtime_handler: "failing".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    // Long enough that the restart (slow on a busy machine) comes while it still runs.
    std::fs::write(d.failpoints.join("create.sleep"), "5").unwrap();
    let config = common::ctr::ctr("cut", &env.image, "exec sleep 100");
    let (mut c2, pod2) = (c.clone(), pod.clone());
    let create = tokio::spawn(async move { common::ctr::create(&mut c2, &pod2, config).await });
    let underway = common::eventually(std::time::Duration::from_secs(5), || async {
        // The wrapper itself (crust-shim's command line names it too, before it runs it).
        !d.processes("runc-failpoint --root").is_empty()
    })
    .await;
    assert!(underway, "runc create is running");
    d.kill9();
    assert!(
        create.await.unwrap().is_err(),
        "the CreateContainer was cut"
    );
    d.clear_runc_failpoints();
    d.restart().await;
    let mut c = d.client().await;
    let listed = c
        .list_containers(cri_api::v1::ListContainersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(listed.len(), 1, "{listed:?}");
    let waited = format!(
        "waiting for a runtime create that outlived crustd id=\"{}\"",
        listed[0].id
    );
    assert!(
        d.log_text().contains(&waited),
        "recovery waited for the create: {}",
        d.log_text()
    );
    common::stop_remove(&mut c, &pod).await;
    d.assert_no_leaks().await;
}
