//! ContainerStats and ListContainerStats (filters: id, pod, labels), from cgroups and the
//! writable layer; the CRI conversions of usage samples live here too.

use cri_api::v1::{
    ContainerAttributes, ContainerFilter, ContainerStats, ContainerStatsFilter,
    ContainerStatsRequest, ContainerStatsResponse, CpuUsage, FilesystemIdentifier, FilesystemUsage,
    IoUsage, ListContainerStatsRequest, ListContainerStatsResponse, MemoryUsage, PsiData, PsiStats,
    StreamContainerStatsRequest, StreamContainerStatsResponse, SwapUsage, UInt64Value,
};
use tonic::{Request, Response, Status};

use super::{batch, CriService};
use crate::container::{pressure, record::ContainerRecord, usage::Usage};

fn value(v: Option<u64>) -> Option<UInt64Value> {
    v.map(|value| UInt64Value { value })
}

fn psi_data(d: &pressure::PsiData) -> PsiData {
    PsiData {
        total: d.total,
        avg10: d.avg10,
        avg60: d.avg60,
        avg300: d.avg300,
    }
}

/// CRI PSI of one resource; absent (not zero) where the kernel gives none (cgroup v1).
fn psi(p: Option<pressure::Psi>) -> Option<PsiStats> {
    p.map(|p| PsiStats {
        full: p.full.as_ref().map(psi_data),
        some: p.some.as_ref().map(psi_data),
    })
}

/// IO usage (its PSI), v2 only.
pub fn io(u: &Usage) -> Option<IoUsage> {
    let io = u.cgroup.pressure.and_then(|p| p.io)?;
    Some(IoUsage {
        timestamp: u.timestamp_ns,
        psi: psi(Some(io)),
    })
}

/// Swap usage, where swap is accounted.
pub fn swap(u: &Usage) -> Option<SwapUsage> {
    let used = u.cgroup.swap?;
    Some(SwapUsage {
        timestamp: u.timestamp_ns,
        swap_available_bytes: u.cgroup.swap_limit.map(|l| UInt64Value {
            value: l.saturating_sub(used),
        }),
        swap_usage_bytes: value(Some(used)),
    })
}

/// CPU of a sample.
pub fn cpu(u: &Usage) -> Option<CpuUsage> {
    Some(CpuUsage {
        timestamp: u.timestamp_ns,
        usage_core_nano_seconds: value(u.cgroup.cpu_ns),
        usage_nano_cores: value(u.nano_cores),
        psi: psi(u.cgroup.pressure.and_then(|p| p.cpu)),
    })
}

/// Memory of a sample.
pub fn memory(u: &Usage) -> Option<MemoryUsage> {
    Some(MemoryUsage {
        timestamp: u.timestamp_ns,
        working_set_bytes: value(u.cgroup.working_set),
        available_bytes: None,
        usage_bytes: value(u.cgroup.memory_usage),
        rss_bytes: value(u.cgroup.rss),
        page_faults: value(u.cgroup.page_faults),
        major_page_faults: value(u.cgroup.major_page_faults),
        psi: psi(u.cgroup.pressure.and_then(|p| p.memory)),
    })
}

/// The CRI stats of one container.
pub fn container_stats(svc: &CriService, r: &ContainerRecord) -> ContainerStats {
    let u = svc.containers.container_usage(r);
    ContainerStats {
        attributes: Some(ContainerAttributes {
            id: r.id.clone(),
            metadata: r.config.metadata.clone(),
            labels: r.config.labels.clone(),
            annotations: r.config.annotations.clone(),
        }),
        cpu: cpu(&u),
        memory: memory(&u),
        writable_layer: u.writable.map(|(bytes, inodes)| FilesystemUsage {
            timestamp: u.timestamp_ns,
            fs_id: Some(FilesystemIdentifier {
                mountpoint: svc.config.root.join("containers").display().to_string(),
            }),
            used_bytes: Some(UInt64Value { value: bytes }),
            inodes_used: Some(UInt64Value { value: inodes }),
        }),
        swap: swap(&u),
        io: io(&u),
    }
}

pub(super) async fn one(
    svc: &CriService,
    req: Request<ContainerStatsRequest>,
) -> Result<Response<ContainerStatsResponse>, Status> {
    let record = svc
        .containers
        .lookup(&req.into_inner().container_id)?
        .snapshot();
    let stats = blocking(svc, move |svc| container_stats(svc, &record)).await?;
    Ok(Response::new(ContainerStatsResponse { stats: Some(stats) }))
}

pub(super) async fn list(
    svc: &CriService,
    req: Request<ListContainerStatsRequest>,
) -> Result<Response<ListContainerStatsResponse>, Status> {
    let stats = items(svc, req.into_inner().filter.unwrap_or_default()).await?;
    Ok(Response::new(ListContainerStatsResponse { stats }))
}

/// StreamContainerStats: the same stats, in batches.
pub(super) async fn stream(
    svc: &CriService,
    req: Request<StreamContainerStatsRequest>,
) -> Result<Response<batch::BatchStream<StreamContainerStatsResponse>>, Status> {
    let stats = items(svc, req.into_inner().filter.unwrap_or_default()).await?;
    Ok(Response::new(batch::stream(stats, |container_stats| {
        StreamContainerStatsResponse { container_stats }
    })))
}

async fn items(
    svc: &CriService,
    filter: ContainerStatsFilter,
) -> Result<Vec<ContainerStats>, Status> {
    // The same matching as ListContainers, without a state.
    let records = svc.containers.list(Some(&ContainerFilter {
        id: filter.id,
        state: None,
        pod_sandbox_id: filter.pod_sandbox_id,
        label_selector: filter.label_selector,
    }));
    blocking(svc, move |svc| {
        records.iter().map(|r| container_stats(svc, r)).collect()
    })
    .await
}

/// Runs the (file-reading) stats work on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    svc: &CriService,
    f: impl FnOnce(&CriService) -> T + Send + 'static,
) -> Result<T, Status> {
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || f(&svc))
        .await
        .map_err(|e| Status::internal(format!("stats task: {e}")))
}
