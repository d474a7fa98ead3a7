//! What crust knows about one sandbox: the persisted [`SandboxRecord`] and the in-memory
//! [`Sandbox`] entry that guards it. Records change only through [`super::SandboxStore::update`].

use std::{path::PathBuf, sync::Arc};

use cri_api::v1::PodSandboxConfig;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::state::SandboxState;
use crate::{
    image::rootfs::ImageRootfs,
    network::cni::{Attachment, AttachmentStatus},
    oci_runtime::monitor::ExitWatch,
};

/// Record format version written by this crust.
pub const RECORD_VERSION: u32 = 1;

/// How the pod is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// The host's network namespace (`namespace_options.network == NODE`).
    Host,
    /// A pinned netns set up by CNI.
    Cni,
}

/// Resources a sandbox may hold. The first record of a run declares every resource the run may
/// create (write-ahead), so teardown after a crash at any step knows what to look for; teardown
/// treats "already gone" as success, and clears a flag once the resource is freed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Held {
    pub files: bool,
    pub shm: bool,
    pub pause: bool,
    /// The pinned netns file exists (cni mode).
    pub netns: bool,
    /// CNI ADD was attempted: DEL must run at least once.
    pub network: bool,
}

/// The pod's network settings: the sandbox key (netns path) and, once CNI ran, what it assigned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkSettings {
    pub sandbox_key: String,
    pub attachments: Vec<AttachmentStatus>,
}

/// The pause process, identified by pid and start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseProcess {
    pub pid: i32,
    pub start_time: u64,
}

/// What holds the pod's namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SandboxKind {
    /// A pause container (its pid in [`SandboxRecord::pause`]); records written before this
    /// field are pause sandboxes.
    #[default]
    Pause,
    /// Namespaces crustd made and pinned at these paths (`None`: the pod shares the node's);
    /// the network namespace is [`SandboxRecord::netns`]. No process belongs to the pod.
    Pinned {
        ipc: Option<PathBuf>,
        uts: Option<PathBuf>,
    },
}

impl SandboxKind {
    /// The pinned namespace files (IPC, then UTS).
    pub fn pins(&self) -> Vec<PathBuf> {
        match self {
            SandboxKind::Pause => Vec::new(),
            SandboxKind::Pinned { ipc, uts } => [ipc, uts].into_iter().flatten().cloned().collect(),
        }
    }

    pub fn is_pinned(&self) -> bool {
        matches!(self, SandboxKind::Pinned { .. })
    }
}

/// The persisted sandbox record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: String,
    pub name: String,
    /// The PodSandboxConfig as the client gave it, protobuf in base64.
    #[serde(with = "crate::store::proto_b64")]
    pub config: PodSandboxConfig,
    /// The config as the client sent it, to recognise kubelet's same-name retry.
    #[serde(with = "crate::store::proto_b64")]
    pub requested: PodSandboxConfig,
    pub runtime_handler: String,
    pub network_mode: NetworkMode,
    pub state: SandboxState,
    pub created_at_ns: i64,
    pub held: Held,
    /// What holds the namespaces; `held.pause` covers either kind (the pause container, or
    /// the pinned IPC/UTS namespaces).
    #[serde(default)]
    pub sandbox: SandboxKind,
    pub pause: Option<PauseProcess>,
    pub cgroups_path: String,
    pub checkpoint: String,
    /// Network attachments planned before ADD (cni mode).
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Network settings (cni mode), written before start and again with the IPs.
    #[serde(default)]
    pub network: Option<NetworkSettings>,
    /// The pinned netns (cni mode).
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// Why the sandbox is NOTREADY when it was not stopped on request.
    pub reason: Option<String>,
    /// The registry sandbox image's overlay rootfs; `None` for the built-in pause.
    #[serde(default)]
    pub rootfs: Option<ImageRootfs>,
    /// The pod-level resources of the last UpdatePodSandboxResources (overhead and the sum of
    /// the containers'; the request's id is left empty). Empty until one arrives.
    #[serde(default, with = "crate::store::proto_b64")]
    pub pod_resources: cri_api::v1::UpdatePodSandboxResourcesRequest,
    /// The RunPodSandbox order chosen for the pod and why; `None` in records written before the
    /// choice was stored (see [`SandboxRecord::network_order`]).
    #[serde(default)]
    pub network_order: Option<super::order::NetworkOrder>,
}

impl SandboxRecord {
    /// The pod's RunPodSandbox order (the stored choice, or how older records chose).
    pub fn network_order(&self) -> super::order::NetworkOrder {
        self.network_order
            .clone()
            .unwrap_or_else(|| super::order::NetworkOrder::legacy(&self.config))
    }
}

/// The in-memory entry for one sandbox.
#[derive(Debug)]
pub struct Sandbox {
    pub id: String,
    pub name: String,
    /// Serialises Run/Stop/Remove on this sandbox.
    pub(super) op: Arc<tokio::sync::Mutex<()>>,
    /// Held across "mutate record, write it to disk" so writes land in order.
    pub(super) persist: tokio::sync::Mutex<()>,
    pub(super) record: std::sync::RwLock<SandboxRecord>,
    pub(super) pause: std::sync::Mutex<Option<ExitWatch>>,
    /// Set by Stop/Remove/rollback before they kill the pause, so the exit handler leaves the
    /// transition (and the reason) to them.
    pub(super) stop_requested: std::sync::atomic::AtomicBool,
    /// Set once the store has forgotten the sandbox; no record is written after that.
    pub(super) forgotten: std::sync::atomic::AtomicBool,
    /// Flips to true when RunPodSandbox finished (either way); same-name retries wait on it.
    pub(super) settled: watch::Sender<bool>,
    /// Where the record lives on disk.
    pub(super) record_path: PathBuf,
    /// A record that could not be read keeps its raw error here.
    pub(super) load_error: Option<String>,
}

impl Sandbox {
    pub(super) fn new(record: SandboxRecord, record_path: PathBuf, settled: bool) -> Sandbox {
        Sandbox {
            id: record.id.clone(),
            name: record.name.clone(),
            op: Arc::new(tokio::sync::Mutex::new(())),
            persist: tokio::sync::Mutex::new(()),
            record: std::sync::RwLock::new(record),
            pause: std::sync::Mutex::new(None),
            stop_requested: std::sync::atomic::AtomicBool::new(false),
            forgotten: std::sync::atomic::AtomicBool::new(false),
            settled: watch::channel(settled).0,
            record_path,
            load_error: None,
        }
    }

    /// A copy of the current record.
    pub fn snapshot(&self) -> SandboxRecord {
        self.record
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The current state.
    /// Takes the sandbox's operation lock (CreateContainer holds it against Stop/Remove).
    pub async fn lock_op(&self) -> tokio::sync::OwnedMutexGuard<()> {
        Arc::clone(&self.op).lock_owned().await
    }

    pub fn state(&self) -> SandboxState {
        self.record.read().unwrap_or_else(|p| p.into_inner()).state
    }

    /// The error that made the record unreadable, for `Unknown` sandboxes.
    pub fn load_error(&self) -> Option<&str> {
        self.load_error.as_deref()
    }

    /// Whether the sandbox's namespaces are pinned (no process), without copying the record.
    pub(super) fn is_pinned(&self) -> bool {
        let record = self.record.read().unwrap_or_else(|p| p.into_inner());
        record.sandbox.is_pinned()
    }

    pub(super) fn pause_watch(&self) -> Option<ExitWatch> {
        self.pause.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn set_pause_watch(&self, w: Option<ExitWatch>) {
        *self.pause.lock().unwrap_or_else(|p| p.into_inner()) = w;
    }

    /// Waits until RunPodSandbox on this sandbox has finished.
    pub(super) async fn wait_settled(&self) {
        let mut rx = self.settled.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }
}
