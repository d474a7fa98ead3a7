//! The one place where subsystem errors become gRPC statuses.

use tonic::{Code, Status};

use crate::{
    container::ContainerError,
    image::{
        content::ContentError, import::ImportError, manifest::ManifestError, pull::PullError,
        registry::RegistryError, store::ImageStoreError, unpack::UnpackError,
    },
    network::cni::NetworkError,
    sandbox::{controller::ControllerError, SandboxError},
    store::LookupError,
};

/// True when `e` (or an error it wraps) is a full disk or an exceeded quota: ENOSPC/EDQUOT from
/// crustd's own file work, or the same strerror text in what a helper process (runc, a CNI
/// plugin, crust-shim) reported.
pub fn out_of_space(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(err) = next {
        let errno = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error);
        if matches!(errno, Some(libc::ENOSPC | libc::EDQUOT)) {
            return true;
        }
        next = err.source();
    }
    let text = e.to_string().to_ascii_lowercase();
    text.contains("no space left on device") || text.contains("disk quota exceeded")
}

/// `code`, unless the failure is a full disk: then ResourceExhausted (the message names the
/// path that could not be written).
fn or_exhausted(code: Code, e: &(dyn std::error::Error + 'static)) -> Code {
    if out_of_space(e) {
        Code::ResourceExhausted
    } else {
        code
    }
}

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
        Status::new(or_exhausted(container_code(&e), &e), e.to_string())
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
        Status::new(or_exhausted(sandbox_code(&e), &e), e.to_string())
    }
}

impl From<ImageStoreError> for Status {
    fn from(e: ImageStoreError) -> Status {
        Status::new(
            or_exhausted(Code::Internal, &e),
            format!("image store: {e}"),
        )
    }
}

fn registry_code(e: &RegistryError) -> Code {
    match e {
        RegistryError::NotFound { .. } => Code::NotFound,
        RegistryError::Unauthorized(_) | RegistryError::Token { .. } => Code::Unauthenticated,
        RegistryError::Credentials(_) => Code::InvalidArgument,
        RegistryError::Digest { .. } => Code::DataLoss,
        RegistryError::TooLarge { .. } => Code::ResourceExhausted,
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
        PullError::Unpack {
            source: UnpackError::TooLarge { .. },
            ..
        }
        | PullError::ConfigTooLarge { .. } => Code::ResourceExhausted,
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
    Status::new(or_exhausted(code, e), format!("import: {e}"))
}

/// The status of a failed pull (shared between merged pulls, hence by reference).
pub fn pull_status(e: &PullError) -> Status {
    Status::new(or_exhausted(pull_code(e), e), e.to_string())
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

    #[test]
    fn a_full_disk_is_resource_exhausted_wherever_it_is_wrapped() {
        let full = || SandboxError::Io {
            what: "write",
            path: "/root/x".into(),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let s: Status = full().into();
        assert_eq!(s.code(), Code::ResourceExhausted);
        let s: Status = SandboxError::Step {
            step: RunStep::Start,
            source: Box::new(full()),
        }
        .into();
        assert_eq!(
            s.code(),
            Code::ResourceExhausted,
            "through the step wrapper"
        );
        let s: Status = ContainerError::Shim("write log: No space left on device".into()).into();
        assert_eq!(
            s.code(),
            Code::ResourceExhausted,
            "a helper's strerror text"
        );
        let other = SandboxError::Io {
            what: "write",
            path: "/root/x".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(Status::from(other).code(), Code::Internal);
    }
}
