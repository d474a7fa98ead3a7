//! StopContainer: stop signal, SIGKILL at the deadline (0: at once); idempotent.

use cri_api::v1::{StopContainerRequest, StopContainerResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<StopContainerRequest>,
) -> Result<Response<StopContainerResponse>, Status> {
    let req = req.into_inner();
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument(
            "invalid container_id: is required",
        ));
    }
    svc.containers
        .stop(&req.container_id, req.timeout.max(0))
        .await?;
    Ok(Response::new(StopContainerResponse {}))
}
