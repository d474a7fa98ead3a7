//! PortForward: the pod must exist and be READY; the request is kept under a single-use token
//! and the streaming server's URL returned. Connections are made inside the pod's pinned netns
//! (or on the host's loopback for a host-network pod).

use cri_api::v1::{PortForwardRequest, PortForwardResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::{sandbox::NetworkMode, streaming::StreamRequest};

pub(super) async fn handle(
    svc: &CriService,
    req: Request<PortForwardRequest>,
) -> Result<Response<PortForwardResponse>, Status> {
    let req = req.into_inner();
    if let Some(bad) = req.port.iter().find(|p| !(1..=65535).contains(*p)) {
        return Err(Status::invalid_argument(format!(
            "invalid port: {bad} is not 1..65535"
        )));
    }
    let pod = svc
        .sandboxes
        .store()
        .lookup(&req.pod_sandbox_id)?
        .snapshot();
    if !pod.state.is_ready() {
        return Err(Status::failed_precondition(format!(
            "pod sandbox {} is not ready: nothing to forward to",
            pod.id
        )));
    }
    let netns = match pod.network_mode {
        NetworkMode::Cni => pod.netns.clone(),
        NetworkMode::Host => None,
    };
    let request = StreamRequest::PortForward { netns, pod: pod.id };
    let url = svc
        .streaming
        .issue("portforward", request)
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(PortForwardResponse { url }))
}
