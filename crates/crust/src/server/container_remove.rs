//! RemoveContainer: forces a running container down; idempotent.

use cri_api::v1::{RemoveContainerRequest, RemoveContainerResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<RemoveContainerRequest>,
) -> Result<Response<RemoveContainerResponse>, Status> {
    let id = req.into_inner().container_id;
    if id.is_empty() {
        return Err(Status::invalid_argument(
            "invalid container_id: is required",
        ));
    }
    svc.containers.remove(&id).await?;
    Ok(Response::new(RemoveContainerResponse {}))
}
