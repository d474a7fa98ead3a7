//! StartContainer: a created container starts running.

use cri_api::v1::{StartContainerRequest, StartContainerResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<StartContainerRequest>,
) -> Result<Response<StartContainerResponse>, Status> {
    svc.containers.start(&req.into_inner().container_id).await?;
    Ok(Response::new(StartContainerResponse {}))
}
