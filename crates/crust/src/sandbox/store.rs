//! The sandbox store: the index of sandboxes, their names, and their records on disk. Every change
//! to a record goes through [`SandboxStore::update`], which writes it atomically before returning.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use tokio::sync::OwnedMutexGuard;

use super::record::{Sandbox, SandboxRecord, RECORD_VERSION};
use crate::store::{
    write_record, write_record_unsynced, Index, LookupError, NameTaken, RecordError, Registrar,
};

/// Sandboxes by id, names in the shared registrar, records under `<root>/sandboxes/<id>/`.
#[derive(Debug)]
pub struct SandboxStore {
    index: Index<Sandbox>,
    registrar: Arc<Registrar>,
    dir: PathBuf,
    /// Makes "reserve the name, insert the entry" one step for concurrent RunPodSandbox calls.
    admit: std::sync::Mutex<()>,
}

impl SandboxStore {
    /// A store keeping records under `dir`.
    pub fn new(dir: PathBuf, registrar: Arc<Registrar>) -> SandboxStore {
        SandboxStore {
            index: Index::default(),
            registrar,
            dir,
            admit: std::sync::Mutex::new(()),
        }
    }

    /// The directory holding all sandbox records.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The per-sandbox directory under the root dir.
    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Admits a new sandbox: reserves its name and indexes it (not yet persisted). The sandbox's
    /// operation lock is taken before anyone else can see it and handed to the caller, so no
    /// Stop/Remove can slip in before RunPodSandbox has run its course.
    pub fn admit(
        &self,
        record: SandboxRecord,
    ) -> Result<(Arc<Sandbox>, OwnedMutexGuard<()>), NameTaken> {
        let _guard = self.admit.lock().unwrap_or_else(|p| p.into_inner());
        self.registrar.reserve(&record.name, &record.id)?;
        let path = self.record_path(&record.id);
        let sandbox = Arc::new(Sandbox::new(record, path, false));
        let op = sandbox
            .op
            .clone()
            .try_lock_owned()
            .expect("a sandbox nobody else has seen is unlocked");
        self.index.insert(&sandbox.id, sandbox.clone());
        Ok((sandbox, op))
    }

    /// True while `sandbox` is the indexed entry for its id (not removed meanwhile).
    pub fn is_current(&self, sandbox: &Arc<Sandbox>) -> bool {
        self.index
            .lookup(&sandbox.id)
            .is_ok_and(|s| Arc::ptr_eq(&s, sandbox))
    }

    /// Indexes a sandbox loaded from disk (name reserved when it has one).
    pub fn restore(&self, sandbox: Arc<Sandbox>) {
        if !sandbox.name.is_empty() {
            if let Err(taken) = self.registrar.reserve(&sandbox.name, &sandbox.id) {
                tracing::warn!(id = %sandbox.id, name = %sandbox.name, holder = %taken.holder,
                    "two records claim one name; the second stays unnamed");
            }
        }
        let id = sandbox.id.clone();
        self.index.insert(&id, sandbox);
    }

    /// The sandbox holding `name`, if any.
    pub fn by_name(&self, name: &str) -> Option<Arc<Sandbox>> {
        let id = self.registrar.holder(name)?;
        self.index.lookup(&id).ok()
    }

    /// Exact id or unique prefix.
    pub fn lookup(&self, key: &str) -> Result<Arc<Sandbox>, LookupError> {
        self.index.lookup(key)
    }

    /// All sandboxes.
    pub fn all(&self) -> Vec<Arc<Sandbox>> {
        self.index.all()
    }

    /// Applies `change` to the record and persists it; the change is kept in memory even when the
    /// write fails (the error is returned so the caller can react).
    pub async fn update<R>(
        &self,
        sandbox: &Sandbox,
        change: impl FnOnce(&mut SandboxRecord) -> R,
    ) -> Result<R, RecordError> {
        let _order = sandbox.persist.lock().await;
        let forgotten = sandbox.forgotten.load(std::sync::atomic::Ordering::SeqCst);
        let (result, snapshot) = {
            let mut record = sandbox.record.write().unwrap_or_else(|p| p.into_inner());
            let result = change(&mut record);
            (result, record.clone())
        };
        if forgotten {
            return Ok(result); // removed: nothing may recreate its directory
        }
        let path = sandbox.record_path.clone();
        write_blocking(path, snapshot).await?;
        Ok(result)
    }

    /// Applies `change` in memory only; the next [`SandboxStore::update`] persists it. For changes
    /// whose loss in a crash is harmless (e.g. clearing a "held" flag: teardown is idempotent).
    pub fn stage<R>(&self, sandbox: &Sandbox, change: impl FnOnce(&mut SandboxRecord) -> R) -> R {
        let mut record = sandbox.record.write().unwrap_or_else(|p| p.into_inner());
        change(&mut record)
    }

    /// Writes the current record (first write of a new sandbox).
    pub async fn persist(&self, sandbox: &Sandbox) -> Result<(), RecordError> {
        self.update(sandbox, |_| ()).await
    }

    /// Writes a new sandbox's first record and returns once it is in place (a crustd restarted
    /// after a crash finds it); its fsync runs on, and [`Durable::wait`] waits for it. Nothing that
    /// outlives a reboot (the CNI ADD's IP allocations) may happen before that.
    pub async fn persist_first(&self, sandbox: &Sandbox) -> Result<Durable, RecordError> {
        let _order = sandbox.persist.lock().await;
        let snapshot = sandbox.snapshot();
        let path = sandbox.record_path.clone();
        let written = in_record_dir(path.clone(), move |path| {
            write_record_unsynced(path, RECORD_VERSION, &snapshot)
        })
        .await?;
        let sync = tokio::task::spawn_blocking(move || written.sync());
        Ok(Durable { sync, path })
    }

    /// Forgets a sandbox whose resources are all freed: deletes its directory, index entry and name.
    pub async fn forget(&self, sandbox: &Sandbox) -> Result<(), RecordError> {
        let _order = sandbox.persist.lock().await;
        let dir = self.sandbox_dir(&sandbox.id);
        remove_dir_blocking(dir).await?;
        sandbox
            .forgotten
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.index.remove(&sandbox.id);
        self.registrar.release(&sandbox.name, &sandbox.id);
        Ok(())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.sandbox_dir(id).join("sandbox.json")
    }
}

/// A first record's fsync, under way.
#[derive(Debug)]
pub struct Durable {
    sync: tokio::task::JoinHandle<Result<(), RecordError>>,
    path: PathBuf,
}

impl Durable {
    /// Waits until the record is durable.
    pub async fn wait(self) -> Result<(), RecordError> {
        let path = self.path;
        self.sync
            .await
            .unwrap_or_else(|join| Err(join_error(path, join)))
    }
}

fn join_error(path: PathBuf, join: tokio::task::JoinError) -> RecordError {
    RecordError::Io {
        path,
        source: std::io::Error::other(join.to_string()),
    }
}

async fn write_blocking(path: PathBuf, record: SandboxRecord) -> Result<(), RecordError> {
    in_record_dir(path, move |path| {
        write_record(path, RECORD_VERSION, &record)
    })
    .await
}

/// Runs `work(path)` on a blocking thread once the record's directory exists.
async fn in_record_dir<T: Send + 'static>(
    path: PathBuf,
    work: impl FnOnce(&std::path::Path) -> Result<T, RecordError> + Send + 'static,
) -> Result<T, RecordError> {
    let io_path = path.clone();
    tokio::task::spawn_blocking(move || {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| RecordError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        work(&path)
    })
    .await
    .unwrap_or_else(|join| Err(join_error(io_path, join)))
}

async fn remove_dir_blocking(dir: PathBuf) -> Result<(), RecordError> {
    let path = dir.clone();
    let result = tokio::task::spawn_blocking(move || crate::store::remove_record_dir(&dir))
        .await
        .unwrap_or_else(|join| Err(std::io::Error::other(join.to_string())));
    result.map_err(|source| RecordError::Io { path, source })
}
