//! ExecSync: a command in a running container, with timeout and capped output.

use cri_api::v1::{ExecSyncRequest, ExecSyncResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ExecSyncRequest>,
) -> Result<Response<ExecSyncResponse>, Status> {
    let req = req.into_inner();
    if req.container_id.is_empty() {
        return Err(Status::invalid_argument(
            "invalid container_id: is required",
        ));
    }
    let out = svc
        .containers
        .exec_sync(&req.container_id, &req.cmd, req.timeout)
        .await?;
    if out.timed_out {
        return Err(Status::deadline_exceeded(format!(
            "command {:?} timed out after {} s",
            req.cmd, req.timeout
        )));
    }
    Ok(Response::new(ExecSyncResponse {
        stdout: out.stdout,
        stderr: out.stderr,
        exit_code: out.exit_code,
    }))
}
