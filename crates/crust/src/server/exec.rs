//! Exec: validates the request against a running container, keeps it under a single-use token
//! and answers with the streaming server's URL (the streams run there, never here).

use cri_api::v1::{ExecRequest, ExecResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::streaming::StreamRequest;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ExecRequest>,
) -> Result<Response<ExecResponse>, Status> {
    let req = req.into_inner();
    crate::container::validate::check_argv(&req.cmd)?;
    let io = super::attach::stream_io(req.stdin, req.stdout, req.stderr, req.tty)?;
    let target = svc.containers.exec_target(&req.container_id)?;
    let request = StreamRequest::Exec {
        target,
        cmd: req.cmd,
        io,
    };
    let url = svc
        .streaming
        .issue("exec", request)
        .map_err(|e| Status::internal(e.to_string()))?;
    Ok(Response::new(ExecResponse { url }))
}

#[cfg(test)]
mod tests {
    use super::super::attach::stream_io;

    #[test]
    fn stream_choices() {
        assert!(
            stream_io(false, false, false, false).is_err(),
            "no stream at all"
        );
        assert!(
            stream_io(false, true, true, true).is_err(),
            "a tty has no stderr"
        );
        let io = stream_io(true, true, false, true).unwrap();
        assert!(io.tty && io.stdin && !io.stderr);
        let _ = crate::streaming::Io { ..io };
    }
}
