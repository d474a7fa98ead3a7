//! PodSandboxStats and ListPodSandboxStats: the pause's (if any) and the containers' cgroups summed, the
//! process count, the pod network's counters (from its netns), and each container's stats.

use cri_api::v1::{
    LinuxPodSandboxStats, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse,
    NetworkInterfaceUsage, NetworkUsage, PodSandboxAttributes, PodSandboxFilter, PodSandboxStats,
    PodSandboxStatsFilter, PodSandboxStatsRequest, PodSandboxStatsResponse, ProcessUsage,
    StreamPodSandboxStatsRequest, StreamPodSandboxStatsResponse, UInt64Value,
};
use tonic::{Request, Response, Status};

use super::{
    container_stats::{blocking, container_stats, cpu, io, memory},
    CriService,
};
use crate::{
    container::stats::network_usage,
    sandbox::{status, NetworkMode, SandboxRecord},
};

fn interface(i: &crate::container::stats::InterfaceUsage) -> NetworkInterfaceUsage {
    let v = |value| Some(UInt64Value { value });
    NetworkInterfaceUsage {
        name: i.name.clone(),
        rx_bytes: v(i.rx_bytes),
        rx_errors: v(i.rx_errors),
        tx_bytes: v(i.tx_bytes),
        tx_errors: v(i.tx_errors),
    }
}

fn pod_stats(svc: &CriService, pod: &SandboxRecord) -> PodSandboxStats {
    let u = svc.containers.pod_usage(pod);
    let network = match (&pod.netns, pod.network_mode) {
        (Some(netns), NetworkMode::Cni) if pod.state.is_ready() => {
            let interfaces: Vec<NetworkInterfaceUsage> =
                network_usage(netns).iter().map(interface).collect();
            Some(NetworkUsage {
                timestamp: u.timestamp_ns,
                default_interface: interfaces.iter().find(|i| i.name == "eth0").cloned(),
                interfaces,
            })
        }
        _ => None,
    };
    let containers = svc
        .containers
        .of_pod(&pod.id)
        .iter()
        .map(|c| container_stats(svc, &c.snapshot()))
        .collect();
    PodSandboxStats {
        attributes: Some(PodSandboxAttributes {
            id: pod.id.clone(),
            metadata: pod.config.metadata.clone(),
            labels: pod.config.labels.clone(),
            annotations: pod.config.annotations.clone(),
        }),
        linux: Some(LinuxPodSandboxStats {
            cpu: cpu(&u),
            memory: memory(&u),
            network,
            process: Some(ProcessUsage {
                timestamp: u.timestamp_ns,
                process_count: u.cgroup.processes.map(|value| UInt64Value { value }),
            }),
            containers,
            io: io(&u),
        }),
        windows: None,
    }
}

pub(super) async fn one(
    svc: &CriService,
    req: Request<PodSandboxStatsRequest>,
) -> Result<Response<PodSandboxStatsResponse>, Status> {
    let pod = svc
        .sandboxes
        .store()
        .lookup(&req.into_inner().pod_sandbox_id)?
        .snapshot();
    let stats = blocking(svc, move |svc| pod_stats(svc, &pod)).await?;
    Ok(Response::new(PodSandboxStatsResponse {
        stats: Some(stats),
    }))
}

pub(super) async fn list(
    svc: &CriService,
    req: Request<ListPodSandboxStatsRequest>,
) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
    let stats = items(svc, req.into_inner().filter.unwrap_or_default()).await?;
    Ok(Response::new(ListPodSandboxStatsResponse { stats }))
}

/// StreamPodSandboxStats: the same stats, in batches.
pub(super) async fn stream(
    svc: &CriService,
    req: Request<StreamPodSandboxStatsRequest>,
) -> Result<Response<super::batch::BatchStream<StreamPodSandboxStatsResponse>>, Status> {
    let stats = items(svc, req.into_inner().filter.unwrap_or_default()).await?;
    Ok(Response::new(super::batch::stream(
        stats,
        |pod_sandbox_stats| StreamPodSandboxStatsResponse { pod_sandbox_stats },
    )))
}

async fn items(
    svc: &CriService,
    filter: PodSandboxStatsFilter,
) -> Result<Vec<PodSandboxStats>, Status> {
    // The same matching as ListPodSandbox, without a state.
    let filter = PodSandboxFilter {
        id: filter.id,
        state: None,
        label_selector: filter.label_selector,
    };
    let pods: Vec<SandboxRecord> = svc
        .sandboxes
        .store()
        .all()
        .iter()
        .map(|s| s.snapshot())
        .filter(|p| super::sandbox_list::matches(&filter, &status::pod(p)))
        .collect();
    blocking(svc, move |svc| {
        pods.iter().map(|p| pod_stats(svc, p)).collect()
    })
    .await
}
