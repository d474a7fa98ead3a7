//! Container records after a restart: a live shim keeps its container running (watched again);
//! otherwise its exit file (or the lack of one) settles the state. Unreadable records are kept,
//! listed as UNKNOWN and removable.

use std::sync::Arc;

use cri_api::v1::ContainerConfig;

use super::{
    manager::{io, mark_exited, ContainerManager},
    record::{Container, ContainerRecord, RECORD_VERSION},
    state::ContainerState,
    ContainerError,
};
use crate::store::load_record;

impl ContainerManager {
    /// Loads the records after a restart: a live shim keeps its container running (watched);
    /// otherwise the exit file (or its absence) settles the state. Unreadable records are kept,
    /// listed as UNKNOWN and removable.
    pub async fn recover(&self) -> Result<(), ContainerError> {
        let root = &self.options.root_dir;
        std::fs::create_dir_all(root).map_err(io("create", root))?;
        crate::store::sweep_removing(root);
        let entries = std::fs::read_dir(root).map_err(io("read", root))?;
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if crate::store::is_removing(&id) {
                continue; // a removal the sweep could not finish (it said why)
            }
            crate::store::sweep_temp(&entry.path());
            let path = entry.path().join("container.json");
            if crate::store::remove_unborn(&entry.path(), &path) {
                continue;
            }
            let record = match load_record::<ContainerRecord>(&path, RECORD_VERSION) {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(id = %id, error = %e, "unreadable container record kept; listed UNKNOWN");
                    unknown_record(&id, &e.to_string())
                }
            };
            let _ = self.registrar.reserve(&record.name, &record.id);
            let c = Arc::new(Container::new(record.clone()));
            self.containers.insert(&id, Arc::clone(&c));
            if !record.state.may_run() {
                continue;
            }
            match record.shim.as_ref() {
                Some(shim) => self.watch(&c, shim),
                None => {
                    // A CreateContainer cut by the crash: its crust-shim's `runc create` may
                    // still run. Waiting for it lets Remove find (and delete) what it makes.
                    if let Ok(runtime) = self.runtime(&record.runtime_handler) {
                        runtime.cli().settle_create(&id, SETTLE_TIMEOUT).await;
                    }
                    if mark_exited(&c, &entry.path().join("exit.json")) {
                        self.persist(&c).await?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// How long recovery waits for a container's `runc create` that outlived crustd.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn unknown_record(id: &str, error: &str) -> ContainerRecord {
    ContainerRecord {
        id: id.to_string(),
        name: String::new(),
        sandbox_id: String::new(),
        config: ContainerConfig::default(),
        image: String::new(),
        image_id: String::new(),
        runtime_handler: "runc".into(),
        state: ContainerState::Unknown,
        created_at_ns: 0,
        started_at_ns: 0,
        finished_at_ns: 0,
        exit_code: 0,
        reason: "Unknown".into(),
        message: format!("unreadable record: {error}"),
        log_path: String::new(),
        shim: None,
        cgroups_path: String::new(),
        stop_signal: 0,
        image_volumes: Vec::new(),
    }
}
