//! The one place where subsystem errors become gRPC statuses.

use tonic::{Code, Status};

use crate::{
    container::ContainerError,
    image::{
        content::ContentError, import::ImportError, manifest::ManifestError, pull::PullError,
        registry::RegistryError, store::ImageStoreError,
    },
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
        SandboxError::Image(e) => pull_code(e),
        SandboxError::Containers(e) => container_code(e),
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

fn container_code(e: &ContainerError) -> Code {
    match e {
        ContainerError::InvalidArgument { .. } | ContainerError::UnknownHandler(_) => {
            Code::InvalidArgument
        }
        ContainerError::Lookup(l) | ContainerError::Sandbox(l) => lookup_code(l),
        ContainerError::SandboxNotReady { .. }
        | ContainerError::WrongState { .. }
        | ContainerError::Precondition { .. }
        | ContainerError::ImageFile(_) => Code::FailedPrecondition,
        ContainerError::ImageNotFound(_) | ContainerError::NotFound { .. } => Code::NotFound,
        ContainerError::NameTaken { .. } => Code::AlreadyExists,
        ContainerError::Runtime(_)
        | ContainerError::Shim(_)
        | ContainerError::Io { .. }
        | ContainerError::Record(_)
        | ContainerError::StopTimeout { .. }
        | ContainerError::Task(_) => Code::Internal,
    }
}

impl From<ContainerError> for Status {
    fn from(e: ContainerError) -> Status {
        Status::new(container_code(&e), e.to_string())
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

fn registry_code(e: &RegistryError) -> Code {
    match e {
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::Unauthorized(_) | RegistryError::Token { .. } => Code::Unauthenticated,
        RegistryError::Credentials(_) => Code::InvalidArgument,
        RegistryError::Digest { .. } | RegistryError::TooLarge { .. } => Code::DataLoss,
        RegistryError::Content(c) => content_code(c),
        RegistryError::CaFile { .. } => Code::FailedPrecondition,
        RegistryError::Http { .. } | RegistryError::Status { .. } => Code::Unavailable,
    }
}

fn content_code(e: &ContentError) -> Code {
    match e {
        ContentError::DigestMismatch { .. } | ContentError::SizeMismatch { .. } => Code::DataLoss,
        ContentError::InvalidDigest { .. } | ContentError::Unsupported(_) => {
            Code::FailedPrecondition
        }
        ContentError::Io { .. } => Code::Internal,
    }
}

/// A pull that failed on every endpoint reports the last one's failure (the origin, or the
/// plain-http attempt of an insecure host); the message lists them all.
fn pull_code(e: &PullError) -> Code {
    match e {
        PullError::Reference(_) => Code::InvalidArgument,
        PullError::Endpoints { attempts, .. } => attempts
            .last()
            .map_or(Code::Unavailable, |(_, e)| registry_code(e)),
        PullError::Registry { source, .. } => registry_code(source),
        PullError::Manifest {
            source: ManifestError::NoPlatform { .. },
            ..
        } => Code::NotFound,
        PullError::Manifest { .. } | PullError::LayerType { .. } | PullError::Unpack { .. } => {
            Code::FailedPrecondition
        }
        PullError::DiffId { .. } => Code::DataLoss,
        PullError::Content(c) => content_code(c),
        PullError::Vanished { .. } => Code::Aborted,
        PullError::Store(_) | PullError::Task(_) => Code::Internal,
    }
}

/// The status of a failed import.
pub fn import_status(e: &ImportError) -> Status {
    let code = match e {
        ImportError::Layout(_) | ImportError::Entry(_) => Code::InvalidArgument,
        ImportError::Io(_) => Code::Internal,
        ImportError::Pull(p) => pull_code(p),
    };
    Status::new(code, format!("import: {e}"))
}

/// The status of a failed pull (shared between merged pulls, hence by reference).
pub fn pull_status(e: &PullError) -> Status {
    Status::new(pull_code(e), e.to_string())
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
