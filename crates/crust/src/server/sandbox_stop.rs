//! StopPodSandbox (idempotent; unknown ids are OK).

use cri_api::v1::{StopPodSandboxRequest, StopPodSandboxResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<StopPodSandboxRequest>,
) -> Result<Response<StopPodSandboxResponse>, Status> {
    svc.sandboxes.stop(&req.get_ref().pod_sandbox_id).await?;
    Ok(Response::new(StopPodSandboxResponse {}))
}
