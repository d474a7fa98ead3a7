//! PodSandboxStatus (NotFound for unknown ids; `verbose` adds the internal record as `info`).

use std::collections::HashMap;

use cri_api::v1::{PodSandboxStatusRequest, PodSandboxStatusResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::sandbox::status;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<PodSandboxStatusRequest>,
) -> Result<Response<PodSandboxStatusResponse>, Status> {
    let req = req.into_inner();
    let sandbox = svc.sandboxes.store().lookup(&req.pod_sandbox_id)?;
    let record = sandbox.snapshot();
    let info = if req.verbose {
        status::verbose_info(&record, sandbox.load_error())
    } else {
        HashMap::new()
    };
    Ok(Response::new(PodSandboxStatusResponse {
        status: Some(status::pod_status(&record)),
        info,
        containers_statuses: Vec::new(),
        timestamp: crate::events::now_ns(),
    }))
}
