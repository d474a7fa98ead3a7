//! The sandbox manager and the lifecycle procedures after RunPodSandbox (which is in
//! [`super::run_pod`], with its undo stack): Stop and Remove (idempotent), and the reaction to a
//! pause process that exits on its own.
//!
//! Run, Stop and Remove each run in a task of their own, so a client that cancels its request never
//! interrupts a half-done procedure or its rollback; the per-sandbox `op` lock serialises them.

use std::{collections::BTreeMap, path::PathBuf, sync::Arc};

use super::{
    controller::SandboxController,
    files::{self, SandboxPaths},
    record::{Sandbox, SandboxRecord},
    run_pod::{blocking_io, held, Undo},
    state::SandboxState,
    status,
    store::SandboxStore,
    SandboxError,
};
use crate::{
    config::RuntimeConfig,
    events::{now_ns, Event, EventBus, EventKind},
    image::SandboxImage,
    network::{cni::CniNetwork, netns},
    oci_runtime::monitor::ExitWatch,
    store::LookupError,
};

/// Annotation keys crust gives the pause's OCI spec (as containerd does, for runtimes such as
/// runsc and Kata that read them); the client's labels and annotations stay exactly as given.
pub const ANNOTATION_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const ANNOTATION_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const ANNOTATION_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub const ANNOTATION_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";
pub const ANNOTATION_SANDBOX_ATTEMPT: &str = "io.kubernetes.cri.sandbox-attempt";
pub const ANNOTATION_SANDBOX_ID: &str = "io.kubernetes.cri.sandbox-id";
pub const ANNOTATION_SANDBOX_LOG_DIRECTORY: &str = "io.kubernetes.cri.sandbox-log-directory";

/// What the manager needs to know about its surroundings.
#[derive(Debug, Clone)]
pub struct ManagerOptions {
    /// `<root>/sandboxes`
    pub root_dir: PathBuf,
    /// `<state>/sandboxes`
    pub state_dir: PathBuf,
    /// The configured runtime handlers.
    pub handlers: BTreeMap<String, RuntimeConfig>,
    pub default_handler: String,
    /// `<state>/netns`: pinned network namespaces.
    pub netns_dir: PathBuf,
    /// What the sandbox process runs from.
    pub sandbox_image: SandboxImage,
}

/// Owns every sandbox.
#[derive(Debug)]
pub struct SandboxManager {
    pub(super) store: SandboxStore,
    pub(super) controller: Arc<dyn SandboxController>,
    pub(super) network: Arc<CniNetwork>,
    pub(super) events: EventBus,
    pub(super) options: ManagerOptions,
    pub(super) containers: std::sync::OnceLock<Arc<dyn PodContainers>>,
}

/// What Stop/RemovePodSandbox need of a pod's containers (the container manager).
#[async_trait::async_trait]
pub trait PodContainers: Send + Sync + std::fmt::Debug {
    /// Kills the pod's running containers.
    async fn stop_pod(&self, pod_id: &str) -> Result<(), crate::container::ContainerError>;
    /// Removes the pod's containers.
    async fn remove_pod(&self, pod_id: &str) -> Result<(), crate::container::ContainerError>;
}

impl SandboxManager {
    /// A manager over `store`.
    pub fn new(
        store: SandboxStore,
        controller: Arc<dyn SandboxController>,
        network: Arc<CniNetwork>,
        events: EventBus,
        options: ManagerOptions,
    ) -> SandboxManager {
        SandboxManager {
            store,
            controller,
            network,
            events,
            options,
            containers: std::sync::OnceLock::new(),
        }
    }

    /// Connects the container manager (once, at start).
    pub fn set_containers(&self, containers: Arc<dyn PodContainers>) {
        let _ = self.containers.set(containers);
    }

    /// Where pinned network namespaces live.
    pub fn netns_dir(&self) -> &std::path::Path {
        &self.options.netns_dir
    }

    /// The sandbox controller (for recovery).
    pub(super) fn controller(&self) -> &Arc<dyn SandboxController> {
        &self.controller
    }

    /// The pod network (NetworkReady, pod CIDR).
    pub fn network(&self) -> &Arc<CniNetwork> {
        &self.network
    }

    /// The configured sandbox image.
    pub fn sandbox_image(&self) -> &SandboxImage {
        &self.options.sandbox_image
    }

    /// Sandboxes whose rootfs comes from image `image_id`.
    pub fn image_users(&self, image_id: &str) -> Vec<String> {
        self.store
            .all()
            .into_iter()
            .filter(|s| s.snapshot().rootfs.is_some_and(|r| r.image_id == image_id))
            .map(|s| format!("pod sandbox {}", s.id))
            .collect()
    }

    /// The store (read access for status and listing).
    pub fn store(&self) -> &SandboxStore {
        &self.store
    }

    /// The file locations of sandbox `id`.
    pub fn paths(&self, id: &str) -> SandboxPaths {
        SandboxPaths {
            dir: self.options.root_dir.join(id),
            state_dir: self.options.state_dir.join(id),
        }
    }

    /// StopPodSandbox: idempotent; unknown ids are OK.
    pub async fn stop(self: &Arc<Self>, key: &str) -> Result<(), SandboxError> {
        let Some(sandbox) = self.find_for_teardown(key)? else {
            return Ok(());
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _op = sandbox.op.lock().await;
            this.stop_locked(&sandbox).await
        })
        .await
        .map_err(|e| SandboxError::Task(e.to_string()))?
    }

    async fn stop_locked(&self, sandbox: &Arc<Sandbox>) -> Result<(), SandboxError> {
        if !self.store.is_current(sandbox) || sandbox.state() == SandboxState::Unknown {
            return Ok(());
        }
        if let Some(containers) = self.containers.get() {
            containers.stop_pod(&sandbox.id).await.map_err(Box::new)?;
        }
        let record = sandbox.snapshot();
        self.kill_pause(sandbox, &record).await?;
        if record.held.network {
            self.undo(sandbox, Undo::Network).await?;
        }
        if let Some(path) = record.netns.clone().filter(|_| record.held.netns) {
            blocking_io("unpin netns", path, netns::unpin).await?;
        }
        if record.held.shm {
            let shm = self.paths(&sandbox.id).shm();
            blocking_io("unmount shm", shm, files::unmount_shm).await?;
            self.store.stage(sandbox, |r| r.held.shm = false);
        }
        // One write for the whole stop, and none when there was nothing to stop.
        if record.state.stops() || sandbox.snapshot() != record {
            self.mark_stopped(sandbox, None).await?;
        }
        Ok(())
    }

    /// Kills the pause on request (the exit handler then stays out of the way).
    pub(super) async fn kill_pause(
        &self,
        sandbox: &Sandbox,
        record: &SandboxRecord,
    ) -> Result<(), SandboxError> {
        sandbox
            .stop_requested
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.controller
            .stop(record, sandbox.pause_watch().as_ref())
            .await?;
        Ok(())
    }

    /// Moves Creating/Ready to NotReady; publishes STOPPED if this call made the transition.
    pub(super) async fn mark_stopped(
        &self,
        sandbox: &Sandbox,
        reason: Option<String>,
    ) -> Result<bool, SandboxError> {
        let changed = self
            .store
            .update(sandbox, |r| {
                let changed = r.state.stops();
                if changed {
                    r.state = SandboxState::NotReady;
                    if reason.is_some() {
                        r.reason = reason;
                    }
                }
                changed
            })
            .await?;
        if changed {
            self.publish(sandbox, EventKind::Stopped);
        }
        Ok(changed)
    }

    /// RemovePodSandbox: stops if needed, frees everything, forgets the sandbox; idempotent.
    pub async fn remove(self: &Arc<Self>, key: &str) -> Result<(), SandboxError> {
        let Some(sandbox) = self.find_for_teardown(key)? else {
            return Ok(());
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _op = sandbox.op.lock().await;
            this.remove_locked(&sandbox).await
        })
        .await
        .map_err(|e| SandboxError::Task(e.to_string()))?
    }

    async fn remove_locked(&self, sandbox: &Arc<Sandbox>) -> Result<(), SandboxError> {
        if !self.store.is_current(sandbox) {
            return Ok(()); // removed by a concurrent call while we waited for the lock
        }
        if sandbox.state() == SandboxState::Unknown {
            return self.remove_unknown(sandbox).await;
        }
        self.stop_locked(sandbox).await?;
        if let Some(containers) = self.containers.get() {
            containers.remove_pod(&sandbox.id).await.map_err(Box::new)?;
        }
        let record = sandbox.snapshot();
        for step in [
            Undo::Pause,
            Undo::Network,
            Undo::Shm,
            Undo::Netns,
            Undo::Files,
        ] {
            if held(&record.held, step) {
                self.undo(sandbox, step).await?;
            }
        }
        self.store.forget(sandbox).await?;
        sandbox.set_pause_watch(None);
        self.publish(sandbox, EventKind::Deleted);
        tracing::info!(id = %sandbox.id, name = %sandbox.name, "sandbox removed");
        Ok(())
    }

    /// Removes a sandbox whose record could not be read: everything it might hold is released.
    async fn remove_unknown(&self, sandbox: &Arc<Sandbox>) -> Result<(), SandboxError> {
        let paths = self.paths(&sandbox.id);
        self.controller.force_delete(&sandbox.id, &paths).await?;
        let netns_path = self.options.netns_dir.join(&sandbox.id);
        let netns_arg = netns::cni_arg(Some(&netns_path));
        self.network
            .teardown_cached(&sandbox.id, &netns_arg)
            .await?;
        blocking_io("remove netns", netns_path, netns::remove).await?;
        blocking_io("unmount shm", paths.shm(), files::unmount_shm).await?;
        blocking_io("remove", paths.state_dir.clone(), files::remove_dir).await?;
        self.store.forget(sandbox).await?;
        self.publish(sandbox, EventKind::Deleted);
        Ok(())
    }

    /// Lookup for Stop/Remove: unknown ids are `None` (OK for the caller), empty/ambiguous are errors.
    fn find_for_teardown(&self, key: &str) -> Result<Option<Arc<Sandbox>>, SandboxError> {
        match self.store.lookup(key) {
            Ok(sandbox) => Ok(Some(sandbox)),
            Err(LookupError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reacts to the pause process exiting on its own: NOTREADY and STOPPED within moments.
    pub(super) fn spawn_exit_handler(self: &Arc<Self>, sandbox: Arc<Sandbox>, watch: ExitWatch) {
        let this = self.clone();
        let mut rx = watch.subscribe();
        tokio::spawn(async move {
            if rx.wait_for(|exited| *exited).await.is_ok() {
                this.pause_exited(&sandbox).await;
            }
        });
    }

    async fn pause_exited(&self, sandbox: &Sandbox) {
        let requested = sandbox
            .stop_requested
            .load(std::sync::atomic::Ordering::SeqCst);
        if requested || self.store.lookup(&sandbox.id).is_err() {
            return;
        }
        let changed = self
            .store
            .update(sandbox, |r| {
                let ready = r.state.is_ready();
                if ready {
                    r.state = SandboxState::NotReady;
                    r.reason = Some("the pause process exited".to_string());
                }
                ready
            })
            .await;
        match changed {
            Ok(true) => {
                tracing::warn!(id = %sandbox.id, name = %sandbox.name, "pause exited; sandbox NOTREADY");
                self.publish(sandbox, EventKind::Stopped);
            }
            Ok(false) => {}
            Err(e) => tracing::error!(id = %sandbox.id, error = %e, "cannot record the pause exit"),
        }
    }

    /// Publishes `kind` for `sandbox` with its status now.
    pub(super) fn publish(&self, sandbox: &Sandbox, kind: EventKind) {
        self.events.publish(Event {
            container_id: sandbox.id.clone(),
            kind,
            created_at_ns: now_ns(),
            pod_status: Some(status::pod_status(&sandbox.snapshot())),
            containers_statuses: Vec::new(),
        });
    }
}
