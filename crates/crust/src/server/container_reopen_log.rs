//! ReopenContainerLog: after kubelet rotated the log file away.

use cri_api::v1::{ReopenContainerLogRequest, ReopenContainerLogResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ReopenContainerLogRequest>,
) -> Result<Response<ReopenContainerLogResponse>, Status> {
    svc.containers
        .reopen_log(&req.into_inner().container_id)
        .await?;
    Ok(Response::new(ReopenContainerLogResponse {}))
}
