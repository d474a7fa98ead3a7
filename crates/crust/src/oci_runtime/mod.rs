//! The OCI runtime seam: [`OciRuntime`] (create/start/kill/delete a container from a bundle) and its
//! runc implementation, plus [`monitor`], which watches container init processes through pidfds so
//! exits are noticed without polling the runtime.

pub mod features;
pub mod monitor;

use std::path::Path;

use async_trait::async_trait;
use runc::{Runc, RuncError};

/// Errors from the OCI runtime.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Runc(#[from] RuncError),
}

impl OciError {
    /// The container does not exist (already deleted).
    pub fn is_not_found(&self) -> bool {
        match self {
            OciError::Runc(e) => e.is_not_found(),
        }
    }
}

/// An OCI runtime for one runtime handler.
#[async_trait]
pub trait OciRuntime: Send + Sync + std::fmt::Debug {
    /// Creates the container from `bundle`; returns its init pid.
    async fn create(&self, id: &str, bundle: &Path) -> Result<i32, OciError>;
    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<(), OciError>;
    /// Deletes a stopped container (never forced on the normal path).
    async fn delete(&self, id: &str) -> Result<(), OciError>;
    /// Kills and deletes the container whatever its state (`delete --force`: abnormal paths only,
    /// it costs about 100 ms). A missing container is fine.
    async fn force_delete(&self, id: &str) -> Result<(), OciError>;
    /// Ids of the containers this runtime knows.
    async fn list(&self) -> Result<Vec<String>, OciError>;
    /// The pid of container `id`'s init process, or `None` when the runtime does not know `id` or
    /// its init has exited.
    async fn pid(&self, id: &str) -> Result<Option<i32>, OciError>;
    /// Sends `signal` to the container's init process.
    async fn kill(&self, id: &str, signal: i32) -> Result<(), OciError>;
    /// Applies the OCI LinuxResources in `resources_file` to a running container.
    async fn update(&self, id: &str, resources_file: &Path) -> Result<(), OciError>;
    /// The runtime binary and its `--root` (for crust-shim, which runs `create` itself).
    fn binary_and_root(&self) -> (&Path, &Path);
    /// What the runtime can do (from its `features` output).
    fn features(&self) -> features::Features {
        features::Features::default()
    }
}

/// [`OciRuntime`] over the runc CLI (also fits crun, which has the same CLI).
#[derive(Debug, Clone)]
pub struct RuncRuntime {
    runc: Runc,
    features: features::Features,
}

impl RuncRuntime {
    /// A runtime running `binary` with its state under `root`, with what `binary features`
    /// says it can do (blocking: call at start).
    pub fn new(binary: &Path, root: &Path) -> Self {
        RuncRuntime {
            runc: Runc::new(binary, root),
            features: features::probe(binary),
        }
    }
}

#[async_trait]
impl OciRuntime for RuncRuntime {
    async fn create(&self, id: &str, bundle: &Path) -> Result<i32, OciError> {
        let log = bundle.join("runc.log");
        Ok(self.runc.create(id, bundle, &log).await?)
    }

    async fn start(&self, id: &str) -> Result<(), OciError> {
        Ok(self.runc.start(id).await?)
    }

    async fn delete(&self, id: &str) -> Result<(), OciError> {
        Ok(self.runc.delete(id, false).await?)
    }

    async fn force_delete(&self, id: &str) -> Result<(), OciError> {
        match self.runc.delete(id, true).await {
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<String>, OciError> {
        Ok(self.runc.list().await?.into_iter().map(|c| c.id).collect())
    }

    async fn pid(&self, id: &str) -> Result<Option<i32>, OciError> {
        match self.runc.state(id).await {
            Ok(state) if state.status != "stopped" && state.pid > 0 => Ok(Some(state.pid)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<(), OciError> {
        Ok(self.runc.kill(id, signal, false).await?)
    }

    async fn update(&self, id: &str, resources_file: &Path) -> Result<(), OciError> {
        Ok(self.runc.update(id, resources_file).await?)
    }

    fn binary_and_root(&self) -> (&Path, &Path) {
        (self.runc.binary(), self.runc.root())
    }

    fn features(&self) -> features::Features {
        self.features.clone()
    }
}
