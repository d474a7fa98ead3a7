//! RuntimeConfig (cgroup driver) and UpdateRuntimeConfig (pod CIDR, kept for CNI).

use cri_api::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeConfigRequest, RuntimeConfigResponse,
    UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse,
};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn get(
    _req: Request<RuntimeConfigRequest>,
) -> Result<Response<RuntimeConfigResponse>, Status> {
    Ok(Response::new(RuntimeConfigResponse {
        linux: Some(LinuxRuntimeConfiguration {
            cgroup_driver: CgroupDriver::Cgroupfs as i32,
        }),
    }))
}

pub(super) async fn update(
    svc: &CriService,
    req: Request<UpdateRuntimeConfigRequest>,
) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
    let cidr = req
        .into_inner()
        .runtime_config
        .and_then(|c| c.network_config)
        .map(|n| n.pod_cidr)
        .unwrap_or_default();
    if !cidr.is_empty() {
        tracing::info!(pod_cidr = %cidr, "pod CIDR updated");
        svc.sandboxes.network().set_pod_cidr(cidr);
    }
    Ok(Response::new(UpdateRuntimeConfigResponse {}))
}
