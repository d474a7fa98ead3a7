//! The persisted container record and the in-memory entry around it.

use std::sync::{Arc, Mutex};

use cri_api::v1::ContainerConfig;
use serde::{Deserialize, Serialize};

use super::state::ContainerState;
use crate::oci_runtime::monitor::ExitWatch;

/// Record format version written by this crust.
pub const RECORD_VERSION: u32 = 1;

/// The shim that monitors a container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShimProcess {
    pub pid: i32,
    /// From /proc/<pid>/stat, to recognise the same process after a restart.
    pub start_time: u64,
    /// The runtime runs the container inside its sandbox process (runsc): StartContainer asks
    /// the shim to start it, which holds its stdio (see crust_shim::sandboxed).
    #[serde(default)]
    pub sandboxed: bool,
    /// The pid is the container's init in a shim-v2 shim (which holds the container): the
    /// exit status comes from the shim, the log from crust-shim task-io.
    #[serde(default)]
    pub task: bool,
}

/// Everything crust keeps about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    pub sandbox_id: String,
    #[serde(with = "crate::store::proto_b64")]
    pub config: ContainerConfig,
    /// The image as the request named it, and its id.
    pub image: String,
    pub image_id: String,
    pub runtime_handler: String,
    pub state: ContainerState,
    pub created_at_ns: i64,
    pub started_at_ns: i64,
    pub finished_at_ns: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// Absolute log path (the pod's log directory + the config's relative path), or empty.
    pub log_path: String,
    pub shim: Option<ShimProcess>,
    /// Its cgroup (cgroupfs path), for stats.
    #[serde(default)]
    pub cgroups_path: String,
    /// The signal StopContainer sends first, fixed at create: the config's `stop_signal`, else
    /// the image's StopSignal, else SIGTERM (0 in records written before it existed).
    #[serde(default)]
    pub stop_signal: i32,
    /// The images mounted as image volumes (RemoveImage refuses them while the container exists).
    #[serde(default)]
    pub image_volumes: Vec<String>,
}

/// A container in memory: its record, an operation lock, and its exit watch while it runs.
#[derive(Debug)]
pub struct Container {
    pub id: String,
    record: Mutex<ContainerRecord>,
    /// Serialises Start/Stop/Remove of this container.
    pub op: Arc<tokio::sync::Mutex<()>>,
    /// Held across "snapshot, write" so record writes land in order.
    pub persist: tokio::sync::Mutex<()>,
    watch: Mutex<Option<ExitWatch>>,
}

impl Container {
    pub fn new(record: ContainerRecord) -> Container {
        Container {
            id: record.id.clone(),
            record: Mutex::new(record),
            op: Arc::default(),
            persist: tokio::sync::Mutex::default(),
            watch: Mutex::default(),
        }
    }

    /// A copy of the record.
    pub fn snapshot(&self) -> ContainerRecord {
        self.record
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes the in-memory record (the store persists it).
    pub fn change<R>(&self, f: impl FnOnce(&mut ContainerRecord) -> R) -> R {
        f(&mut self.record.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn set_watch(&self, watch: Option<ExitWatch>) {
        *self.watch.lock().unwrap_or_else(|p| p.into_inner()) = watch;
    }

    pub fn watch(&self) -> Option<ExitWatch> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
