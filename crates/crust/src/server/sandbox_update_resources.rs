//! UpdatePodSandboxResources: the pod's new overhead and resources, kept and handed to the
//! sandbox controller (see `sandbox::resources`).

use cri_api::v1::{UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<UpdatePodSandboxResourcesRequest>,
) -> Result<Response<UpdatePodSandboxResourcesResponse>, Status> {
    let req = req.into_inner();
    svc.sandboxes
        .update_resources(&req.pod_sandbox_id, req.overhead, req.resources)
        .await?;
    Ok(Response::new(UpdatePodSandboxResourcesResponse {}))
}
