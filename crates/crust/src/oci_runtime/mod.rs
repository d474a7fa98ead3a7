//! The OCI runtime seam: [`OciRuntime`] (create/start/kill/delete a container from a bundle) and its
//! implementations: [`RuncRuntime`] over a runc-compatible CLI (`oci` handlers) and
//! [`shim_v2::ShimV2Runtime`] over a containerd runtime v2 shim (`shim-v2` handlers), plus
//! [`monitor`], which watches container init processes through pidfds so exits are noticed
//! without polling the runtime.

pub mod cgroup;
pub mod exec_process;
pub mod features;
pub mod monitor;
pub mod shim_v2;

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

use async_trait::async_trait;

use crate::config::RuntimeConfig;
use runc::{Runc, RuncError};

/// Errors from the OCI runtime.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(transparent)]
    Runc(#[from] RuncError),
    #[error(transparent)]
    Shim(#[from] ::shim_v2::ShimError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} is not available for this runtime handler's type")]
    Unsupported(&'static str),
}

impl OciError {
    /// The container does not exist (already deleted).
    pub fn is_not_found(&self) -> bool {
        match self {
            OciError::Runc(e) => e.is_not_found(),
            OciError::Shim(e) => e.is_not_found(),
            OciError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
            OciError::Unsupported(_) => false,
        }
    }
}

/// The stdio a runtime that holds a container's streams (shim-v2) is given: URIs or FIFO paths
/// as the shim protocol has them; empty = none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskIo {
    pub stdin: String,
    pub stdout: String,
    pub stderr: String,
    pub terminal: bool,
}

/// An OCI runtime for one runtime handler.
#[async_trait]
pub trait OciRuntime: Send + Sync + std::fmt::Debug {
    /// Creates the container from `bundle`; returns its init pid.
    async fn create(&self, id: &str, bundle: &Path) -> Result<i32, OciError>;
    /// Starts a created container.
    async fn start(&self, id: &str) -> Result<(), OciError>;
    /// Deletes a stopped container (never forced on the normal path).
    async fn delete(&self, id: &str) -> Result<(), OciError>;
    /// Kills and deletes the container whatever its state (`delete --force`: abnormal paths only,
    /// it costs about 100 ms). A missing container is fine.
    async fn force_delete(&self, id: &str) -> Result<(), OciError>;
    /// Ids of the containers this runtime knows.
    async fn list(&self) -> Result<Vec<String>, OciError>;
    /// The pid of container `id`'s init process, or `None` when the runtime does not know `id` or
    /// its init has exited.
    async fn pid(&self, id: &str) -> Result<Option<i32>, OciError>;
    /// Sends `signal` to the container's init process.
    async fn kill(&self, id: &str, signal: i32) -> Result<(), OciError>;
    /// Applies the OCI LinuxResources in `resources_file` to a running container.
    async fn update(&self, id: &str, resources_file: &Path) -> Result<(), OciError>;
    /// Creates a container whose stdio the runtime itself holds (shim-v2); CLI runtimes leave
    /// that to crust-shim.
    async fn create_task(&self, id: &str, bundle: &Path, io: &TaskIo) -> Result<i32, OciError> {
        let _ = (id, bundle, io);
        Err(OciError::Unsupported("a task with runtime-held stdio"))
    }
    /// The exit status of a task whose init exited, when the runtime keeps it (shim-v2: Wait);
    /// `None` for CLI runtimes, whose exit crust-shim records.
    async fn exit_status(&self, id: &str) -> Option<crate::container::shim::ExitFile> {
        let _ = id;
        None
    }
    /// What resolves when task `id` exits, for a runtime that reports its tasks' exits itself
    /// (shim-v2: Wait, as containerd watches them; a VM runtime's pids are not the host's);
    /// `None`: the exit is seen through a pidfd on the init pid.
    fn exit_reporter(&self, _id: &str) -> Option<futures_util::future::BoxFuture<'static, ()>> {
        None
    }
    /// ExecSync through the runtime itself; `None`: run it through the CLI.
    async fn exec_sync(
        &self,
        id: &str,
        cmd: &[String],
        timeout: std::time::Duration,
    ) -> Option<Result<crate::container::exec::ExecOutput, OciError>> {
        let _ = (id, cmd, timeout);
        None
    }
    /// A streaming exec run by the runtime itself (shim-v2); `None`: run it through the CLI.
    async fn exec_stream(
        &self,
        id: &str,
        cmd: &[String],
        streams: shim_v2::stream::ExecStreams,
    ) -> Option<Result<shim_v2::stream::TaskExec, OciError>> {
        let _ = (id, cmd, streams);
        None
    }
    /// Sets the size of the terminal of a container whose stdio the runtime holds (shim-v2).
    async fn resize_pty(&self, id: &str, width: u16, height: u16) -> Result<(), OciError> {
        let _ = (id, width, height);
        Err(OciError::Unsupported("ResizePty"))
    }
    /// Closes the stdin of a container whose stdio the runtime holds (shim-v2 CloseIO).
    async fn close_stdin(&self, id: &str) -> Result<(), OciError> {
        let _ = id;
        Err(OciError::Unsupported("CloseIO"))
    }
    /// Reconnects to what survived a crustd restart (shims); before records are recovered.
    async fn recover(&self) {}
    /// The runtime holds containers' stdio itself (shim-v2: FIFOs that `crust-shim task-io`
    /// serves); false: crust-shim runs the container (CLI runtimes).
    fn holds_stdio(&self) -> bool {
        false
    }
    /// How to run the runtime's CLI (for crust-shim, which runs `create` itself, and for exec).
    /// A shim-v2 handler reports the OCI runtime its shim runs.
    fn cli(&self) -> &RuntimeCli;
    /// The handler's configuration (annotations it may see, privileged devices, order).
    fn handler_config(&self) -> &RuntimeConfig;
    /// What the runtime can do (from its `features` output).
    fn features(&self) -> features::Features {
        features::Features::default()
    }
}

/// How one handler's runtime CLI is invoked: `BINARY --root ROOT ARGS... COMMAND ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeCli {
    pub binary: PathBuf,
    pub root: PathBuf,
    /// Global options after `--root` (`runtime_args` of the handler).
    pub args: Vec<String>,
}

impl RuntimeCli {
    /// `BINARY --root ROOT ARGS...`, ready for a command (stdin /dev/null unless set).
    pub fn command(&self) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.arg("--root").arg(&self.root).args(&self.args);
        cmd
    }

    /// Waits, up to `timeout`, while a `create` of container `id` by this runtime (same binary
    /// root) is still running without its caller: crustd died while it ran, and recovery must
    /// see what it makes whole, not a half-made container it then cannot find to delete. True
    /// when none is left.
    pub async fn settle_create(&self, id: &str, timeout: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let (cli, id_owned) = (self.clone(), id.to_string());
            let running = tokio::task::spawn_blocking(move || cli.create_running(&id_owned))
                .await
                .unwrap_or(false);
            if !running {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(id, "a runtime create outlived crustd and is still running");
                return false;
            }
            tracing::debug!(id, "waiting for a runtime create that outlived crustd");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Whether a process `BINARY --root ROOT ... create ... ID` runs. Blocking (reads /proc).
    fn create_running(&self, id: &str) -> bool {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return false;
        };
        let root = self.root.as_os_str().as_encoded_bytes();
        entries.flatten().any(|e| {
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let has = |want: &[u8]| args.contains(&want);
            let rooted = args.windows(2).any(|w| w[0] == b"--root" && w[1] == root);
            rooted && has(b"create") && has(id.as_bytes())
        })
    }

    /// The same as crust-shim flags (`--runtime`, `--runtime-root`, `--runtime-arg` per arg).
    pub fn shim_flags(&self) -> Vec<OsString> {
        let mut flags = vec![
            "--runtime".into(),
            self.binary.clone().into(),
            "--runtime-root".into(),
            self.root.clone().into(),
        ];
        for arg in &self.args {
            flags.push("--runtime-arg".into());
            flags.push(arg.into());
        }
        flags
    }
}

/// [`OciRuntime`] over the runc CLI (also fits crun and runsc, which have the same CLI).
#[derive(Debug, Clone)]
pub struct RuncRuntime {
    runc: Runc,
    cli: RuntimeCli,
    config: RuntimeConfig,
    features: features::Features,
}

impl RuncRuntime {
    /// A runtime run as `cli` says, with what `binary features` says it can do (blocking: call at
    /// start).
    pub fn new(cli: RuntimeCli, config: RuntimeConfig) -> Self {
        RuncRuntime {
            config,
            runc: Runc::new(&cli.binary, &cli.root).with_global_args(cli.args.clone()),
            features: features::probe(&cli.binary),
            cli,
        }
    }
}

#[async_trait]
impl OciRuntime for RuncRuntime {
    async fn create(&self, id: &str, bundle: &Path) -> Result<i32, OciError> {
        let log = bundle.join("runc.log");
        Ok(self.runc.create(id, bundle, &log).await?)
    }

    async fn start(&self, id: &str) -> Result<(), OciError> {
        Ok(self.runc.start(id).await?)
    }

    async fn delete(&self, id: &str) -> Result<(), OciError> {
        Ok(self.runc.delete(id, false).await?)
    }

    async fn force_delete(&self, id: &str) -> Result<(), OciError> {
        match self.runc.delete(id, true).await {
            Err(e) if !e.is_not_found() => Err(e.into()),
            _ => Ok(()),
        }
    }

    async fn list(&self) -> Result<Vec<String>, OciError> {
        Ok(self.runc.list().await?.into_iter().map(|c| c.id).collect())
    }

    async fn pid(&self, id: &str) -> Result<Option<i32>, OciError> {
        match self.runc.state(id).await {
            Ok(state) if state.status != "stopped" && state.pid > 0 => Ok(Some(state.pid)),
            Ok(_) => Ok(None),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn kill(&self, id: &str, signal: i32) -> Result<(), OciError> {
        Ok(self.runc.kill(id, signal, false).await?)
    }

    async fn update(&self, id: &str, resources_file: &Path) -> Result<(), OciError> {
        Ok(self.runc.update(id, resources_file).await?)
    }

    fn cli(&self) -> &RuntimeCli {
        &self.cli
    }

    fn handler_config(&self) -> &RuntimeConfig {
        &self.config
    }

    fn features(&self) -> features::Features {
        self.features.clone()
    }
}
