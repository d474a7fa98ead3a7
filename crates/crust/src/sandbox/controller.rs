//! Sandbox controllers: what holds the pod's namespaces. [`PauseController`] runs the built-in
//! (or image) pause through the OCI runtime of the pod's handler; `super::pinned` pins them
//! without a process. A remote sandboxer (containerd's
//! Sandbox API) fits the same [`SandboxController`] trait later.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;

use super::{
    files::SandboxPaths,
    record::{PauseProcess, SandboxRecord},
    spec::{pause_spec, PauseSpecInput},
};
use crate::{
    image::rootfs,
    oci_runtime::{
        monitor::{ExitWatch, Process},
        OciError, OciRuntime,
    },
};

/// How long a killed pause may take to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Controller failures.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("runtime handler {0:?} is not configured")]
    UnknownHandler(String),
    #[error(transparent)]
    Runtime(#[from] OciError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("pause process {pid} exited before it could be watched")]
    Vanished { pid: i32 },
    #[error("pause process {pid} did not exit within {timeout:?} of SIGKILL")]
    StopTimeout { pid: i32, timeout: Duration },
}

/// Runs, stops and deletes a sandbox's process.
#[async_trait]
pub trait SandboxController: Send + Sync + std::fmt::Debug {
    /// Creates the sandbox (its process, if it has one, not yet running user code) and returns
    /// its process, watched; `None` for a sandbox without a process (pinned namespaces).
    async fn create(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
        netns: Option<&Path>,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError>;
    /// Starts a created sandbox.
    async fn start(&self, record: &SandboxRecord) -> Result<(), ControllerError>;
    /// Finds the sandbox process of a record that does not name it (crustd died between creating
    /// it and persisting its pid), through the runtime; `None` when there is none alive.
    async fn reattach(
        &self,
        record: &SandboxRecord,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError>;
    /// The watch on a recovered sandbox's process: `process` (pinned from the record) or, for a
    /// runtime that reports its tasks' exits, that report.
    fn watch(&self, record: &SandboxRecord, process: Option<Process>) -> Option<ExitWatch> {
        let _ = record;
        process.map(Process::watch)
    }
    /// Kills the sandbox process and waits for it to exit; no-op when it is gone.
    async fn stop(
        &self,
        record: &SandboxRecord,
        watch: Option<&ExitWatch>,
    ) -> Result<(), ControllerError>;
    /// Deletes the stopped sandbox from the runtime and removes its bundle; idempotent.
    async fn delete(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
    ) -> Result<(), ControllerError>;
    /// Kills and deletes container `id` from every runtime and removes its bundle, when the record
    /// that would say more is unreadable.
    async fn force_delete(&self, id: &str, paths: &SandboxPaths) -> Result<(), ControllerError>;
    /// Applies new pod-level resources (UpdatePodSandboxResources, already in the record) where
    /// the controller owns something they limit: a VM or a shim-v2 sandbox. A pause container
    /// owns nothing: the pod cgroup is kubelet's, as with containerd and CRI-O.
    async fn update_resources(&self, record: &SandboxRecord) -> Result<(), ControllerError> {
        let _ = record;
        Ok(())
    }
}

/// The pause container on an OCI runtime, one per runtime handler.
#[derive(Debug)]
pub struct PauseController {
    runtimes: BTreeMap<String, Arc<dyn OciRuntime>>,
    rootfs: PathBuf,
    oom_score_adj: i32,
}

impl PauseController {
    /// `rootfs` holds `/pause`; `oom_score_adj` is already clamped to what crustd may set.
    pub fn new(
        runtimes: BTreeMap<String, Arc<dyn OciRuntime>>,
        rootfs: PathBuf,
        oom_score_adj: i32,
    ) -> Self {
        PauseController {
            runtimes,
            rootfs,
            oom_score_adj,
        }
    }

    /// True when `handler` names a configured runtime.
    pub fn has_handler(&self, handler: &str) -> bool {
        self.runtimes.contains_key(handler)
    }

    /// The runtimes by handler (for recovery scans).
    pub fn runtimes(&self) -> &BTreeMap<String, Arc<dyn OciRuntime>> {
        &self.runtimes
    }

    fn runtime(&self, handler: &str) -> Result<&Arc<dyn OciRuntime>, ControllerError> {
        self.runtimes
            .get(handler)
            .ok_or_else(|| ControllerError::UnknownHandler(handler.to_string()))
    }

    /// The sandbox process `pid` and its watch; `None` when nothing watches it (it is gone).
    fn watched(
        &self,
        record: &SandboxRecord,
        pid: i32,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError> {
        let process = open_process(pid)?;
        let pause = PauseProcess {
            pid,
            start_time: process.as_ref().map_or(0, Process::start_time),
        };
        Ok(SandboxController::watch(self, record, process).map(|watch| (pause, watch)))
    }

    /// Stops a sandbox task its runtime reports on: SIGKILL through the runtime (a shim's Kill),
    /// then the reported exit.
    async fn stop_task(
        &self,
        record: &SandboxRecord,
        watch: &ExitWatch,
    ) -> Result<(), ControllerError> {
        let runtime = self.runtime(&record.runtime_handler)?;
        match runtime.kill(&record.id, libc::SIGKILL).await {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
        if !watch.wait(STOP_TIMEOUT).await {
            return Err(ControllerError::StopTimeout {
                pid: record.pause.map_or(0, |p| p.pid),
                timeout: STOP_TIMEOUT,
            });
        }
        tracing::debug!(id = %record.id, "sandbox task stopped");
        Ok(())
    }

    async fn write_bundle(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
        netns: Option<&Path>,
    ) -> Result<PathBuf, ControllerError> {
        let bundle = paths.bundle();
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| ControllerError::Io { what, path, source }
        };
        std::fs::create_dir_all(&bundle).map_err(io("create bundle", &bundle))?;
        let rootfs = match &record.rootfs {
            None => self.rootfs.clone(),
            Some(image) => mount_rootfs(image.lowers.clone(), bundle.clone()).await?,
        };
        let builtin_args = ["/pause".to_string()];
        let args = match &record.rootfs {
            Some(image) if !image.args.is_empty() => image.args.as_slice(),
            _ => &builtin_args[..],
        };
        let shm = record.held.shm.then(|| paths.shm());
        let input = PauseSpecInput {
            rootfs: &rootfs,
            args,
            network: record.network_mode,
            netns,
            shm: shm.as_deref(),
            cgroups_path: &record.cgroups_path,
            oom_score_adj: self.oom_score_adj,
            sandbox_id: &record.id,
            runtime: self.runtime(&record.runtime_handler)?.handler_config(),
        };
        let spec = pause_spec(&record.config, &input);
        let file = bundle.join("config.json");
        std::fs::write(&file, spec.to_string()).map_err(io("write", &file))?;
        Ok(bundle)
    }
}

#[async_trait]
impl SandboxController for PauseController {
    async fn create(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
        netns: Option<&Path>,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError> {
        let runtime = self.runtime(&record.runtime_handler)?;
        let bundle = self.write_bundle(record, paths, netns).await?;
        let pid = runtime.create(&record.id, &bundle).await?;
        self.watched(record, pid)?
            .ok_or(ControllerError::Vanished { pid })
            .map(Some)
    }

    fn watch(&self, record: &SandboxRecord, process: Option<Process>) -> Option<ExitWatch> {
        let reported = self
            .runtime(&record.runtime_handler)
            .ok()
            .and_then(|runtime| runtime.exit_reporter(&record.id));
        ExitWatch::of(reported, process)
    }

    async fn reattach(
        &self,
        record: &SandboxRecord,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError> {
        let runtime = self.runtime(&record.runtime_handler)?;
        // A `runc create` cut off from crustd by the crash may still be running: its container
        // counts once it is made (or is gone).
        runtime
            .cli()
            .settle_create(&record.id, SETTLE_TIMEOUT)
            .await;
        let Some(pid) = runtime.pid(&record.id).await? else {
            return Ok(None);
        };
        self.watched(record, pid)
    }

    async fn start(&self, record: &SandboxRecord) -> Result<(), ControllerError> {
        Ok(self
            .runtime(&record.runtime_handler)?
            .start(&record.id)
            .await?)
    }

    async fn stop(
        &self,
        record: &SandboxRecord,
        watch: Option<&ExitWatch>,
    ) -> Result<(), ControllerError> {
        let Some(watch) = watch else {
            return Ok(());
        };
        if watch.has_exited() {
            return Ok(());
        }
        let Some(process) = watch.process() else {
            return self.stop_task(record, watch).await;
        };
        let pid = process.pid();
        process
            .signal(libc::SIGKILL)
            .map_err(|source| ControllerError::Io {
                what: "pidfd_send_signal",
                path: PathBuf::from(format!("/proc/{pid}")),
                source,
            })?;
        if !watch.wait(STOP_TIMEOUT).await {
            return Err(ControllerError::StopTimeout {
                pid,
                timeout: STOP_TIMEOUT,
            });
        }
        tracing::debug!(id = %record.id, pid, "pause stopped");
        Ok(())
    }

    async fn delete(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
    ) -> Result<(), ControllerError> {
        let runtime = self.runtime(&record.runtime_handler)?;
        match runtime.delete(&record.id).await {
            Err(e) if !e.is_not_found() => return Err(e.into()),
            _ => {}
        }
        remove_bundle(paths, Some(record.cgroups_path.clone())).await
    }

    async fn force_delete(&self, id: &str, paths: &SandboxPaths) -> Result<(), ControllerError> {
        for runtime in self.runtimes.values() {
            runtime.force_delete(id).await?;
        }
        remove_bundle(paths, None).await
    }
}

/// How long recovery waits for a pause's `runc create` that outlived crustd.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A pidfd on `pid`; `None` when it has exited.
fn open_process(pid: i32) -> Result<Option<Process>, ControllerError> {
    Process::open(pid, None).map_err(|source| ControllerError::Io {
        what: "pidfd_open",
        path: PathBuf::from(format!("/proc/{pid}")),
        source,
    })
}

/// Runs `work` on a blocking thread; its failure is [`ControllerError::Io`] naming `path`.
pub(super) async fn blocking<T: Send + 'static>(
    what: &'static str,
    path: PathBuf,
    work: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, ControllerError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r)
        .map_err(|source| ControllerError::Io { what, path, source })
}

/// Mounts an image rootfs overlay in `bundle` on a blocking thread.
async fn mount_rootfs(lowers: Vec<PathBuf>, bundle: PathBuf) -> Result<PathBuf, ControllerError> {
    let path = bundle.join("rootfs");
    blocking("mount rootfs", path, move || {
        rootfs::mount_overlay(&lowers, &bundle)
    })
    .await
}

/// Removes the cgroup the runtime left (when its path is known), unmounts an image rootfs (if
/// any) and removes the bundle, on one blocking thread; idempotent.
async fn remove_bundle(
    paths: &SandboxPaths,
    cgroup: Option<String>,
) -> Result<(), ControllerError> {
    let bundle = paths.bundle();
    let dir = bundle.clone();
    blocking("remove bundle", bundle, move || {
        if let Some(cgroup) = cgroup {
            crate::oci_runtime::cgroup::remove_leftover(&cgroup);
        }
        rootfs::unmount_overlay(&dir)?;
        super::files::remove_dir(&dir)
    })
    .await
}
