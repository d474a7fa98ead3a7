//! The container manager and the container's lifecycle verbs (Create is in [`super::create`],
//! the verbs on a running container in [`super::running`]). Start is `runc start`. The shim's
//! exit (watched through a pidfd; a shim v2 task's through the shim's Wait) means the container
//! exited; its exit file has the code. Stop signals, waits, then SIGKILLs; Remove forces a
//! running one down, deletes it from the runtime, unmounts and forgets it. Everything is
//! idempotent.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use cri_api::v1::ContainerFilter;

use super::{
    host_facts,
    record::{Container, ContainerRecord, ShimProcess, RECORD_VERSION},
    shim, signal,
    state::ContainerState,
    stats, ContainerError,
};
use crate::{
    events::{now_ns, Event, EventBus, EventKind},
    image::{rootfs, store::ImageStore},
    oci_runtime::{
        monitor::{ExitWatch, Process},
        OciRuntime,
    },
    sandbox::SandboxManager,
    store::{write_record, Index, Registrar},
};

/// How long a SIGKILLed container may take to go.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a sandboxed runtime's shim may take to start its container.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Where containers live and what runs them.
#[derive(Debug, Clone)]
pub struct ContainerOptions {
    /// `<root>/containers`: one dir per container (record, bundle, rootfs mount, upper/work).
    pub root_dir: PathBuf,
    /// The crust-shim binary.
    pub shim: PathBuf,
}

/// The container manager.
#[derive(Debug)]
pub struct ContainerManager {
    pub(super) options: ContainerOptions,
    pub(super) containers: Index<Container>,
    pub(super) registrar: Arc<Registrar>,
    pub(super) sandboxes: Arc<SandboxManager>,
    pub(super) images: Arc<ImageStore>,
    pub(super) runtimes: BTreeMap<String, Arc<dyn OciRuntime>>,
    pub(super) events: EventBus,
    /// The previous CPU sample per cgroup (for usage_nano_cores).
    pub(super) cpu_samples: std::sync::Mutex<std::collections::HashMap<String, (i64, u64)>>,
}

pub(super) fn io<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ContainerError + 'a {
    move |source| ContainerError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

pub(super) fn task(e: tokio::task::JoinError) -> ContainerError {
    ContainerError::Task(e.to_string())
}

impl ContainerManager {
    /// A manager sharing the sandboxes' name registrar and runtimes.
    pub fn new(
        options: ContainerOptions,
        registrar: Arc<Registrar>,
        sandboxes: Arc<SandboxManager>,
        images: Arc<ImageStore>,
        runtimes: BTreeMap<String, Arc<dyn OciRuntime>>,
        events: EventBus,
    ) -> ContainerManager {
        ContainerManager {
            options,
            containers: Index::default(),
            registrar,
            sandboxes,
            images,
            runtimes,
            events,
            cpu_samples: std::sync::Mutex::default(),
        }
    }

    pub(super) fn dir(&self, id: &str) -> PathBuf {
        self.options.root_dir.join(id)
    }

    /// Every configured handler with its runtime's features.
    pub fn handler_features(&self) -> Vec<(String, crate::oci_runtime::features::Features)> {
        self.runtimes
            .iter()
            .map(|(name, rt)| (name.clone(), rt.features()))
            .collect()
    }

    pub(super) fn runtime(&self, handler: &str) -> Result<&Arc<dyn OciRuntime>, ContainerError> {
        self.runtimes
            .get(handler)
            .ok_or_else(|| ContainerError::UnknownHandler(handler.to_string()))
    }

    pub(super) async fn persist(&self, c: &Container) -> Result<(), ContainerError> {
        persist(c, self.dir(&c.id).join("container.json")).await
    }

    pub(super) fn publish(&self, c: &Container, kind: EventKind) {
        self.events.publish(event_for(c, kind, &self.sandboxes));
    }

    /// The container with `key` (exact id or unique prefix).
    pub fn lookup(&self, key: &str) -> Result<Arc<Container>, ContainerError> {
        Ok(self.containers.lookup(key)?)
    }

    /// Stop/Remove: an unknown id is nothing to do (`None`); an empty or ambiguous one is an error.
    pub(super) fn find_for_teardown(
        &self,
        key: &str,
    ) -> Result<Option<Arc<Container>>, ContainerError> {
        match self.lookup(key) {
            Err(ContainerError::Lookup(crate::store::LookupError::NotFound(_))) => Ok(None),
            other => other.map(Some),
        }
    }

    /// All containers matching `filter`.
    pub fn list(&self, filter: Option<&ContainerFilter>) -> Vec<ContainerRecord> {
        let mut out: Vec<ContainerRecord> = self
            .containers
            .values()
            .iter()
            .map(|c| c.snapshot())
            .filter(|r| filter.is_none_or(|f| matches(r, f)))
            .collect();
        out.sort_by_key(|r| r.created_at_ns);
        out
    }

    /// Watches the shim; its exit is the container's exit (a shim already gone or a zombie
    /// counts as exited at once). A task of a shim-v2 runtime is watched through the shim's
    /// report (Wait) instead. The exit is settled under the container's operation lock.
    pub(super) fn watch(&self, c: &Arc<Container>, shim: &ShimProcess) {
        let task = self.task_runtime(c);
        let reported = task.as_ref().and_then(|rt| rt.exit_reporter(&c.id));
        let process = match reported {
            Some(_) => None,
            None => Process::open(shim.pid, Some(shim.start_time))
                .ok()
                .flatten(),
        };
        let watch = ExitWatch::of(reported, process);
        c.set_watch(watch.clone());
        let (container, events) = (Arc::clone(c), self.events.clone());
        let sandboxes = Arc::clone(&self.sandboxes);
        let exit_file = self.dir(&c.id).join("exit.json");
        let record_path = self.dir(&c.id).join("container.json");
        tokio::spawn(async move {
            if let Some(watch) = watch {
                let mut rx = watch.subscribe();
                let _ = rx.wait_for(|exited| *exited).await;
            }
            if let Some(runtime) = task {
                super::task::keep_exit_status(&runtime, &container.id, &exit_file).await;
            }
            // After the verb that holds the container (StartContainer publishing STARTED, a
            // Stop that settles the exit itself): a container that exits at once is STOPPED
            // after it was STARTED, never before, however busy the machine is.
            let _op = container.op.clone().lock_owned().await;
            if mark_exited(&container, &exit_file) {
                note_oom(&container);
                if let Err(e) = persist(&container, record_path).await {
                    tracing::error!(id = %container.id, error = %e, "container exit not persisted");
                }
                events.publish(event_for(&container, EventKind::Stopped, &sandboxes));
            }
        });
    }

    /// StartContainer.
    pub async fn start(self: &Arc<Self>, key: &str) -> Result<(), ContainerError> {
        let c = self.lookup(key)?;
        let _op = c.op.clone().lock_owned().await;
        let record = c.snapshot();
        if !record.state.can_start() {
            return Err(ContainerError::WrongState {
                id: c.id.clone(),
                state: format!("{:?}", record.state),
                what: "only a created container can be started",
            });
        }
        let started_at = now_ns();
        match &record.shim {
            Some(shim) if shim.sandboxed => self.start_in_shim(&c).await?,
            _ => self.runtime(&record.runtime_handler)?.start(&c.id).await?,
        }
        c.change(|r| {
            if r.state == ContainerState::Created {
                r.state = ContainerState::Running;
            }
            r.started_at_ns = started_at;
        });
        self.persist(&c).await?;
        self.publish(&c, EventKind::Started);
        Ok(())
    }

    /// Starts a sandboxed runtime's container through its shim, which holds the container's
    /// stdio: SIGUSR2, then the shim's `start.result` (`ok` or `error <message>`).
    pub(super) async fn start_in_shim(&self, c: &Arc<Container>) -> Result<(), ContainerError> {
        let result = self.dir(&c.id).join(crust_shim::sandboxed::START_RESULT);
        let _ = std::fs::remove_file(&result);
        let watch = c.watch().filter(|w| !w.has_exited());
        let Some(shim) = watch.as_ref().and_then(|w| w.process()) else {
            return Err(ContainerError::Shim("the shim is gone".into()));
        };
        shim.signal(libc::SIGUSR2)
            .map_err(io("signal the shim of", &self.dir(&c.id)))?;
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if let Ok(text) = std::fs::read_to_string(&result) {
                return match text.trim().strip_prefix("error ") {
                    Some(message) => Err(ContainerError::Shim(message.to_string())),
                    None => Ok(()),
                };
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(ContainerError::Shim(format!(
            "the shim did not start the container within {} s",
            START_TIMEOUT.as_secs()
        )))
    }

    /// StopContainer: the image's stop signal (else SIGTERM), SIGKILL at the deadline; 0 = kill now.
    pub async fn stop(&self, key: &str, timeout_s: i64) -> Result<(), ContainerError> {
        let Some(c) = self.find_for_teardown(key)? else {
            return Ok(());
        };
        let _op = c.op.clone().lock_owned().await;
        self.stop_locked(&c, timeout_s).await
    }

    async fn stop_locked(&self, c: &Arc<Container>, timeout_s: i64) -> Result<(), ContainerError> {
        let record = c.snapshot();
        if !record.state.may_run() {
            return Ok(());
        }
        let Some(watch) = c.watch().filter(|w| !w.has_exited()) else {
            mark_exited(c, &self.exit_file(c).await);
            return self.persist(c).await;
        };
        let never_started = record.state == ContainerState::Created
            && record.shim.as_ref().is_some_and(|s| s.sandboxed);
        if never_started {
            // Nothing runs yet; the shim gives the container up on SIGTERM (exit code 255).
            if let Some(shim) = watch.process() {
                let _ = shim.signal(libc::SIGTERM);
            }
            return match watch.wait(KILL_TIMEOUT).await {
                true => self.finish_stop(c).await,
                false => Err(ContainerError::StopTimeout {
                    id: c.id.clone(),
                    seconds: KILL_TIMEOUT.as_secs(),
                }),
            };
        }
        let runtime = self.runtime(&record.runtime_handler)?;
        if timeout_s > 0 {
            let signal = stop_signal(&self.images, &record);
            if let Err(e) = runtime.kill(&c.id, signal).await {
                tracing::debug!(id = %c.id, error = %e, "stop signal not delivered");
            }
            if watch.wait(Duration::from_secs(timeout_s as u64)).await {
                return self.finish_stop(c).await;
            }
        }
        if let Err(e) = runtime.kill(&c.id, libc::SIGKILL).await {
            tracing::debug!(id = %c.id, error = %e, "SIGKILL not delivered");
        }
        if !watch.wait(KILL_TIMEOUT).await {
            return Err(ContainerError::StopTimeout {
                id: c.id.clone(),
                seconds: KILL_TIMEOUT.as_secs(),
            });
        }
        self.finish_stop(c).await
    }

    /// The runtime of a container a shim-v2 shim holds (whose exit status the shim keeps).
    pub(super) fn task_runtime(&self, c: &Container) -> Option<Arc<dyn OciRuntime>> {
        let record = c.snapshot();
        record.shim.as_ref().filter(|s| s.task)?;
        self.runtimes.get(&record.runtime_handler).cloned()
    }

    /// The container's exit file, asked of the shim first when a shim holds the container.
    pub(super) async fn exit_file(&self, c: &Container) -> PathBuf {
        let file = self.dir(&c.id).join("exit.json");
        if let Some(runtime) = self.task_runtime(c) {
            super::task::keep_exit_status(&runtime, &c.id, &file).await;
        }
        file
    }

    pub(super) async fn finish_stop(&self, c: &Arc<Container>) -> Result<(), ContainerError> {
        if mark_exited(c, &self.exit_file(c).await) {
            note_oom(c);
            self.persist(c).await?;
            self.publish(c, EventKind::Stopped);
        }
        Ok(())
    }

    /// RemoveContainer: forces a running container down first; unknown ids are fine.
    pub async fn remove(&self, key: &str) -> Result<(), ContainerError> {
        let Some(c) = self.find_for_teardown(key)? else {
            return Ok(());
        };
        let _op = c.op.clone().lock_owned().await;
        if self.containers.lookup(&c.id).is_err() {
            return Ok(()); // removed while we waited
        }
        self.stop_locked(&c, 0).await?;
        self.teardown(&c).await?;
        self.containers.remove(&c.id);
        self.forget_cpu_sample(&c.id);
        self.publish(&c, EventKind::Deleted);
        tracing::info!(id = %c.id, "container removed");
        Ok(())
    }

    /// Runtime delete, unmount, dir and record removal, name release (idempotent).
    pub(super) async fn teardown(&self, c: &Arc<Container>) -> Result<(), ContainerError> {
        let record = c.snapshot();
        let runtime = self.runtime(&record.runtime_handler)?;
        if let Err(e) = runtime.delete(&c.id).await {
            if !e.is_not_found() {
                runtime.force_delete(&c.id).await?;
            }
        }
        let dir = self.dir(&c.id);
        if record.shim.as_ref().is_some_and(|s| s.task) {
            super::task::stop_task_io(&dir);
        }
        let target = dir.clone();
        let cgroup = record.cgroups_path.clone();
        tokio::task::spawn_blocking(move || {
            crate::oci_runtime::cgroup::remove_leftover(&cgroup);
            host_facts::unmount_image_volumes(&target)?;
            rootfs::unmount_overlay(&target)?;
            crate::store::remove_record_dir(&target)
        })
        .await
        .map_err(|e| ContainerError::Task(e.to_string()))?
        .map_err(io("remove", &dir))?;
        self.registrar.release(&record.name, &c.id);
        Ok(())
    }

    /// Containers of pod `pod_id`.
    pub fn of_pod(&self, pod_id: &str) -> Vec<Arc<Container>> {
        self.containers
            .values()
            .into_iter()
            .filter(|c| c.snapshot().sandbox_id == pod_id)
            .collect()
    }

    /// StopPodSandbox: its containers are killed at once.
    pub async fn stop_pod(&self, pod_id: &str) -> Result<(), ContainerError> {
        for c in self.of_pod(pod_id) {
            self.stop(&c.id, 0).await?;
        }
        Ok(())
    }

    /// RemovePodSandbox: its containers go (and the pod's stats sample).
    pub async fn remove_pod(&self, pod_id: &str) -> Result<(), ContainerError> {
        for c in self.of_pod(pod_id) {
            self.remove(&c.id).await?;
        }
        self.forget_cpu_sample(pod_id);
        Ok(())
    }
}

#[async_trait::async_trait]
impl crate::sandbox::PodContainers for ContainerManager {
    async fn stop_pod(&self, pod_id: &str) -> Result<(), ContainerError> {
        ContainerManager::stop_pod(self, pod_id).await
    }

    async fn remove_pod(&self, pod_id: &str) -> Result<(), ContainerError> {
        ContainerManager::remove_pod(self, pod_id).await
    }
}

/// Writes the current record (snapshot taken under the persist lock, so writes land in order).
async fn persist(c: &Container, path: PathBuf) -> Result<(), ContainerError> {
    let _order = c.persist.lock().await;
    let record = c.snapshot();
    tokio::task::spawn_blocking(move || write_record(&path, RECORD_VERSION, &record))
        .await
        .map_err(|e| ContainerError::Task(e.to_string()))??;
    Ok(())
}

/// A container event with the container's status and its pod's.
fn event_for(c: &Container, kind: EventKind, sandboxes: &SandboxManager) -> Event {
    let record = c.snapshot();
    let pod_status = sandboxes
        .store()
        .lookup(&record.sandbox_id)
        .ok()
        .map(|s| crate::sandbox::status::pod_status(&s.snapshot()));
    Event {
        container_id: c.id.clone(),
        kind,
        created_at_ns: now_ns(),
        pod_status,
        containers_statuses: vec![super::status::to_cri(&record)],
    }
}

/// An exit with the cgroup's OOM kill counter raised is reported as `OOMKilled`.
fn note_oom(c: &Container) {
    let record = c.snapshot();
    if record.exit_code != 0 && stats::oom_killed(&record.cgroups_path) {
        c.change(|r| r.reason = "OOMKilled".into());
    }
}

/// Sets EXITED from the shim's exit file (or "Unknown" without one); false if already exited.
pub(super) fn mark_exited(c: &Container, exit_file: &Path) -> bool {
    let exit = shim::read_exit(exit_file);
    c.change(|r| {
        if !r.state.may_run() {
            return false;
        }
        r.state = ContainerState::Exited;
        match exit {
            Some(e) => {
                r.exit_code = e.exit_code;
                r.finished_at_ns = e.exited_at_ns;
                r.reason = if e.exit_code == 0 {
                    "Completed"
                } else {
                    "Error"
                }
                .into();
            }
            None => {
                r.exit_code = 255;
                r.finished_at_ns = now_ns();
                r.reason = "Unknown".into();
                r.message = "the container's monitor exited without an exit code".into();
            }
        }
        true
    })
}

/// The signal StopContainer sends first: the config's `stop_signal`, else the image's
/// StopSignal (name or number), else SIGTERM.
pub fn stop_signal(images: &ImageStore, record: &ContainerRecord) -> i32 {
    if record.stop_signal > 0 {
        return record.stop_signal;
    }
    if let Some(n) = signal::from_cri(record.config.stop_signal) {
        return n;
    }
    images
        .find(&record.image_id)
        .and_then(|i| {
            i.config["config"]["StopSignal"]
                .as_str()
                .and_then(signal::by_name)
        })
        .unwrap_or(libc::SIGTERM)
}

/// ListContainers filters: id (prefix), state, pod id (prefix), labels.
fn matches(r: &ContainerRecord, f: &ContainerFilter) -> bool {
    (f.id.is_empty() || r.id.starts_with(&f.id))
        && f.state
            .as_ref()
            .is_none_or(|s| r.state.to_cri() as i32 == s.state)
        && (f.pod_sandbox_id.is_empty() || r.sandbox_id.starts_with(&f.pod_sandbox_id))
        && f.label_selector
            .iter()
            .all(|(k, v)| r.config.labels.get(k) == Some(v))
}
