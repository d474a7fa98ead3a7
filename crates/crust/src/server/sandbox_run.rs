//! RunPodSandbox.

use cri_api::v1::{RunPodSandboxRequest, RunPodSandboxResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<RunPodSandboxRequest>,
) -> Result<Response<RunPodSandboxResponse>, Status> {
    let req = req.into_inner();
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("invalid config: is required"))?;
    let pod_sandbox_id = svc.sandboxes.run(config, req.runtime_handler).await?;
    Ok(Response::new(RunPodSandboxResponse { pod_sandbox_id }))
}
