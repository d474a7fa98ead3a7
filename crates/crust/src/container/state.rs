//! Container states and the transitions they allow.
//!
//! ```text
//!   CreateContainer          StartContainer          process exits / StopContainer
//!  ----------------> CREATED ---------------> RUNNING ------------------------------> EXITED
//!                       |                                                               |
//!                       +------------------ RemoveContainer (any state) ----------------+--> gone
//!  UNKNOWN: the record could not be read; only RemoveContainer applies.
//! ```

use cri_api::v1::ContainerState as CriState;
use serde::{Deserialize, Serialize};

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl ContainerState {
    /// StartContainer applies only to a created container.
    pub fn can_start(self) -> bool {
        self == ContainerState::Created
    }

    /// There may be a process to signal.
    pub fn may_run(self) -> bool {
        matches!(self, ContainerState::Created | ContainerState::Running)
    }

    /// The CRI enum.
    pub fn to_cri(self) -> CriState {
        match self {
            ContainerState::Created => CriState::ContainerCreated,
            ContainerState::Running => CriState::ContainerRunning,
            ContainerState::Exited => CriState::ContainerExited,
            ContainerState::Unknown => CriState::ContainerUnknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards() {
        assert!(ContainerState::Created.can_start());
        assert!(!ContainerState::Running.can_start());
        assert!(!ContainerState::Exited.can_start());
        assert!(ContainerState::Running.may_run() && !ContainerState::Exited.may_run());
        assert_eq!(ContainerState::Exited.to_cri(), CriState::ContainerExited);
    }
}
