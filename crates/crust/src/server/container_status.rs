//! ContainerStatus (verbose: the record as `info`); unknown id -> NotFound.

use std::collections::HashMap;

use cri_api::v1::{ContainerStatusRequest, ContainerStatusResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::container::status::to_cri;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ContainerStatusRequest>,
) -> Result<Response<ContainerStatusResponse>, Status> {
    let req = req.into_inner();
    let r = svc.containers.lookup(&req.container_id)?.snapshot();
    let info = if req.verbose {
        let value = serde_json::json!({
            "sandboxID": r.sandbox_id, "name": r.name, "runtimeHandler": r.runtime_handler,
            "shim": r.shim.as_ref().map(|s| s.pid), "bundle": svc.config.root.join("containers").join(&r.id),
            "attachSocket": svc.config.root.join("containers").join(&r.id).join("attach.sock"),
        });
        HashMap::from([("info".to_string(), value.to_string())])
    } else {
        HashMap::new()
    };
    let status = to_cri(&r);
    Ok(Response::new(ContainerStatusResponse {
        status: Some(status),
        info,
    }))
}
