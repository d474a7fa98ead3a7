//! ContainerStatus (verbose: the record as `info`); unknown id -> NotFound.

use std::collections::HashMap;

use cri_api::v1::{ContainerStatus, ContainerStatusRequest, ContainerStatusResponse};
use tonic::{Request, Response, Status};

use super::{container_list::image_spec, CriService};

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
    let status = ContainerStatus {
        id: r.id.clone(),
        metadata: r.config.metadata.clone(),
        state: r.state.to_cri() as i32,
        created_at: r.created_at_ns,
        started_at: r.started_at_ns,
        finished_at: r.finished_at_ns,
        exit_code: r.exit_code,
        image: image_spec(&r),
        image_ref: r.image_id.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: r.config.labels.clone(),
        annotations: r.config.annotations.clone(),
        mounts: r.config.mounts.clone(),
        log_path: r.log_path.clone(),
        resources: None,
        image_id: r.image_id.clone(),
        user: None,
    };
    Ok(Response::new(ContainerStatusResponse {
        status: Some(status),
        info,
    }))
}
