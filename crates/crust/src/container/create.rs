//! CreateContainer: under the pod's operation lock (so it cannot race StopPodSandbox: C4), the
//! record written ahead of any side effect, the overlay rootfs mounted, the OCI spec written and
//! the container created (crust-shim running `runc create`, or the shim v2 task with its
//! task-io); a failure undoes all of it.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use cri_api::v1::ContainerConfig;

use super::{
    host_facts::{HostFacts, ImageVolume},
    manager::{io, stop_signal, task, ContainerManager},
    record::{Container, ContainerRecord, ShimProcess},
    shim::{self, ShimArgs},
    spec::{container_spec, PodNamespaces, SpecInput},
    state::ContainerState,
    validate::{self, invalid},
    ContainerError,
};
use crate::{
    events::{now_ns, EventKind},
    image::rootfs,
    oci_runtime::monitor::start_time,
    sandbox::record::{SandboxKind, SandboxRecord},
    store::id::new_id,
};

impl ContainerManager {
    /// CreateContainer.
    pub async fn create(
        self: &Arc<Self>,
        pod_id: &str,
        config: ContainerConfig,
    ) -> Result<String, ContainerError> {
        let meta = config
            .metadata
            .clone()
            .ok_or_else(|| invalid("config.metadata", "is required"))?;
        if meta.name.is_empty() {
            return Err(invalid("config.metadata.name", "is required"));
        }
        let image_ref = config
            .image
            .as_ref()
            .map(|i| i.image.clone())
            .unwrap_or_default();
        if image_ref.is_empty() {
            return Err(invalid("config.image", "an image reference is required"));
        }
        let sandbox = self
            .sandboxes
            .store()
            .lookup(pod_id)
            .map_err(ContainerError::Sandbox)?;
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let _pod_op = sandbox.lock_op().await;
            let pod = sandbox.snapshot();
            if !pod.state.accepts_containers() {
                return Err(ContainerError::SandboxNotReady {
                    id: pod.id.clone(),
                    state: format!("{:?}", pod.state),
                });
            }
            this.create_in(&pod, config, image_ref, meta.attempt).await
        })
        .await
        .map_err(|e| ContainerError::Task(e.to_string()))?
    }

    async fn create_in(
        &self,
        pod: &SandboxRecord,
        config: ContainerConfig,
        image_ref: String,
        attempt: u32,
    ) -> Result<String, ContainerError> {
        validate::check_config(pod, &config)?;
        let features = self.runtime(&pod.runtime_handler)?.features();
        validate::check_recursive_read_only(&config, &pod.runtime_handler, &features)?;
        self.pid_target(pod, &config)?;
        // ImageSpec.image_ref (the digest kubelet resolved) wins over the name when given.
        let wanted = config
            .image
            .as_ref()
            .map(|i| i.image_ref.clone())
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| image_ref.clone());
        let image = self
            .images
            .find(&wanted)
            .ok_or_else(|| ContainerError::ImageNotFound(wanted.clone()))?;
        let lowers = rootfs::ImageRootfs::of(&self.images, &image)
            .ok_or_else(|| ContainerError::ImageNotFound(image_ref.clone()))?
            .lowers;
        let (volumes, volume_images) = self.image_volumes(&config)?;
        let name = container_name(pod, &config, attempt);
        let id = new_id();
        self.registrar
            .reserve(&name, &id)
            .map_err(|t| ContainerError::NameTaken {
                name: name.clone(),
                holder: t.holder,
            })?;
        let record = ContainerRecord {
            id: id.clone(),
            name,
            sandbox_id: pod.id.clone(),
            log_path: log_path(pod, &config),
            config,
            image: image_ref,
            image_id: image.id.clone(),
            runtime_handler: pod.runtime_handler.clone(),
            state: ContainerState::Created,
            created_at_ns: now_ns(),
            started_at_ns: 0,
            finished_at_ns: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            shim: None,
            cgroups_path: container_cgroups_path(pod, &id),
            stop_signal: 0,
            image_volumes: volume_images,
        };
        let record = ContainerRecord {
            stop_signal: stop_signal(&self.images, &record),
            ..record
        };
        let container = Arc::new(Container::new(record));
        match self
            .build(&container, pod, &image.config, lowers, volumes)
            .await
        {
            Ok(()) => {
                self.containers.insert(&id, Arc::clone(&container));
                self.publish(&container, EventKind::Created);
                tracing::info!(id = %id, pod = %pod.id, "container created");
                Ok(id)
            }
            Err(e) => {
                tracing::warn!(id = %id, error = %e, "CreateContainer failed; undoing");
                if let Err(undo) = self.teardown(&container).await {
                    tracing::error!(id = %id, error = %undo, "undo of CreateContainer failed; the container stays listed for RemoveContainer");
                    container.change(|r| {
                        r.state = ContainerState::Exited;
                        r.reason = "CreateFailed".into();
                        r.message = e.to_string();
                    });
                    self.containers.insert(&id, Arc::clone(&container));
                    let _ = self.persist(&container).await;
                }
                Err(e)
            }
        }
    }

    /// The side effects of create: record, rootfs, spec, shim (runc create).
    async fn build(
        &self,
        c: &Arc<Container>,
        pod: &SandboxRecord,
        image_config: &serde_json::Value,
        lowers: Vec<PathBuf>,
        volumes: Vec<ImageVolume>,
    ) -> Result<(), ContainerError> {
        let dir = self.dir(&c.id);
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        self.persist(c).await?;
        let mount_dir = dir.clone();
        let root = tokio::task::spawn_blocking(move || rootfs::mount_overlay(&lowers, &mount_dir))
            .await
            .map_err(|e| ContainerError::Task(e.to_string()))?
            .map_err(io("mount rootfs in", &dir))?;
        let record = c.snapshot();
        let (config, image_user, rootfs) = (
            record.config.clone(),
            image_config["config"]["User"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            root.clone(),
        );
        let bundle = dir.clone();
        let (log_dir, log_path) = (pod.config.log_directory.clone(), record.log_path.clone());
        let handler = self.runtime(&record.runtime_handler)?.handler_config();
        let host_devices = !handler.privileged_without_host_devices;
        let facts = tokio::task::spawn_blocking(move || {
            validate::check_log_target(&log_dir, &log_path)?;
            HostFacts::gather(
                &config,
                &image_user,
                &bundle,
                &rootfs,
                &volumes,
                host_devices,
            )
        })
        .await
        .map_err(task)??;
        let spec = self.spec(&record, pod, image_config, &root, &facts)?;
        let file = dir.join("config.json");
        std::fs::write(&file, spec.to_string()).map_err(io("write", &file))?;
        let runtime = self.runtime(&record.runtime_handler)?;
        let shim = if runtime.holds_stdio() {
            let (shim, id) = (&self.options.shim, &c.id);
            super::task::create(runtime, shim, id, &dir, &record, &pod.config.log_directory).await?
        } else {
            self.start_shim(c, &record, pod, &dir).await?
        };
        c.change(|r| r.shim = Some(shim.clone()));
        self.persist(c).await?;
        self.watch(c, &shim);
        Ok(())
    }

    /// crust-shim for a container of an `oci` handler: it runs `runc create` and monitors.
    async fn start_shim(
        &self,
        c: &Arc<Container>,
        record: &ContainerRecord,
        pod: &SandboxRecord,
        dir: &Path,
    ) -> Result<ShimProcess, ContainerError> {
        let runtime = self.runtime(&record.runtime_handler)?.cli().clone();
        let args = ShimArgs {
            id: c.id.clone(),
            bundle: dir.to_path_buf(),
            runtime,
            log_path: if record.log_path.is_empty() {
                PathBuf::from("/dev/null")
            } else {
                PathBuf::from(&record.log_path)
            },
            // The shim follows no symlink below the pod's log directory.
            log_root: (!record.log_path.is_empty())
                .then(|| PathBuf::from(&pod.config.log_directory)),
            exit_file: dir.join("exit.json"),
            tty: record.config.tty,
            stdin: record.config.stdin,
            stdin_once: record.config.stdin_once,
        };
        let started = shim::start(&self.options.shim, args).await?;
        Ok(ShimProcess {
            pid: started.shim_pid,
            start_time: start_time(started.shim_pid).ok().flatten().unwrap_or(0),
            sandboxed: started.sandboxed,
            task: false,
        })
    }

    fn spec(
        &self,
        record: &ContainerRecord,
        pod: &SandboxRecord,
        image_config: &serde_json::Value,
        root: &Path,
        facts: &HostFacts,
    ) -> Result<serde_json::Value, ContainerError> {
        let paths = self.sandboxes.paths(&pod.id);
        let pod_ns = match &pod.sandbox {
            SandboxKind::Pause => PodNamespaces::Pause(pod.pause.as_ref().map_or(0, |p| p.pid)),
            SandboxKind::Pinned { ipc, uts } => PodNamespaces::Pinned {
                ipc: ipc.as_deref(),
                uts: uts.as_deref(),
            },
        };
        let shm = paths.shm();
        let cgroups_path = record.cgroups_path.clone();
        let target_pid = match self.pid_target(pod, &record.config)? {
            Some(target) => Some(self.init_pid(&target)?),
            None => None,
        };
        let input = SpecInput {
            rootfs: root,
            image_config,
            pod: &pod.config,
            pod_ns,
            netns: pod.netns.as_deref(),
            hosts: &paths.hosts(),
            resolv_conf: &paths.resolv_conf(),
            hostname: &paths.hostname(),
            shm: pod.held.shm.then_some(shm.as_path()),
            cgroups_path: &cgroups_path,
            user: &facts.user,
            target_pid,
            seccomp: facts.seccomp.as_ref(),
            devices: &facts.devices,
            caps: &facts.caps,
            mount_sources: &facts.mount_sources,
        };
        let mut spec = container_spec(&record.config, &input);
        let handler = self.runtime(&record.runtime_handler)?.handler_config();
        spec["annotations"] = super::spec::annotations(record, pod, handler);
        if let Some(profile) = &facts.apparmor {
            spec["process"]["apparmorProfile"] = serde_json::json!(profile);
        }
        Ok(spec)
    }
}

/// kubelet's container name: `k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`.
fn container_name(pod: &SandboxRecord, config: &ContainerConfig, attempt: u32) -> String {
    let pm = pod.config.metadata.clone().unwrap_or_default();
    let name = config.metadata.as_ref().map_or("", |m| m.name.as_str());
    format!(
        "k8s_{name}_{}_{}_{}_{attempt}",
        pm.name, pm.namespace, pm.uid
    )
}

/// The pod's log directory joined with the config's relative log path (empty when either is).
fn log_path(pod: &SandboxRecord, config: &ContainerConfig) -> String {
    let dir = &pod.config.log_directory;
    if dir.is_empty() || config.log_path.is_empty() {
        return String::new();
    }
    Path::new(dir).join(&config.log_path).display().to_string()
}

/// The container's cgroup: a sibling of the pause's under the pod's cgroup parent.
fn container_cgroups_path(pod: &SandboxRecord, id: &str) -> String {
    match pod.cgroups_path.rsplit_once('/') {
        Some((parent, _)) => format!("{parent}/{id}"),
        None => format!("/crust/{id}"),
    }
}
