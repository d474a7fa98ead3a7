//! Containers in pods: records and states ([`record`], [`state`]), CRI -> OCI spec translation
//! ([`spec`], [`user`]), the per-container crust-shim ([`shim`]) and the manager that runs the CRI
//! verbs ([`manager`]), including what StopPodSandbox/RemovePodSandbox need of a pod's containers.

pub mod apparmor;
pub mod caps;
mod create;
pub mod devices;
pub mod exec;
pub mod host_facts;
pub mod manager;
pub mod pressure;
pub mod record;
pub mod recover;
pub mod references;
mod running;
pub mod seccomp;
pub mod shim;
pub mod signal;
pub mod spec;
pub mod state;
pub mod stats;
pub mod status;
pub mod task;
pub mod usage;
pub mod user;
pub mod validate;

pub use manager::{ContainerManager, ContainerOptions};

use crate::{oci_runtime::OciError, store::LookupError};

/// Container failures.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    /// The request is well formed but the host or another object is not in the state it needs.
    #[error("invalid {field}: {reason}")]
    Precondition { field: &'static str, reason: String },
    /// An object the request names (a pid namespace target) does not exist.
    #[error("{what} {id:?} not found")]
    NotFound { what: &'static str, id: String },
    /// The image's own files cannot be used (e.g. /etc/passwd is a FIFO).
    #[error("image file unusable: {0}")]
    ImageFile(#[from] crate::safe_fs::SafeReadError),
    #[error("container {0}")]
    Lookup(#[from] LookupError),
    #[error("pod sandbox {0}")]
    Sandbox(LookupError),
    #[error("pod sandbox {id} is not ready ({state}): no containers can be created in it")]
    SandboxNotReady { id: String, state: String },
    #[error("image {0:?} is not present; pull it first")]
    ImageNotFound(String),
    #[error("container name {name:?} is already reserved by {holder}")]
    NameTaken { name: String, holder: String },
    #[error("container {id} is {state}: {what}")]
    WrongState {
        id: String,
        state: String,
        what: &'static str,
    },
    #[error("runtime handler {0:?} is not configured")]
    UnknownHandler(String),
    #[error(transparent)]
    Runtime(#[from] OciError),
    #[error("crust-shim: {0}")]
    Shim(String),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("container record: {0}")]
    Record(#[from] crate::store::RecordError),
    #[error("container {id} did not exit within {seconds} s of SIGKILL")]
    StopTimeout { id: String, seconds: u64 },
    #[error("internal task failed: {0}")]
    Task(String),
}
