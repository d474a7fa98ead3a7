//! Restart recovery (SANDBOX.md §6): load every record, reconcile it with what is really there, and
//! keep unreadable records as `Unknown` sandboxes that Remove can clean. Nothing is deleted here.

use std::sync::Arc;

use super::{
    manager::SandboxManager,
    pinned,
    record::{Held, NetworkMode, Sandbox, SandboxKind, SandboxRecord, RECORD_VERSION},
    state::SandboxState,
};
use crate::{network::netns, oci_runtime::monitor::Process, store::load_record};

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecoveryReport {
    pub ready: usize,
    pub not_ready: usize,
    pub unreadable: usize,
}

impl SandboxManager {
    /// Loads and reconciles every sandbox record. Call once, before serving.
    pub async fn recover(self: &Arc<Self>) -> std::io::Result<RecoveryReport> {
        let mut report = RecoveryReport::default();
        let dir = self.store().dir().to_path_buf();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(report),
            Err(e) => return Err(e),
        };
        crate::store::sweep_removing(&dir);
        for entry in entries {
            let entry = entry?;
            let id = entry.file_name().to_string_lossy().into_owned();
            if !entry.file_type()?.is_dir() || crate::store::is_removing(&id) {
                continue;
            }
            crate::store::sweep_temp(&entry.path());
            let path = entry.path().join("sandbox.json");
            if crate::store::remove_unborn(&entry.path(), &path) {
                continue;
            }
            match load_record::<SandboxRecord>(&path, RECORD_VERSION) {
                Ok(record) => self.recover_one(record, path.clone(), &mut report).await,
                Err(e) => {
                    tracing::error!(id = %id, error = %e, "unreadable sandbox record kept as NOTREADY");
                    report.unreadable += 1;
                    self.store()
                        .restore(Arc::new(unknown_sandbox(&id, path, e.to_string())));
                }
            }
        }
        self.remove_stale_netns();
        tracing::info!(?report, "sandbox recovery done");
        Ok(report)
    }

    /// Netns files no record owns (a crash between pinning and persisting can leave one).
    fn remove_stale_netns(&self) {
        let Ok(entries) = std::fs::read_dir(self.netns_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if self.store().lookup(&id).is_ok_and(|s| s.id == id) {
                continue;
            }
            match netns::remove(&entry.path()) {
                Ok(()) => tracing::info!(path = %entry.path().display(), "removed a stale netns"),
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = %e, "cannot remove a stale netns")
                }
            }
        }
    }

    async fn recover_one(
        self: &Arc<Self>,
        record: SandboxRecord,
        path: std::path::PathBuf,
        report: &mut RecoveryReport,
    ) {
        let was = record.state;
        let sandbox = Arc::new(Sandbox::new(record, path, true));
        self.store().restore(sandbox.clone());
        let record = sandbox.snapshot();
        let netns = record.netns.filter(|_| record.held.netns);
        let (alive, gone) = match record.sandbox {
            SandboxKind::Pause => (
                self.recover_pause(&sandbox).await,
                "the pause process exited while crustd was down",
            ),
            kind @ SandboxKind::Pinned { .. } => (
                tokio::task::spawn_blocking(move || pinned::intact(&kind, netns.as_deref()))
                    .await
                    .unwrap_or(false),
                "the pod's pinned namespaces are gone",
            ),
        };
        let reason = match was {
            SandboxState::Creating => Some("crustd restarted during RunPodSandbox"),
            SandboxState::Ready => (!alive).then_some(gone),
            _ => None,
        };
        if let Some(reason) = reason {
            if let Err(e) = self.mark_stopped(&sandbox, Some(reason.to_string())).await {
                tracing::error!(id = %sandbox.id, error = %e, "cannot record recovered state");
            }
        }
        if sandbox.state().is_ready() {
            report.ready += 1;
        } else {
            report.not_ready += 1;
        }
    }

    /// Watches the recovered sandbox's pause again; false when it is gone.
    async fn recover_pause(self: &Arc<Self>, sandbox: &Arc<Sandbox>) -> bool {
        let watch = match sandbox.snapshot().pause {
            Some(p) => {
                let alive = Process::open(p.pid, Some(p.start_time)).ok().flatten();
                self.controller().watch(&sandbox.snapshot(), alive)
            }
            None => self.reattach(sandbox).await,
        };
        let Some(watch) = watch else {
            return false;
        };
        sandbox.set_pause_watch(Some(watch.clone()));
        self.spawn_exit_handler(sandbox.clone(), watch);
        true
    }

    /// The pause of a record that may hold one but does not name it (crustd died between `runc
    /// create` and the next record write): found through the runtime and staged into the record.
    async fn reattach(&self, sandbox: &Sandbox) -> Option<crate::oci_runtime::monitor::ExitWatch> {
        let record = sandbox.snapshot();
        if !record.held.pause {
            return None;
        }
        match self.controller().reattach(&record).await {
            Ok(Some((pause, watch))) => {
                tracing::info!(id = %sandbox.id, pid = pause.pid, "found the pause through the runtime");
                self.store().stage(sandbox, |r| r.pause = Some(pause));
                Some(watch)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(id = %sandbox.id, error = %e, "cannot ask the runtime for the pause");
                None
            }
        }
    }
}

/// A placeholder for a record that could not be read: NOTREADY, removable, holding "everything".
fn unknown_sandbox(id: &str, path: std::path::PathBuf, error: String) -> Sandbox {
    let record = SandboxRecord {
        id: id.to_string(),
        name: String::new(),
        config: Default::default(),
        requested: Default::default(),
        runtime_handler: String::new(),
        network_mode: NetworkMode::Host,
        state: SandboxState::Unknown,
        created_at_ns: 0,
        held: Held {
            files: true,
            shm: true,
            pause: true,
            netns: true,
            network: false,
        },
        sandbox: SandboxKind::Pause,
        pause: None,
        cgroups_path: String::new(),
        checkpoint: String::new(),
        attachments: Vec::new(),
        network: None,
        netns: None,
        reason: Some(format!("unreadable record: {error}")),
        rootfs: None,
        pod_resources: Default::default(),
        network_order: None,
    };
    let mut sandbox = Sandbox::new(record, path, true);
    sandbox.load_error = Some(error);
    sandbox
}
