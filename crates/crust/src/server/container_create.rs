//! CreateContainer: in a READY pod, from a pulled image.

use cri_api::v1::{CreateContainerRequest, CreateContainerResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<CreateContainerRequest>,
) -> Result<Response<CreateContainerResponse>, Status> {
    let req = req.into_inner();
    if req.pod_sandbox_id.is_empty() {
        return Err(Status::invalid_argument(
            "invalid pod_sandbox_id: is required",
        ));
    }
    let config = req
        .config
        .ok_or_else(|| Status::invalid_argument("invalid config: is required"))?;
    let id = svc.containers.create(&req.pod_sandbox_id, config).await?;
    Ok(Response::new(CreateContainerResponse { container_id: id }))
}
