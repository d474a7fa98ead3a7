//! [`ShimV2Runtime`]: the [`OciRuntime`] of a `shim-v2` handler, run by a containerd runtime v2
//! shim (`containerd-shim-runc-v2`, and through the same protocol Kata's and gVisor's shims).
//!
//! One shim per pod, as containerd runs them: every task's `SHIM start` carries the spec's
//! `io.kubernetes.cri.sandbox-id` grouping annotation, so the first start (the sandbox) launches
//! the shim and every container's start gets the same address back. Each task has its own bundle
//! `<root>/tasks/<id>` (the name is the task id: `SHIM delete` finds a bundle as
//! `<parent>/<id>`), holding a copy of crust's `config.json` and what the shim writes there
//! (`address`, `options.json`, its `log` FIFO and `shim.pid` in the sandbox's).
//!
//! Exits: as containerd watches them, through the shim's Wait on every task (sandbox and
//! containers), never through the task's pid (a VM runtime's pids are not the host's); signals
//! go through the shim's Kill. A shim that dies is noticed through its own pidfd: every
//! task it held is cleaned up with `SHIM delete` (which kills what the runtime still runs) and
//! its exit status kept in `exit.json` of the task's bundle. After a crustd restart the shims are
//! reconnected from the `address` files ([`ShimV2Runtime::recover`]).
//!
//! Events from the shims arrive on a ttrpc Events server at `<root>/events.ttrpc` and are logged;
//! shims that publish through their `-publish-binary` run `crustd --address <root>/events
//! publish ...` ([`publish_event`]), which forwards to the same server.

mod exec;
pub mod stream;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use shim_v2::{api, Shim, ShimBinary, ShimError, ShimLog};

use super::{monitor::Process, OciError, OciRuntime, RuntimeCli, TaskIo};
use crate::{
    config::{RuntimeConfig, ShimOptions},
    container::shim::{read_exit, ExitFile},
    events::now_ns,
};

/// `crustd publish`, the `-publish-binary` of crust's shims: forwards one event (a protobuf
/// `Any`) to the events server at `address`'s `.ttrpc` path.
pub async fn publish_event(
    address: &Path,
    namespace: &str,
    topic: &str,
    event: &[u8],
) -> Result<(), OciError> {
    Ok(shim_v2::events::publish(address, namespace, topic, event).await?)
}

/// The containerd namespace crust's shims file their state under.
pub const NAMESPACE: &str = "k8s.io";
/// How long a shim may take to exit after its last task is gone.
const SHIM_EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an exit status is waited for once the task's init has exited.
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connected shim.
struct Conn {
    shim: Shim,
    /// The shim's own dir (its cwd: the bundle of the task that launched it).
    bundle: PathBuf,
    _log: Option<ShimLog>,
}

struct Inner {
    /// What the shim's OCI runtime supports (probed for the runc shim only).
    features: crate::oci_runtime::features::Features,
    config: RuntimeConfig,
    binary: ShimBinary,
    root: PathBuf,
    options: shim_v2::oci::Options,
    cli: RuntimeCli,
    shims: Mutex<HashMap<String, Arc<Conn>>>,
    events_started: tokio::sync::OnceCell<()>,
    /// Kept for as long as the runtime lives (dropping it stops serving).
    events: Mutex<Option<shim_v2::EventsServer>>,
}

/// The runtime of one `shim-v2` handler.
#[derive(Clone)]
pub struct ShimV2Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ShimV2Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShimV2Runtime")
            .field("shim", &self.inner.binary.binary)
            .field("root", &self.inner.root)
            .finish()
    }
}

/// Converts the handler's options into the runc shim's.
fn runc_options(options: &ShimOptions, root: &Path) -> shim_v2::oci::Options {
    shim_v2::oci::Options {
        binary_name: options.binary_name.clone(),
        root: match options.root.as_str() {
            "" => root.join("runc").to_string_lossy().into_owned(),
            r => r.to_string(),
        },
        systemd_cgroup: options.systemd_cgroup,
        no_pivot_root: options.no_pivot_root,
        no_new_keyring: options.no_new_keyring,
        shim_cgroup: options.shim_cgroup.clone(),
        io_uid: options.io_uid,
        io_gid: options.io_gid,
        criu_image_path: options.criu_image_path.clone(),
        criu_work_path: options.criu_work_path.clone(),
        ..Default::default()
    }
}

/// The features of the runc a runc shim (`containerd-shim-runc-*`) runs, from `runc features`;
/// other shims (Kata, gVisor's, Wasm) run no runc, and claim nothing.
fn runc_shim_features(shim: &Path, runc: &Path) -> crate::oci_runtime::features::Features {
    let name = shim
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    match name.starts_with("containerd-shim-runc-") {
        true => crate::oci_runtime::features::probe(runc),
        false => Default::default(),
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io { what, path, source }
}

impl ShimV2Runtime {
    /// `shim` is the resolved shim binary, `root` the handler's state dir, `publisher` the
    /// binary the shim is told to publish events with (crustd, whose `publish` forwards them).
    pub fn new(shim: PathBuf, root: PathBuf, publisher: PathBuf, config: RuntimeConfig) -> Self {
        let options = runc_options(&config.options.clone().unwrap_or_default(), &root);
        let runc = match options.binary_name.as_str() {
            "" => PathBuf::from("runc"),
            name => PathBuf::from(name),
        };
        // The runc shim runs runc with `--root <Root>/<namespace>` (containerd's NewRunc).
        let cli = RuntimeCli {
            binary: runc,
            root: PathBuf::from(&options.root).join(NAMESPACE),
            args: Vec::new(),
        };
        let features = runc_shim_features(&shim, &cli.binary);
        let binary = ShimBinary {
            binary: shim,
            namespace: NAMESPACE.into(),
            address: root.join("events"),
            publish_binary: publisher,
        };
        ShimV2Runtime {
            inner: Arc::new(Inner {
                features,
                config,
                binary,
                root,
                options,
                cli,
                shims: Mutex::new(HashMap::new()),
                events_started: tokio::sync::OnceCell::new(),
                events: Mutex::new(None),
            }),
        }
    }

    fn task_dir(&self, id: &str) -> PathBuf {
        self.inner.root.join("tasks").join(id)
    }

    /// Serves the events socket (once); a failure is logged, shims then retry their events.
    async fn ensure_events(&self) {
        let socket = shim_v2::bootstrap::ttrpc_address(&self.inner.binary.address);
        let this = self.clone();
        self.inner
            .events_started
            .get_or_init(|| async move {
                let _ = std::fs::create_dir_all(&this.inner.root);
                match shim_v2::EventsServer::serve(&socket).await {
                    Ok((server, mut rx)) => {
                        tokio::spawn(async move {
                            while let Some(envelope) = rx.recv().await {
                                tracing::debug!(topic = %envelope.topic, namespace = %envelope.namespace, "shim event");
                            }
                        });
                        *this.inner.events.lock().unwrap_or_else(|e| e.into_inner()) = Some(server);
                    }
                    Err(e) => {
                        tracing::warn!(socket = %socket.display(), error = %e, "cannot serve shim events");
                    }
                }
            })
            .await;
    }

    /// The connected shim serving `address`, connecting (and watching it) when new.
    async fn connect(&self, address: &str, log: Option<ShimLog>) -> Result<Arc<Conn>, OciError> {
        if let Some(conn) = self.lock().get(address) {
            return Ok(Arc::clone(conn));
        }
        let shim = Shim::connect(address).await?;
        let info = shim.info("").await?;
        let bundle = std::fs::read_link(format!("/proc/{}/cwd", info.shim_pid))
            .map_err(io_err("find the dir of shim", Path::new(address)))?;
        let log = log.or_else(|| ShimLog::open(&bundle, address).ok());
        let conn = Arc::new(Conn {
            shim,
            bundle,
            _log: log,
        });
        let mut shims = self.lock();
        let conn = Arc::clone(shims.entry(address.to_string()).or_insert(conn));
        drop(shims);
        self.watch_shim(address.to_string(), info.shim_pid as i32);
        Ok(conn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Conn>>> {
        self.inner.shims.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shim holding task `id` (from the `address` file in its bundle).
    async fn conn_for(&self, id: &str) -> Result<Arc<Conn>, OciError> {
        let file = self.task_dir(id).join("address");
        let address = std::fs::read_to_string(&file).map_err(io_err("read", &file))?;
        self.connect(address.trim(), None).await
    }

    /// On the shim's exit (unless it was shut down on purpose): `SHIM delete` of every task it held.
    fn watch_shim(&self, address: String, pid: i32) {
        let Ok(Some(process)) = Process::open(pid, None) else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            let _ = process.exited().await;
            if this.lock().remove(&address).is_none() {
                return; // shut down on purpose (release took it out first)
            }
            tracing::warn!(shim = %address, pid, "shim exited; cleaning up its tasks");
            this.clean_up_after(&address).await;
        });
    }

    /// `SHIM delete` for every task whose bundle names `address`, keeping each exit status.
    async fn clean_up_after(&self, address: &str) {
        // The shim removes its socket only when it shuts down; a killed one leaves it.
        if let Some(path) = address.strip_prefix("unix://") {
            let _ = std::fs::remove_file(path);
        }
        for id in self.task_ids() {
            let dir = self.task_dir(&id);
            let named = std::fs::read_to_string(dir.join("address")).unwrap_or_default();
            if named.trim() != address || dir.join(EXIT_FILE).exists() {
                continue;
            }
            self.shim_delete(&id).await;
        }
    }

    /// `SHIM delete` of task `id` (its shim is gone): the exit status goes to `exit.json`.
    async fn shim_delete(&self, id: &str) {
        let dir = self.task_dir(id);
        match self.inner.binary.delete(id, &dir).await {
            Ok(resp) => {
                let at = resp
                    .exited_at
                    .as_ref()
                    .map_or_else(now_ns, |t| t.seconds * 1_000_000_000 + i64::from(t.nanos));
                write_exit(&dir, resp.exit_status as i32, at);
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "shim delete failed");
                write_exit(&dir, 255, now_ns());
            }
        }
    }

    fn task_ids(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.inner.root.join("tasks")) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// Writes the task bundle: crust's config.json copied into `<root>/tasks/<id>`.
    fn prepare_bundle(&self, id: &str, bundle: &Path) -> Result<PathBuf, OciError> {
        let dir = self.task_dir(id);
        std::fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        let spec = bundle.join("config.json");
        std::fs::copy(&spec, dir.join("config.json")).map_err(io_err("copy", &spec))?;
        Ok(dir)
    }

    async fn create_in(&self, id: &str, dir: &Path, io: &TaskIo) -> Result<i32, OciError> {
        self.ensure_events().await;
        let log = ShimLog::open(dir, id)?;
        let address = self.inner.binary.start(id, dir).await?;
        let conn = self.connect(&address, Some(log)).await?;
        let req = api::CreateTaskRequest {
            id: id.to_string(),
            bundle: dir.to_string_lossy().into_owned(),
            terminal: io.terminal,
            stdin: io.stdin.clone(),
            stdout: io.stdout.clone(),
            stderr: io.stderr.clone(),
            options: Some(shim_v2::runc_options(&self.inner.options)).into(),
            ..Default::default()
        };
        match conn.shim.create(&req).await {
            Ok(pid) => Ok(pid as i32),
            Err(e) => {
                self.release(conn, dir).await;
                Err(e.into())
            }
        }
    }

    /// After a task is gone from its shim: the shim is told to shut down (it exits once it holds
    /// no task). When the shim lives in this task's dir (the sandbox's), it is forgotten first,
    /// so its exit is no crash, and its exit is waited for (with our connection closed: the shim's
    /// ttrpc server waits for its clients) before the dir goes.
    async fn release(&self, conn: Arc<Conn>, dir: &Path) {
        let own = same_dir(&conn.bundle, dir);
        if own {
            self.lock().remove(conn.shim.address());
        }
        let pid = match own {
            true => conn.shim.info("").await.map(|i| i.shim_pid as i32).ok(),
            false => None,
        };
        if let Err(e) = conn.shim.shutdown("", false).await {
            tracing::debug!(error = %e, "shim shutdown");
        }
        drop(conn);
        if let Some(pid) = pid {
            if let Ok(Some(process)) = Process::open(pid, None) {
                let exited = tokio::time::timeout(SHIM_EXIT_TIMEOUT, process.exited()).await;
                if exited.is_err() {
                    tracing::warn!(pid, "shim still running after its last task was deleted");
                }
            }
        }
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Reconnects to the shims of existing tasks after a restart; tasks whose shim is gone are
    /// cleaned up with `SHIM delete`, and bundles no shim ever got (crustd died before `start`
    /// returned) are removed.
    pub async fn recover_tasks(&self) {
        let ids = self.task_ids();
        if ids.is_empty() {
            return;
        }
        self.ensure_events().await;
        for id in ids {
            let dir = self.task_dir(&id);
            if !dir.join("address").exists() {
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            if dir.join(EXIT_FILE).exists() {
                continue;
            }
            if let Err(e) = self.conn_for(&id).await {
                tracing::warn!(id, error = %e, "the task's shim is gone");
                self.shim_delete(&id).await;
            }
        }
    }
}

/// The exit status the shim-crash cleanup keeps in a task bundle.
const EXIT_FILE: &str = "exit.json";

fn write_exit(dir: &Path, exit_code: i32, exited_at_ns: i64) {
    let exit = ExitFile {
        exit_code,
        exited_at_ns,
    };
    if let Err(e) = exit.write(&dir.join(EXIT_FILE)) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot keep a task's exit status");
    }
}

fn kept_exit(dir: &Path) -> Option<ExitFile> {
    read_exit(&dir.join(EXIT_FILE))
}

/// The status the cleanup of a dead shim keeps: that cleanup (`SHIM delete`) is what killed the
/// task's init, so it may still be writing it when the init's exit is seen.
async fn wait_for_kept_exit(dir: &Path) -> Option<ExitFile> {
    let deadline = tokio::time::Instant::now() + WAIT_TIMEOUT;
    loop {
        if let Some(kept) = kept_exit(dir) {
            return Some(kept);
        }
        if tokio::time::Instant::now() >= deadline || !dir.exists() {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Percent-encodes everything but unreserved characters and `/` (for the binary URI).
fn not_found_ok(r: Result<(), ShimError>) -> Result<(), OciError> {
    match r {
        Err(e) if !e.is_not_found() => Err(e.into()),
        _ => Ok(()),
    }
}

#[async_trait]
impl OciRuntime for ShimV2Runtime {
    async fn create(&self, id: &str, bundle: &Path) -> Result<i32, OciError> {
        self.create_task(id, bundle, &TaskIo::default()).await
    }

    async fn create_task(&self, id: &str, bundle: &Path, io: &TaskIo) -> Result<i32, OciError> {
        let dir = self.prepare_bundle(id, bundle)?;
        match self.create_in(id, &dir, io).await {
            Ok(pid) => Ok(pid),
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    async fn start(&self, id: &str) -> Result<(), OciError> {
        self.conn_for(id).await?.shim.start(id, "").await?;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), OciError> {
        let dir = self.task_dir(id);
        if !dir.exists() {
            return Ok(());
        }
        match self.conn_for(id).await {
            Ok(conn) => {
                not_found_ok(conn.shim.delete(id, "").await.map(|_| ()))?;
                self.release(conn, &dir).await;
            }
            Err(e) => {
                tracing::debug!(id, error = %e, "no shim for the task; cleaning up with shim delete");
                if !dir.join(EXIT_FILE).exists() {
                    self.shim_delete(id).await;
                }
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        Ok(())
    }

    async fn force_delete(&self, id: &str) -> Result<(), OciError> {
        if !self.task_dir(id).exists() {
            return Ok(());
        }
        if let Ok(conn) = self.conn_for(id).await {
            let _ = conn.shim.kill(id, "", libc::SIGKILL as u32, true).await;
            let _ = tokio::time::timeout(WAIT_TIMEOUT, conn.shim.wait(id, "")).await;
        }
        self.delete(id).await
    }

    async fn list(&self) -> Result<Vec<String>, OciError> {
        Ok(self.task_ids())
    }

    async fn pid(&self, id: &str) -> Result<Option<i32>, OciError> {
        if !self.task_dir(id).exists() {
            return Ok(None);
        }
        let Ok(conn) = self.conn_for(id).await else {
            return Ok(None);
        };
        match conn.shim.state(id, "").await {
            Ok(state) => {
                use shim_v2::api::Status;
                let live = matches!(
                    state.status.enum_value(),
                    Ok(Status::CREATED | Status::RUNNING | Status::PAUSED)
                );
                Ok((live && state.pid > 0).then_some(state.pid as i32))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<(), OciError> {
        let conn = self.conn_for(id).await?;
        Ok(conn.shim.kill(id, "", signal as u32, false).await?)
    }

    async fn update(&self, id: &str, resources_file: &Path) -> Result<(), OciError> {
        let json = std::fs::read(resources_file).map_err(io_err("read", resources_file))?;
        let req = api::UpdateTaskRequest {
            id: id.to_string(),
            resources: Some(shim_v2::linux_resources(&json)).into(),
            ..Default::default()
        };
        Ok(self.conn_for(id).await?.shim.update(&req).await?)
    }

    async fn exit_status(&self, id: &str) -> Option<ExitFile> {
        let dir = self.task_dir(id);
        if let Some(kept) = kept_exit(&dir) {
            return Some(kept);
        }
        let Ok(conn) = self.conn_for(id).await else {
            return wait_for_kept_exit(&dir).await;
        };
        match tokio::time::timeout(WAIT_TIMEOUT, conn.shim.wait_exit(id, "")).await {
            Ok(Ok((code, at))) => Some(ExitFile {
                exit_code: code as i32,
                exited_at_ns: if at > 0 { at } else { now_ns() },
            }),
            _ => wait_for_kept_exit(&dir).await,
        }
    }

    fn exit_reporter(&self, id: &str) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        let (this, id) = (self.clone(), id.to_string());
        Some(Box::pin(async move {
            // An error is a shim gone (or a task it no longer knows): the exit then is what its
            // cleanup keeps, read once this resolves.
            let waited = match this.conn_for(&id).await {
                Ok(conn) => conn.shim.wait(&id, "").await.map_err(OciError::from),
                Err(e) => Err(e),
            };
            match waited {
                Ok(exit_status) => {
                    tracing::debug!(id = %id, exit_status, "the shim reported the task's exit")
                }
                Err(e) => {
                    tracing::debug!(id = %id, error = %e, "Wait of the task ended without an exit status")
                }
            }
        }))
    }

    async fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: Duration,
    ) -> Option<Result<crate::container::exec::ExecOutput, OciError>> {
        Some(exec::exec_sync(self, id, cmd, timeout).await)
    }

    async fn exec_stream(
        &self,
        id: &str,
        cmd: &[String],
        streams: stream::ExecStreams,
    ) -> Option<Result<stream::TaskExec, OciError>> {
        Some(stream::exec(self, id, cmd, streams).await)
    }

    async fn resize_pty(&self, id: &str, width: u16, height: u16) -> Result<(), OciError> {
        let shim = &self.conn_for(id).await?.shim;
        Ok(shim.resize_pty(id, "", width.into(), height.into()).await?)
    }

    async fn close_stdin(&self, id: &str) -> Result<(), OciError> {
        Ok(self.conn_for(id).await?.shim.close_stdin(id, "").await?)
    }

    async fn recover(&self) {
        self.recover_tasks().await;
    }

    fn holds_stdio(&self) -> bool {
        true
    }

    fn cli(&self) -> &RuntimeCli {
        &self.inner.cli
    }

    fn handler_config(&self) -> &RuntimeConfig {
        &self.inner.config
    }

    fn features(&self) -> crate::oci_runtime::features::Features {
        self.inner.features.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runc_root_is_below_the_handler_root() {
        let rt = ShimV2Runtime::new(
            "containerd-shim-runc-v2".into(),
            "/run/crust/runtime/runc-shim".into(),
            "/usr/bin/crust-shim".into(),
            RuntimeConfig::default(),
        );
        assert_eq!(rt.inner.options.root, "/run/crust/runtime/runc-shim/runc");
        let cli = Path::new("/run/crust/runtime/runc-shim/runc/k8s.io");
        assert_eq!(rt.cli().root, cli, "the root the shim's runc is run with");
    }

    #[test]
    fn kept_exit_statuses_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(kept_exit(dir.path()).is_none());
        write_exit(dir.path(), 137, 42);
        let e = kept_exit(dir.path()).unwrap();
        assert_eq!((e.exit_code, e.exited_at_ns), (137, 42));
    }
}
