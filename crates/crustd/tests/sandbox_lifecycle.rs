//! Pod sandbox lifecycle over the socket with a real tonic client and real runc (host network).

mod common;

use std::time::Duration;

use common::Daemon;
use cri_api::v1::{
    ContainerEventType, GetEventsRequest, ListPodSandboxRequest, PodSandboxFilter, PodSandboxState,
    PodSandboxStateValue, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    StopPodSandboxRequest,
};
use futures_util::StreamExt;
use tonic::Code;

fn status_req(id: &str, verbose: bool) -> PodSandboxStatusRequest {
    PodSandboxStatusRequest {
        pod_sandbox_id: id.to_string(),
        verbose,
    }
}

#[tokio::test]
async fn run_status_list_stop_remove_with_events() {
    let d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    let mut events = c
        .get_container_events(GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();

    let id = d.run_pod(&mut c, "web").await;
    assert_eq!(id.len(), 64);

    let st = c
        .pod_sandbox_status(status_req(&id, true))
        .await
        .unwrap()
        .into_inner();
    let status = st.status.unwrap();
    assert_eq!(status.state, PodSandboxState::SandboxReady as i32);
    assert_eq!(status.metadata.unwrap().name, "web");
    // Exactly the labels and annotations the client gave (crust's own stay in its records and
    // the pause's OCI spec).
    let given = d.pod("web");
    assert_eq!(status.labels, given.labels);
    assert_eq!(status.annotations, given.annotations);
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            d.state
                .join("sandboxes")
                .join(&id)
                .join("bundle/config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        spec["annotations"]["io.kubernetes.cri.container-type"],
        "sandbox"
    );
    assert_eq!(spec["annotations"]["io.kubernetes.cri.sandbox-name"], "web");
    // The default handler lets none of the pod's own annotations through (`pod_annotations`).
    assert!(spec["annotations"].get("test/annotation").is_none());
    assert_eq!(
        spec["annotations"]["io.kubernetes.cri.sandbox-id"],
        id.as_str()
    );
    assert_eq!(status.runtime_handler, "runc");
    assert!(
        st.info["info"].contains("\"state\":\"ready\""),
        "{:?}",
        st.info
    );
    // Prefix lookup.
    let st = c
        .pod_sandbox_status(status_req(&id[..12], false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(st.status.unwrap().id, id);

    // The pause runs in the pod's cgroup under the requested parent.
    assert_eq!(d.pause_pids().len(), 1, "one pause process");
    let shm = d.state.join("sandboxes").join(&id).join("shm");
    assert!(std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&shm.display().to_string()));
    let files = d.state.join("sandboxes").join(&id);
    assert_eq!(
        std::fs::read_to_string(files.join("hostname"))
            .unwrap()
            .trim(),
        nix::unistd::gethostname().unwrap().to_string_lossy()
    );

    let list = c
        .list_pod_sandbox(ListPodSandboxRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.items.len(), 1);
    let ready_filter = PodSandboxFilter {
        state: Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxReady as i32,
        }),
        ..Default::default()
    };
    let list = c
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(ready_filter.clone()),
        })
        .await
        .unwrap();
    assert_eq!(list.into_inner().items.len(), 1);

    c.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();
    let st = c
        .pod_sandbox_status(status_req(&id, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.status.unwrap().state,
        PodSandboxState::SandboxNotready as i32
    );
    assert!(d.pause_pids().is_empty(), "pause gone after stop");
    let list = c
        .list_pod_sandbox(ListPodSandboxRequest {
            filter: Some(ready_filter),
        })
        .await
        .unwrap();
    assert!(list.into_inner().items.is_empty());
    // Stop is idempotent.
    common::stop_remove(&mut c, &id).await;
    let err = c
        .pod_sandbox_status(status_req(&id, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    c.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: id.clone(),
    })
    .await
    .unwrap();

    let mut kinds = Vec::new();
    while kinds.len() < 4 {
        let ev = tokio::time::timeout(Duration::from_secs(5), events.next())
            .await
            .expect("event")
            .unwrap()
            .unwrap();
        assert_eq!(ev.container_id, id);
        assert_eq!(ev.pod_sandbox_status.as_ref().unwrap().id, id);
        kinds.push(ev.container_event_type);
    }
    use ContainerEventType::*;
    assert_eq!(
        kinds,
        [
            ContainerCreatedEvent,
            ContainerStartedEvent,
            ContainerStoppedEvent,
            ContainerDeletedEvent
        ]
        .map(|k| k as i32)
    );
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn pause_killed_turns_notready_with_stopped_event_within_a_second() {
    let d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    let id = d.run_pod(&mut c, "f9").await;
    let mut events = c
        .get_container_events(GetEventsRequest {})
        .await
        .unwrap()
        .into_inner();
    let pids = d.pause_pids();
    assert_eq!(pids.len(), 1);
    let killed_at = std::time::Instant::now();
    unsafe { libc::kill(pids[0], libc::SIGKILL) };
    let ev = tokio::time::timeout(Duration::from_secs(1), events.next())
        .await
        .expect("STOPPED within 1s")
        .unwrap()
        .unwrap();
    assert_eq!(
        ev.container_event_type,
        ContainerEventType::ContainerStoppedEvent as i32
    );
    assert_eq!(ev.container_id, id);
    assert!(killed_at.elapsed() < Duration::from_secs(1));
    let st = c
        .pod_sandbox_status(status_req(&id, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        st.status.unwrap().state,
        PodSandboxState::SandboxNotready as i32
    );
    assert!(st.info["info"].contains("pause process exited"));
    common::stop_remove(&mut c, &id).await;
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn same_name_retry_gets_the_existing_sandbox() {
    let d = Daemon::start().await;
    let mut c = d.client().await;
    let a = d.run_pod(&mut c, "retry").await;
    let b = d.run_pod(&mut c, "retry").await;
    assert_eq!(a, b);
    // Same name, different config: AlreadyExists naming the holder.
    let mut other = d.pod("retry");
    other.hostname = "different".into();
    let err = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(other),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert!(err.message().contains(&a), "{}", err.message());
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: a })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn pod_without_own_ipc_gets_no_shm_mount_and_host_pid_works() {
    let d = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let mut c = d.client().await;
    let mut config = d.pod("hostipc");
    let ns = config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options
        .as_mut()
        .unwrap();
    ns.ipc = cri_api::v1::NamespaceMode::Node as i32;
    ns.pid = cri_api::v1::NamespaceMode::Node as i32;
    let id = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .pod_sandbox_id;
    let shm = d.state.join("sandboxes").join(&id).join("shm");
    assert!(!std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&shm.display().to_string()));
    let pid = d.pause_pids()[0];
    // Host PID namespace: the pause is not PID 1 of its own namespace.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    assert_eq!(
        nspid.split_whitespace().count(),
        2,
        "one pid namespace level: {nspid}"
    );
    c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
        .await
        .unwrap();
    d.assert_no_leaks().await;
}
