//! The one place where subsystem errors become gRPC statuses.

use tonic::{Code, Status};

use crate::{
    image::store::ImageStoreError,
    network::cni::NetworkError,
    sandbox::{controller::ControllerError, SandboxError},
    store::LookupError,
};

/// gRPC code for a lookup failure. `NotFound` only where the caller wants it (Status calls);
/// Stop/Remove turn unknown ids into success before reaching here.
fn lookup_code(e: &LookupError) -> Code {
    match e {
        LookupError::Empty | LookupError::Ambiguous { .. } => Code::InvalidArgument,
        LookupError::NotFound(_) => Code::NotFound,
    }
}

fn sandbox_code(e: &SandboxError) -> Code {
    match e {
        SandboxError::InvalidArgument { .. } | SandboxError::UnknownHandler(_) => {
            Code::InvalidArgument
        }
        SandboxError::Lookup(l) => lookup_code(l),
        SandboxError::NameTaken { .. } => Code::AlreadyExists,
        SandboxError::Network(n) => network_code(n),
        SandboxError::Step { source, .. } => match sandbox_code(source) {
            Code::InvalidArgument => Code::InvalidArgument,
            _ => Code::Internal,
        },
        SandboxError::Controller(ControllerError::UnknownHandler(_)) => Code::InvalidArgument,
        SandboxError::Controller(_)
        | SandboxError::Io { .. }
        | SandboxError::Record(_)
        | SandboxError::PauseExited
        | SandboxError::Leftover { .. }
        | SandboxError::Task(_)
        | SandboxError::Failpoint(_) => Code::Internal,
    }
}

fn network_code(e: &NetworkError) -> Code {
    match e {
        NetworkError::NoConfig(_) => Code::FailedPrecondition,
        NetworkError::UnknownNetwork(_) | NetworkError::BadAnnotation { .. } => {
            Code::InvalidArgument
        }
        NetworkError::Cni(_) | NetworkError::Cache(_) | NetworkError::Attach { .. } => {
            Code::Internal
        }
    }
}

impl From<SandboxError> for Status {
    fn from(e: SandboxError) -> Status {
        Status::new(sandbox_code(&e), e.to_string())
    }
}

impl From<ImageStoreError> for Status {
    fn from(e: ImageStoreError) -> Status {
        Status::new(Code::Internal, format!("image store: {e}"))
    }
}

impl From<LookupError> for Status {
    fn from(e: LookupError) -> Status {
        Status::new(lookup_code(&e), format!("pod sandbox {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::RunStep;

    #[test]
    fn codes() {
        let s: Status = SandboxError::Network(NetworkError::NoConfig("/x".into())).into();
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert!(s.message().contains("no CNI network config"));
        let s: Status = SandboxError::Network(NetworkError::UnknownNetwork("n".into())).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        let s: Status = SandboxError::Lookup(LookupError::Empty).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        let s: Status = LookupError::NotFound("x".into()).into();
        assert_eq!(s.code(), Code::NotFound);
        let s: Status = SandboxError::Step {
            step: RunStep::Start,
            source: Box::new(SandboxError::PauseExited),
        }
        .into();
        assert_eq!(s.code(), Code::Internal);
        assert!(s
            .message()
            .starts_with("failed to start the sandbox container"));
    }
}
