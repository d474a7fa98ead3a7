//! The pod sandbox state machine.
//!
//! ```text
//!            RunPodSandbox            setup complete
//!   (none) ───────────────▶ Creating ───────────────▶ Ready
//!                              │                        │ StopPodSandbox, or the pause exited
//!                              │ setup failed           ▼
//!                              └──────────────────▶ NotReady ──RemovePodSandbox──▶ (gone)
//!   record that cannot be read ──▶ Unknown ──────────RemovePodSandbox──▶ (gone)
//! ```
//! Only `Ready` is SANDBOX_READY on the wire; every other state is SANDBOX_NOTREADY. A `NotReady`
//! sandbox may still hold resources (an undo that failed, a restart mid-setup): Stop/Remove free them.

use serde::{Deserialize, Serialize};

/// Where a sandbox is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    /// RunPodSandbox is in flight.
    Creating,
    /// Setup completed and the pause process runs.
    Ready,
    /// Stopped, failed, or its pause exited.
    NotReady,
    /// The record on disk could not be read; only removal is possible.
    Unknown,
}

impl SandboxState {
    /// SANDBOX_READY on the wire.
    pub fn is_ready(self) -> bool {
        self == SandboxState::Ready
    }

    /// Setup may finish only from `Creating`.
    pub fn can_become_ready(self) -> bool {
        self == SandboxState::Creating
    }

    /// A stop (or an observed pause exit) turns `Creating`/`Ready` into `NotReady`; returns whether
    /// that is a transition (so exactly one caller publishes STOPPED).
    pub fn stops(self) -> bool {
        matches!(self, SandboxState::Creating | SandboxState::Ready)
    }

    /// Containers may be created only in a ready sandbox.
    pub fn accepts_containers(self) -> bool {
        self.is_ready()
    }
}

#[cfg(test)]
mod tests {
    use super::SandboxState::*;

    #[test]
    fn guards() {
        assert!(Ready.is_ready());
        assert!(!Creating.is_ready() && !NotReady.is_ready() && !Unknown.is_ready());
        assert!(Creating.can_become_ready());
        assert!(!NotReady.can_become_ready() && !Ready.can_become_ready());
        assert!(Ready.stops() && Creating.stops());
        assert!(!NotReady.stops() && !Unknown.stops());
        assert!(Ready.accepts_containers() && !NotReady.accepts_containers());
    }
}
