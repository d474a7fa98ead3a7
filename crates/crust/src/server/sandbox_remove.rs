//! RemovePodSandbox (idempotent; unknown ids are OK).

use cri_api::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<RemovePodSandboxRequest>,
) -> Result<Response<RemovePodSandboxResponse>, Status> {
    svc.sandboxes.remove(&req.get_ref().pod_sandbox_id).await?;
    Ok(Response::new(RemovePodSandboxResponse {}))
}
