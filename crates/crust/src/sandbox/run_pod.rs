//! RunPodSandbox (SANDBOX.md §2): admission (name reservation, the write-ahead record), the
//! steps in the pod's order (files and shm, netns, CNI ADD, the pause's create and start), each
//! marked on an undo stack that runs in reverse on error, on a fresh deadline, never on the
//! cancelled request; and the releases Stop and Remove share with the rollback.

use std::{path::PathBuf, sync::Arc};

use cri_api::v1::PodSandboxConfig;

use super::{
    checkpoint::Checkpoint,
    files::{self, SandboxPaths},
    manager::SandboxManager,
    order, pinned,
    record::{Held, NetworkMode, NetworkSettings, Sandbox, SandboxKind, SandboxRecord},
    state::SandboxState,
    timing::StepTimes,
    validate, RunStep, SandboxError,
};
use crate::{
    config::SandboxMode,
    events::{now_ns, EventKind},
    failpoint,
    network::{cni::PodNetworkRequest, netns},
    rollback::Rollback,
    store::id::new_id,
};

/// One undoable step of RunPodSandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Undo {
    /// Delete the record, release the name.
    Forget,
    Files,
    Shm,
    /// Kill, wait for and delete the pause container.
    Pause,
    /// Unpin and delete the netns file.
    Netns,
    /// CNI DEL of every attachment.
    Network,
}

impl SandboxManager {
    /// RunPodSandbox: returns the id of a READY sandbox.
    pub async fn run(
        self: &Arc<Self>,
        config: PodSandboxConfig,
        handler: String,
    ) -> Result<String, SandboxError> {
        let this = self.clone();
        tokio::spawn(async move { this.run_detached(config, handler).await })
            .await
            .map_err(|e| SandboxError::Task(e.to_string()))?
    }

    async fn run_detached(
        self: Arc<Self>,
        config: PodSandboxConfig,
        handler: String,
    ) -> Result<String, SandboxError> {
        let mut record = self.prepare(config, handler)?;
        // Step 2: the sandbox image (pulled when it is a missing registry image); a pinned
        // sandbox runs nothing from it.
        if !record.sandbox.is_pinned() {
            record.rootfs = self
                .options
                .sandbox_image
                .resolve()
                .await
                .map_err(SandboxError::Image)?;
        }
        let (sandbox, _op) = match self.admit(record).await? {
            Admitted::New(sandbox, op) => (sandbox, op),
            Admitted::Existing(id) => return Ok(id),
        };
        let result = self.setup(&sandbox).await;
        sandbox.settled.send_replace(true);
        result.map(|()| sandbox.id.clone())
    }

    /// Step 1 and 3: validate, derive name/handler/network mode, build the stored config.
    fn prepare(
        &self,
        config: PodSandboxConfig,
        handler: String,
    ) -> Result<SandboxRecord, SandboxError> {
        let name = validate::sandbox_name(&config)?;
        validate::check_config(&config)?;
        let handler = self.handler(handler)?;
        let network_mode = validate::network_mode(&config);
        let cni = network_mode == NetworkMode::Cni;
        // plan() fails with NoConfig (FailedPrecondition) when no network config is usable.
        let attachments = if cni {
            self.network.plan(&config.annotations)?
        } else {
            Vec::new()
        };
        let runtime = self
            .options
            .handlers
            .get(&handler)
            .ok_or_else(|| SandboxError::UnknownHandler(handler.clone()))?;
        let network_order = order::choose(&config, &handler, runtime, cni)?;
        let id = new_id();
        let sandbox = self.sandbox_kind(&config, &handler, runtime, &id);
        let checkpoint = Checkpoint::from_config(&config, !cni).to_json();
        Ok(SandboxRecord {
            cgroups_path: cgroups_path(&config, &id),
            netns: cni.then(|| self.options.netns_dir.join(&id)),
            held: intended_resources(&config, cni),
            sandbox,
            id,
            name,
            config: config.clone(),
            requested: config,
            runtime_handler: handler,
            network_mode,
            state: SandboxState::Creating,
            created_at_ns: now_ns(),
            pause: None,
            checkpoint,
            attachments,
            network: None,
            reason: None,
            rootfs: None,
            pod_resources: Default::default(),
            network_order: Some(network_order),
        })
    }

    /// What holds the pod's namespaces: pinned ones where the handler allows it and the pod's
    /// containers do not share a PID namespace (which only a process can hold), else a pause.
    fn sandbox_kind(
        &self,
        config: &PodSandboxConfig,
        handler: &str,
        runtime: &crate::config::RuntimeConfig,
        id: &str,
    ) -> SandboxKind {
        use cri_api::v1::NamespaceMode;
        let ns = validate::namespace_options(config);
        let pinned = runtime.sandbox_mode(handler) == SandboxMode::Pinned;
        if !pinned || ns.pid == NamespaceMode::Pod as i32 {
            return SandboxKind::Pause;
        }
        let paths = self.paths(id);
        let own = |mode: i32, kind: &str| {
            (mode != NamespaceMode::Node as i32).then(|| pinned::pin_path(&paths, kind))
        };
        SandboxKind::Pinned {
            ipc: own(ns.ipc, "ipc"),
            uts: own(ns.network, "uts"),
        }
    }

    /// The runtime handler to use: the request's, or the default; unknown ones are refused.
    fn handler(&self, requested: String) -> Result<String, SandboxError> {
        let handler = if requested.is_empty() {
            self.options.default_handler.clone()
        } else {
            requested
        };
        if !self.options.handlers.contains_key(&handler) {
            return Err(SandboxError::UnknownHandler(handler));
        }
        Ok(handler)
    }

    /// Step 1 (names): reserve the name, or hand back the sandbox that already holds it when this
    /// is kubelet retrying the same request.
    async fn admit(&self, record: SandboxRecord) -> Result<Admitted, SandboxError> {
        loop {
            let taken = match self.store.admit(record.clone()) {
                Ok((sandbox, op)) => return Ok(Admitted::New(sandbox, op)),
                Err(taken) => taken,
            };
            let Ok(holder) = self.store.lookup(&taken.holder) else {
                continue; // released between the two calls: try again
            };
            holder.wait_settled().await;
            let snapshot = holder.snapshot();
            if snapshot.state.is_ready() && snapshot.requested == record.requested {
                tracing::info!(id = %holder.id, name = %holder.name, "same-name retry gets the existing sandbox");
                return Ok(Admitted::Existing(holder.id.clone()));
            }
            if self
                .store
                .by_name(&record.name)
                .is_some_and(|s| s.id == holder.id)
            {
                return Err(SandboxError::NameTaken {
                    name: record.name,
                    holder: holder.id.clone(),
                });
            }
        }
    }

    /// Steps 4-8 with rollback on failure.
    async fn setup(self: &Arc<Self>, sandbox: &Arc<Sandbox>) -> Result<(), SandboxError> {
        let mut undo = Rollback::default();
        match self.setup_steps(sandbox, &mut undo).await {
            Ok(()) => {
                undo.commit();
                tracing::info!(id = %sandbox.id, name = %sandbox.name, "sandbox ready");
                Ok(())
            }
            Err(e) => {
                tracing::warn!(id = %sandbox.id, error = %e, "RunPodSandbox failed; rolling back");
                let leftover = self.rollback(sandbox, undo, &e).await;
                Err(leftover.unwrap_or(e))
            }
        }
    }

    async fn setup_steps(
        self: &Arc<Self>,
        sandbox: &Arc<Sandbox>,
        undo: &mut Rollback<Undo>,
    ) -> Result<(), SandboxError> {
        let paths = self.paths(&sandbox.id);
        let mut times = StepTimes::default();
        // Step 4: write-ahead record before any side effect. Its fsync overlaps steps 5 and 6,
        // whose effects a reboot undoes; the network (IPs allocated on disk) waits for it.
        undo.push(Undo::Forget);
        let durable = self
            .store
            .persist_first(sandbox)
            .await
            .map_err(|e| SandboxError::from(e).at(RunStep::Persist))?;
        if let Err(e) = fail("run:after_persist", RunStep::Persist).await {
            let _ = durable.wait().await; // nothing of the sandbox outlives its rollback
            return Err(e);
        }
        times.lap(RunStep::Persist);
        let local = self.make_local(sandbox, &paths, undo).await;
        let durable = durable
            .wait()
            .await
            .map_err(|e| SandboxError::from(e).at(RunStep::Persist));
        local.and(durable)?;
        times.lap(RunStep::Files);
        self.start_in_order(sandbox, &paths, undo, &mut times)
            .await?;
        self.finish(sandbox).await?;
        times.lap(RunStep::Finish);
        tracing::debug!(id = %sandbox.id, steps_us = %times.summary(), "RunPodSandbox step times");
        for (step, took) in times.laps() {
            crate::metrics::global().run_step(step, took);
        }
        Ok(())
    }

    /// Steps 5 and 6: the netns, and the files and shm, are independent, so they are made side
    /// by side (all three undo steps are declared first; each undo is idempotent).
    async fn make_local(
        &self,
        sandbox: &Arc<Sandbox>,
        paths: &SandboxPaths,
        undo: &mut Rollback<Undo>,
    ) -> Result<(), SandboxError> {
        let record = sandbox.snapshot();
        let cni = record.network_mode == NetworkMode::Cni;
        let shm = needs_shm(&record.config);
        self.mark(undo, Undo::Files);
        if shm {
            self.mark(undo, Undo::Shm);
        }
        if cni {
            self.mark(undo, Undo::Netns);
        }
        let sysctls = pinned::net_sysctls(&record);
        let netns = async {
            if !cni {
                return Ok(());
            }
            // Beside the files: its own duration goes to the step histogram.
            let started = std::time::Instant::now();
            let made = self.create_netns(sandbox, sysctls).await;
            crate::metrics::global().run_step(RunStep::Netns.key(), started.elapsed());
            made
        };
        let local = write_files_and_shm(record, paths.clone(), shm);
        let (local, netns) = tokio::join!(local, netns);
        local.and(netns)?;
        fail("run:after_files", RunStep::Files).await?;
        if cni {
            fail("run:after_netns", RunStep::Netns).await?;
        }
        Ok(())
    }

    /// Step 7: create and start the pause, and set up the network before starting it
    /// (network-first pods: the ADD overlaps the creation) or after (the default).
    async fn start_in_order(
        self: &Arc<Self>,
        sandbox: &Arc<Sandbox>,
        paths: &SandboxPaths,
        undo: &mut Rollback<Undo>,
        times: &mut StepTimes,
    ) -> Result<(), SandboxError> {
        let record = sandbox.snapshot();
        let cni = record.network_mode == NetworkMode::Cni;
        let net_first = cni && record.network_order().network_first();
        if net_first {
            // Both need only the netns: CNI ADD and the pause's creation overlap; the pause
            // starts after both. Undo runs Pause before Network, as in the sequential order.
            self.mark(undo, Undo::Network);
            self.mark(undo, Undo::Pause);
            let (network, pause) = tokio::join!(
                self.add_network(sandbox),
                self.create_pause_marked(sandbox, paths)
            );
            network.and(pause)?;
            times.lap(RunStep::Network); // the overlapped creation included
        } else {
            self.create_pause(sandbox, paths, undo).await?;
        }
        times.lap(RunStep::Create);
        if cni && !net_first {
            self.write_sandbox_key(sandbox);
        }
        self.start_pause(sandbox).await?;
        times.lap(RunStep::Start);
        if cni && !net_first {
            self.setup_network(sandbox, undo).await?;
            times.lap(RunStep::Network);
        }
        Ok(())
    }

    /// Step 5: the sandbox key, a pinned network namespace, with `sysctls` (a pinned pod's
    /// `net.*` ones, see [`pinned::net_sysctls`]) written in it.
    async fn create_netns(
        &self,
        sandbox: &Arc<Sandbox>,
        sysctls: Vec<(String, String)>,
    ) -> Result<(), SandboxError> {
        let path = self.options.netns_dir.join(&sandbox.id);
        netns::create(path.clone(), sysctls)
            .await
            .map_err(|source| {
                SandboxError::Io {
                    what: "create netns",
                    path,
                    source,
                }
                .at(RunStep::Netns)
            })
    }

    /// CNI ADD for every planned attachment (DEL is owed from the moment ADD is attempted).
    async fn setup_network(
        &self,
        sandbox: &Arc<Sandbox>,
        undo: &mut Rollback<Undo>,
    ) -> Result<(), SandboxError> {
        self.mark(undo, Undo::Network);
        self.add_network(sandbox).await
    }

    /// CNI ADD, its undo already marked.
    async fn add_network(&self, sandbox: &Arc<Sandbox>) -> Result<(), SandboxError> {
        let record = sandbox.snapshot();
        let request = self.network_request(&record);
        let statuses = self
            .network
            .setup(&request, &record.attachments)
            .await
            .map_err(|e| SandboxError::from(e).at(RunStep::Network))?;
        // Staged: persisted with the next commit point (the pause pid, or READY). A crash before
        // that loses only the IPs; the cache entries and the "network" flag still drive DEL.
        let key = request.netns.clone();
        self.store.stage(sandbox, |r| {
            r.network = Some(NetworkSettings {
                sandbox_key: key,
                attachments: statuses,
            })
        });
        fail("run:after_network", RunStep::Network).await
    }

    /// Network settings holding only the sandbox key, before start (the default order).
    fn write_sandbox_key(&self, sandbox: &Arc<Sandbox>) {
        // The netns path itself is already durable (first record); this is the iSulad-shaped
        // settings object, persisted with READY.
        self.store.stage(sandbox, |r| {
            let key = r
                .netns
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            r.network = Some(NetworkSettings {
                sandbox_key: key,
                attachments: Vec::new(),
            });
        });
    }

    async fn start_pause(&self, sandbox: &Arc<Sandbox>) -> Result<(), SandboxError> {
        fail("run:before_start", RunStep::Start).await?;
        self.controller
            .start(&sandbox.snapshot())
            .await
            .map_err(|e| SandboxError::from(e).at(RunStep::Start))?;
        fail("run:after_start", RunStep::Start).await
    }

    /// What the pod network needs to know; the netns path is empty once the netns is gone.
    fn network_request(&self, record: &SandboxRecord) -> PodNetworkRequest {
        let meta = record.config.metadata.clone().unwrap_or_default();
        let port_mappings = Checkpoint::parse(&record.checkpoint)
            .map(|c| c.data.port_mappings)
            .unwrap_or_else(|| {
                Checkpoint::from_config(&record.config, false)
                    .data
                    .port_mappings
            });
        PodNetworkRequest {
            id: record.id.clone(),
            netns: netns::cni_arg(record.netns.as_deref()),
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            annotations: record.config.annotations.clone(),
            port_mappings,
            dns: record.config.dns_config.clone(),
        }
    }

    async fn create_pause(
        self: &Arc<Self>,
        sandbox: &Arc<Sandbox>,
        paths: &SandboxPaths,
        undo: &mut Rollback<Undo>,
    ) -> Result<(), SandboxError> {
        self.mark(undo, Undo::Pause);
        self.create_pause_marked(sandbox, paths).await
    }

    /// The pause's creation, its undo already marked.
    async fn create_pause_marked(
        self: &Arc<Self>,
        sandbox: &Arc<Sandbox>,
        paths: &SandboxPaths,
    ) -> Result<(), SandboxError> {
        let record = sandbox.snapshot();
        let process = self
            .controller
            .create(&record, paths, record.netns.as_deref())
            .await
            .map_err(|e| SandboxError::from(e).at(RunStep::Create))?;
        if let Some((pause, watch)) = process {
            sandbox.set_pause_watch(Some(watch.clone()));
            // Staged: persisted with READY (or the failure). After a crash before that, recovery
            // asks the runtime for the pid (the first record already says a pause may exist).
            self.store.stage(sandbox, |r| r.pause = Some(pause));
            self.spawn_exit_handler(sandbox.clone(), watch);
        }
        self.publish(sandbox, EventKind::Created);
        fail("run:after_create", RunStep::Create).await
    }

    /// Step 8: READY, persisted, STARTED published.
    async fn finish(&self, sandbox: &Arc<Sandbox>) -> Result<(), SandboxError> {
        // A pinned sandbox has no process whose exit could have ended it.
        let pause = !sandbox.is_pinned();
        let exited = pause && sandbox.pause_watch().is_none_or(|w| w.has_exited());
        if exited {
            return Err(SandboxError::PauseExited.at(RunStep::Finish));
        }
        self.store
            .update(sandbox, |r| {
                if r.state.can_become_ready() {
                    r.state = SandboxState::Ready;
                }
            })
            .await
            .map_err(|e| SandboxError::from(e).at(RunStep::Finish))?;
        self.publish(sandbox, EventKind::Started);
        Ok(())
    }

    /// Records that `step` is about to be attempted and how to undo it. (Its "held" flag is already
    /// on disk: the first record declares every resource the run may create.)
    fn mark(&self, undo: &mut Rollback<Undo>, step: Undo) {
        undo.push(step);
    }

    /// Undoes the steps in reverse on a fresh deadline. Returns the error to report when something
    /// could not be undone (the sandbox then stays NOTREADY with what it still holds).
    async fn rollback(
        &self,
        sandbox: &Arc<Sandbox>,
        undo: Rollback<Undo>,
        cause: &SandboxError,
    ) -> Option<SandboxError> {
        let forget = undo.steps().contains(&Undo::Forget);
        let created = undo.steps().contains(&Undo::Pause);
        // Undoing `Forget` is a no-op here: the record goes last, and only when all else is undone.
        let failed = undo.unwind(|step| self.undo(sandbox, *step)).await;
        // What the sandbox still holds is exactly what could not be undone (steps never attempted
        // were declared in the first record but need no teardown).
        self.store.stage(sandbox, |r| {
            r.held = Held::default();
            for (step, _) in &failed {
                set_held(&mut r.held, *step, true);
            }
        });
        if failed.is_empty() && forget {
            match self.store.forget(sandbox).await {
                Ok(()) if created => self.publish(sandbox, EventKind::Deleted),
                Ok(()) => {}
                Err(e) => tracing::warn!(id = %sandbox.id, error = %e, "cannot delete the record"),
            }
            if !self.store.is_current(sandbox) {
                return None;
            }
        }
        self.keep_not_ready(sandbox, cause, &failed).await
    }

    /// Leaves a half-built sandbox NOTREADY (persisted) for Stop/Remove; the error to report when
    /// something could not be undone.
    async fn keep_not_ready(
        &self,
        sandbox: &Sandbox,
        cause: &SandboxError,
        failed: &[(Undo, SandboxError)],
    ) -> Option<SandboxError> {
        let reasons: Vec<String> = failed.iter().map(|(s, e)| format!("{s:?}: {e}")).collect();
        let reason = format!(
            "RunPodSandbox failed: {cause}; not undone: {}",
            reasons.join("; ")
        );
        let _ = self
            .store
            .update(sandbox, |r| {
                r.state = SandboxState::NotReady;
                r.reason = Some(reason);
            })
            .await;
        (!failed.is_empty()).then(|| SandboxError::Leftover {
            id: sandbox.id.clone(),
            reasons: format!("{cause}; {}", reasons.join("; ")),
        })
    }

    pub(super) async fn undo(
        &self,
        sandbox: &Arc<Sandbox>,
        step: Undo,
    ) -> Result<(), SandboxError> {
        let paths = self.paths(&sandbox.id);
        match step {
            Undo::Pause => self.release_pause(sandbox, &paths).await?,
            Undo::Network => {
                let record = sandbox.snapshot();
                let request = self.network_request(&record);
                self.network.teardown(&request, &record.attachments).await?;
            }
            Undo::Netns => {
                if let Some(path) = sandbox.snapshot().netns {
                    blocking_io("remove netns", path, netns::remove).await?;
                }
            }
            Undo::Shm => blocking_io("unmount shm", paths.shm(), files::unmount_shm).await?,
            // The pod files live in the state dir, which goes with them.
            Undo::Files => blocking_io("remove", paths.state_dir, files::remove_dir).await?,
            Undo::Forget => {}
        }
        // Staged: a crash before the next write leaves the flag set, and teardown is idempotent.
        self.store
            .stage(sandbox, |r| set_held(&mut r.held, step, false));
        Ok(())
    }

    /// Stops the pause (kill, wait) and deletes it from the runtime.
    async fn release_pause(
        &self,
        sandbox: &Sandbox,
        paths: &SandboxPaths,
    ) -> Result<(), SandboxError> {
        let record = sandbox.snapshot();
        self.kill_pause(sandbox, &record).await?;
        self.controller.delete(&record, paths).await?;
        Ok(())
    }
}

enum Admitted {
    New(Arc<Sandbox>, tokio::sync::OwnedMutexGuard<()>),
    Existing(String),
}

/// Every resource a run may create, declared in the first (write-ahead) record so a crash at any
/// later step leaves Stop/Remove enough to find it; they treat "absent" as done.
fn intended_resources(config: &PodSandboxConfig, cni: bool) -> Held {
    Held {
        files: true,
        shm: needs_shm(config),
        pause: true,
        netns: cni,
        network: cni,
    }
}

/// `<cgroup_parent or /crust>/<id>` (cgroupfs driver).
fn cgroups_path(config: &PodSandboxConfig, id: &str) -> String {
    let parent = config
        .linux
        .as_ref()
        .map_or("", |l| l.cgroup_parent.as_str());
    let parent = if parent.is_empty() { "/crust" } else { parent };
    format!("{}/{id}", parent.trim_end_matches('/'))
}

/// A pod gets its own shm tmpfs unless it shares the node's IPC namespace.
fn needs_shm(config: &PodSandboxConfig) -> bool {
    validate::namespace_options(config).ipc != cri_api::v1::NamespaceMode::Node as i32
}

fn set_held(held: &mut Held, step: Undo, value: bool) {
    match step {
        Undo::Files => held.files = value,
        Undo::Shm => held.shm = value,
        Undo::Pause => held.pause = value,
        Undo::Netns => held.netns = value,
        Undo::Network => held.network = value,
        Undo::Forget => {}
    }
}

pub(super) fn held(held: &Held, step: Undo) -> bool {
    match step {
        Undo::Files => held.files,
        Undo::Shm => held.shm,
        Undo::Pause => held.pause,
        Undo::Netns => held.netns,
        Undo::Network => held.network,
        Undo::Forget => false,
    }
}

/// Step 6: hostname, hosts, resolv.conf, then the shm tmpfs when the pod needs one.
async fn write_files_and_shm(
    record: SandboxRecord,
    paths: SandboxPaths,
    shm: bool,
) -> Result<(), SandboxError> {
    // One trip to a blocking thread for both; the error names the step that failed.
    let done = tokio::task::spawn_blocking(move || {
        files::write_files(&paths, &record.config, record.network_mode)
            .map_err(|e| (RunStep::Files, paths.state_dir.clone(), e))?;
        if shm {
            files::mount_shm(&paths.shm()).map_err(|e| (RunStep::Shm, paths.shm(), e))?;
        }
        Ok(())
    })
    .await
    .map_err(|e| SandboxError::Task(e.to_string()).at(RunStep::Files))?;
    done.map_err(|(step, path, source)| {
        let what = match step {
            RunStep::Shm => "mount shm",
            _ => "write files in",
        };
        SandboxError::Io { what, path, source }.at(step)
    })
}

/// Runs blocking file-system work (mounts, writes) off the async workers.
pub(super) async fn blocking_io<F>(
    what: &'static str,
    path: PathBuf,
    work: F,
) -> Result<(), SandboxError>
where
    F: FnOnce(&std::path::Path) -> std::io::Result<()> + Send + 'static,
{
    let p = path.clone();
    let result = tokio::task::spawn_blocking(move || work(&p))
        .await
        .map_err(|e| SandboxError::Task(e.to_string()))?;
    result.map_err(|source| SandboxError::Io { what, path, source })
}

/// A test failpoint at `name`, reported as a failure of `step`.
async fn fail(name: &'static str, step: RunStep) -> Result<(), SandboxError> {
    tracing::trace!(point = name, "RunPodSandbox step");
    failpoint::hit(name)
        .await
        .map_err(|()| SandboxError::Failpoint(name).at(step))
}
