//! UpdateContainerResources (Linux resources of a created or running container).

use cri_api::v1::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<UpdateContainerResourcesRequest>,
) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
    let req = req.into_inner();
    let linux = req
        .linux
        .ok_or_else(|| Status::invalid_argument("invalid linux: resources are required"))?;
    svc.containers
        .update_resources(&req.container_id, linux)
        .await?;
    Ok(Response::new(UpdateContainerResourcesResponse {}))
}
