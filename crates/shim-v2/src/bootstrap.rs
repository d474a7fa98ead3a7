//! Launching a shim (`SHIM ... start`) and cleaning up after one that is gone (`SHIM ... delete`).
//! Both run in the bundle dir, as containerd runs them. `start` returns once the shim serves; the
//! shim daemon it forks outlives the caller (and crustd), so a restart reconnects to the address in
//! `<bundle>/address`.

use containerd_shim_protos::protobuf;
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::ShimError;

/// How long `start` and `delete` may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// One shim binary and what every one of its shims is told.
#[derive(Debug, Clone)]
pub struct ShimBinary {
    /// `containerd-shim-runc-v2`, or any runtime v2 shim.
    pub binary: PathBuf,
    /// The containerd namespace the shim files its state under (`k8s.io` for CRI).
    pub namespace: String,
    /// What the shim is told containerd's address is (`-address`); its events go to
    /// `TTRPC_ADDRESS` (this address + `.ttrpc`) and through `publish_binary`.
    pub address: PathBuf,
    /// The binary the shim runs to publish an event (`-publish-binary`).
    pub publish_binary: PathBuf,
}

/// The shim's log FIFO (`<bundle>/log`), read line by line into `tracing` for as long as the shim
/// holds it open. Drop it to stop reading (the shim then gets EPIPE on its logs, which it ignores).
pub struct ShimLog {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ShimLog {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ShimLog {
    /// Makes the FIFO (if missing) and reads it; `id` names the shim in the log lines.
    pub fn open(bundle: &Path, id: &str) -> Result<ShimLog, ShimError> {
        let path = bundle.join("log");
        make_fifo(&path)?;
        // Read-write, so opening does not wait for the shim and EOF never comes between shims;
        // epoll-driven, so no blocking thread is held per shim.
        let pipe = tokio::net::unix::pipe::OpenOptions::new()
            .read_write(true)
            .open_receiver(&path)
            .map_err(|source| ShimError::Io {
                what: "open the shim log",
                path: path.clone(),
                source,
            })?;
        let id = id.to_string();
        let task = tokio::spawn(async move {
            let mut lines = BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                tracing::debug!(shim = %id, "{line}");
            }
        });
        Ok(ShimLog { task })
    }
}

fn make_fifo(path: &Path) -> Result<(), ShimError> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|_| ShimError::Io {
        what: "make the FIFO",
        path: path.to_path_buf(),
        source: std::io::ErrorKind::InvalidInput.into(),
    })?;
    // SAFETY: c is a valid NUL-terminated path.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        let source = std::io::Error::last_os_error();
        if source.kind() != std::io::ErrorKind::AlreadyExists {
            return Err(ShimError::Io {
                what: "make the FIFO",
                path: path.to_path_buf(),
                source,
            });
        }
    }
    Ok(())
}

impl ShimBinary {
    fn command(&self, id: &str, bundle: &Path) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.binary);
        cmd.current_dir(bundle)
            .env("TTRPC_ADDRESS", ttrpc_address(&self.address))
            .arg("-namespace")
            .arg(&self.namespace)
            .arg("-address")
            .arg(&self.address)
            .arg("-publish-binary")
            .arg(&self.publish_binary)
            .arg("-id")
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        cmd
    }

    /// `SHIM start` for task `id` in `bundle`: the address the shim serves (`unix://...`). The
    /// caller keeps a [`ShimLog`] open on the bundle first.
    pub async fn start(&self, id: &str, bundle: &Path) -> Result<String, ShimError> {
        let mut cmd = self.command(id, bundle);
        cmd.arg("start");
        let out = self.run(cmd, "start").await?;
        let address = String::from_utf8_lossy(&out).trim().to_string();
        if !address.starts_with("unix://") {
            return Err(ShimError::NoAddress {
                binary: self.binary.clone(),
                output: address,
            });
        }
        Ok(address)
    }

    /// `SHIM delete` for task `id` in `bundle`: the cleanup of a shim that is gone (kills and
    /// deletes what its runtime still holds). Returns the DeleteResponse the shim prints. The
    /// runc shim finds the bundle as `<parent of bundle>/<id>` (containerd's layout), so a
    /// bundle dir must be named after its task.
    pub async fn delete(
        &self,
        id: &str,
        bundle: &Path,
    ) -> Result<crate::api::DeleteResponse, ShimError> {
        let mut cmd = self.command(id, bundle);
        cmd.arg("-bundle").arg(bundle).arg("delete");
        let out = self.run(cmd, "delete").await?;
        protobuf::Message::parse_from_bytes(&out).map_err(|e| ShimError::Decode(e.to_string()))
    }

    async fn run(
        &self,
        mut cmd: tokio::process::Command,
        command: &'static str,
    ) -> Result<Vec<u8>, ShimError> {
        let child = cmd.spawn().map_err(|source| ShimError::Io {
            what: "run",
            path: self.binary.clone(),
            source,
        })?;
        let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| ShimError::Timeout {
                binary: self.binary.clone(),
                command,
                seconds: COMMAND_TIMEOUT.as_secs(),
            })?
            .map_err(|source| ShimError::Io {
                what: "wait for",
                path: self.binary.clone(),
                source,
            })?;
        if !out.status.success() {
            return Err(ShimError::Command {
                binary: self.binary.clone(),
                command,
                status: out.status,
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(out.stdout)
    }
}

/// Where the shim sends events over ttrpc: containerd's address with `.ttrpc` appended.
pub fn ttrpc_address(address: &Path) -> PathBuf {
    let mut s = address.as_os_str().to_owned();
    s.push(".ttrpc");
    PathBuf::from(s)
}
