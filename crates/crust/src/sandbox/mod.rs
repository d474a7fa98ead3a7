//! Pod sandboxes: identity and validation ([`validate`]), the state machine ([`state`]), records and
//! the store ([`record`], [`store`]), files and shm ([`files`]), the pause spec ([`spec`]), the
//! controller seam ([`controller`]), pinned-namespace sandboxes ([`pinned`]), the lifecycle
//! procedures ([`manager`]), CRI status ([`status`]) and restart recovery ([`recover`]).

pub mod checkpoint;
pub mod controller;
pub mod files;
pub mod manager;
pub mod order;
pub mod pinned;
pub mod record;
pub mod recover;
pub mod resources;
mod run_pod;
pub mod spec;
pub mod state;
pub mod status;
pub mod store;
pub mod timing;
pub mod validate;

pub use manager::{ManagerOptions, PodContainers, SandboxManager};
pub use record::{NetworkMode, Sandbox, SandboxRecord};
pub use state::SandboxState;

use crate::network::cni::NetworkError;
use crate::store::{LookupError, RecordError};
use controller::ControllerError;

/// The step of RunPodSandbox that failed (named in the error returned to the client).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStep {
    Persist,
    Files,
    Shm,
    Netns,
    Network,
    Create,
    Start,
    Finish,
}

impl RunStep {
    /// A short name for logs and step timings.
    pub fn key(self) -> &'static str {
        match self {
            RunStep::Persist => "persist",
            RunStep::Files => "files",
            RunStep::Shm => "shm",
            RunStep::Netns => "netns",
            RunStep::Network => "network",
            RunStep::Create => "create",
            RunStep::Start => "start",
            RunStep::Finish => "finish",
        }
    }
}

impl std::fmt::Display for RunStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            RunStep::Persist => "persist the sandbox record",
            RunStep::Files => "write the sandbox files",
            RunStep::Shm => "mount the sandbox shm",
            RunStep::Netns => "create the network namespace",
            RunStep::Network => "set up the pod network",
            RunStep::Create => "create the sandbox container",
            RunStep::Start => "start the sandbox container",
            RunStep::Finish => "mark the sandbox ready",
        };
        f.write_str(s)
    }
}

/// Errors of the sandbox subsystem; mapped to gRPC codes in `crate::error`.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("invalid {field}: {reason}")]
    InvalidArgument { field: &'static str, reason: String },
    #[error("unknown runtime handler {0:?}")]
    UnknownHandler(String),
    #[error("pod sandbox {0}")]
    Lookup(#[from] LookupError),
    #[error("pod sandbox name {name:?} is already reserved by sandbox {holder}")]
    NameTaken { name: String, holder: String },
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("failed to {step}: {source}")]
    Step {
        step: RunStep,
        #[source]
        source: Box<SandboxError>,
    },
    #[error("{0}")]
    Controller(#[from] ControllerError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("sandbox record: {0}")]
    Record(#[from] RecordError),
    #[error("pause process exited during RunPodSandbox")]
    PauseExited,
    #[error("sandbox {id} was not fully cleaned up; it stays NOTREADY for Stop/Remove: {reasons}")]
    Leftover { id: String, reasons: String },
    #[error("internal task failed: {0}")]
    Task(String),
    #[error("sandbox image: {0}")]
    Image(std::sync::Arc<crate::image::pull::PullError>),
    #[error("the pod's containers: {0}")]
    Containers(#[from] Box<crate::container::ContainerError>),
    #[error("test failpoint {0} fired")]
    Failpoint(&'static str),
}

impl SandboxError {
    fn at(self, step: RunStep) -> SandboxError {
        SandboxError::Step {
            step,
            source: Box::new(self),
        }
    }
}
