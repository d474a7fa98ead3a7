//! Attach: validates the request against a running container, keeps it under a single-use
//! token and answers with the streaming server's URL; the session goes through the attach
//! socket of crust-shim (or of task-io, for a shim-v2 container). The terminal setting is the
//! container's own.

use cri_api::v1::{AttachRequest, AttachResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::streaming::{Io, StreamRequest};

/// The streams asked for: at least one, and no stderr beside a terminal (as kubelet checks).
pub(super) fn stream_io(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<Io, Status> {
    if !stdin && !stdout && !stderr {
        return Err(Status::invalid_argument(
            "one of stdin, stdout and stderr must be set",
        ));
    }
    if tty && stderr {
        return Err(Status::invalid_argument(
            "tty and stderr cannot both be set: a terminal has one output",
        ));
    }
    Ok(Io {
        stdin,
        stdout,
        stderr,
        tty,
    })
}

pub(super) async fn handle(
    svc: &CriService,
    req: Request<AttachRequest>,
) -> Result<Response<AttachResponse>, Status> {
    let req = req.into_inner();
    let (target, config) = svc.containers.attach_target(&req.container_id)?;
    if req.stdin && !config.stdin {
        return Err(Status::failed_precondition(format!(
            "container {} was not created with stdin, so it has none to attach to",
            req.container_id
        )));
    }
    let stderr = req.stderr && !config.tty;
    let io = stream_io(req.stdin, req.stdout, stderr, config.tty)?;
    let url = svc
        .streaming
        .issue("attach", StreamRequest::Attach { target, io })
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(AttachResponse { url }))
}
