//! A typed async driver for the `runc` command line.
//!
//! Every call passes `--root` (the state directory of this runtime instance) and `--log-format json`;
//! errors carry runc's own message. The driver knows nothing about CRI or pods. Container processes are
//! never polled through `runc state` by callers on a hot path: `create` reports the init pid through
//! `--pid-file`, and callers watch that pid themselves.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

use serde::Deserialize;
use tokio::process::Command;

/// What went wrong running runc.
#[derive(Debug, thiserror::Error)]
pub enum RuncError {
    /// runc says the container does not exist.
    #[error("runc {op} {id}: container does not exist")]
    NotFound { op: &'static str, id: String },
    /// runc ran and failed.
    #[error("runc {op} {id} failed (exit {code}): {message}")]
    Failed {
        op: &'static str,
        id: String,
        code: i32,
        message: String,
    },
    /// runc could not be started at all.
    #[error("cannot run {binary} for {op}: {source}")]
    Spawn {
        op: &'static str,
        binary: PathBuf,
        source: std::io::Error,
    },
    /// runc did not finish in time; it was killed.
    #[error("runc {op} {id} did not finish within {timeout:?}")]
    Timeout {
        op: &'static str,
        id: String,
        timeout: Duration,
    },
    /// runc printed something that is not the JSON we expect.
    #[error("runc {op}: cannot parse its output: {source}")]
    Parse {
        op: &'static str,
        source: serde_json::Error,
    },
    /// A file runc writes for us (pid file, log) could not be read.
    #[error("runc {op} {id}: {path}: {source}")]
    Io {
        op: &'static str,
        id: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RuncError {
    /// True when the container is already gone (useful for idempotent teardown).
    pub fn is_not_found(&self) -> bool {
        matches!(self, RuncError::NotFound { .. })
    }
}

/// `runc state` / `runc list` output for one container.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: String,
}

/// One runc binary with one state root.
#[derive(Debug, Clone)]
pub struct Runc {
    binary: PathBuf,
    root: PathBuf,
    global_args: Vec<String>,
    timeout: Duration,
}

type Result<T> = std::result::Result<T, RuncError>;

impl Runc {
    /// A driver for `binary` keeping its state under `root` (passed as `--root`).
    pub fn new(binary: impl Into<PathBuf>, root: impl Into<PathBuf>) -> Self {
        Runc {
            binary: binary.into(),
            root: root.into(),
            global_args: Vec::new(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Global options put after `--root` on every call, e.g. `--platform=ptrace` for runsc.
    pub fn with_global_args(mut self, args: Vec<String>) -> Self {
        self.global_args = args;
        self
    }

    /// The global options of [`Runc::with_global_args`].
    pub fn global_args(&self) -> &[String] {
        &self.global_args
    }

    /// Overrides the per-call timeout (default 30 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The runtime binary.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// The state root this driver passes as `--root`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `runc create`: the container's init process is left waiting for `start`. Its stdio goes to
    /// /dev/null; runc's own log goes to `log_file`, which is read for the error message on failure.
    /// Returns the init pid read from the pid file.
    pub async fn create(&self, id: &str, bundle: &Path, log_file: &Path) -> Result<i32> {
        let pid_file = bundle.join("init.pid");
        let mut cmd = self.command_with_log(log_file);
        cmd.arg("create")
            .arg("--bundle")
            .arg(bundle)
            .arg("--pid-file")
            .arg(&pid_file)
            .arg(id);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let status = self.wait_status("create", id, cmd).await?;
        if !status.success() {
            let message = read_log_error(log_file);
            return Err(classify("create", id, status.code().unwrap_or(-1), message));
        }
        read_pid_file("create", id, &pid_file)
    }

    /// `runc start`.
    pub async fn start(&self, id: &str) -> Result<()> {
        self.run("start", id, &["start", id]).await.map(drop)
    }

    /// `runc kill ID SIGNAL` (`--all` to signal every process of the container).
    pub async fn kill(&self, id: &str, signal: i32, all: bool) -> Result<()> {
        let sig = signal.to_string();
        let mut args = vec!["kill"];
        if all {
            args.push("--all");
        }
        args.extend([id, sig.as_str()]);
        self.run("kill", id, &args).await.map(drop)
    }

    /// `runc update --resources FILE ID` (FILE holds OCI LinuxResources JSON).
    pub async fn update(&self, id: &str, resources_file: &Path) -> Result<()> {
        let file = resources_file.to_string_lossy();
        self.run("update", id, &["update", "--resources", &file, id])
            .await
            .map(drop)
    }

    /// `runc delete` (with `--force` only when asked: it costs about 100 ms).
    pub async fn delete(&self, id: &str, force: bool) -> Result<()> {
        let args: &[&str] = if force {
            &["delete", "--force", id]
        } else {
            &["delete", id]
        };
        self.run("delete", id, args).await.map(drop)
    }

    /// `runc state ID`.
    pub async fn state(&self, id: &str) -> Result<ContainerState> {
        let out = self.run("state", id, &["state", id]).await?;
        serde_json::from_slice(&out).map_err(|source| RuncError::Parse {
            op: "state",
            source,
        })
    }

    /// `runc list --format json` (an empty root lists nothing).
    pub async fn list(&self) -> Result<Vec<ContainerState>> {
        let out = self.run("list", "", &["list", "--format", "json"]).await?;
        let text = String::from_utf8_lossy(&out);
        if text.trim().is_empty() || text.trim() == "null" {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&out).map_err(|source| RuncError::Parse { op: "list", source })
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .args(&self.global_args)
            .arg("--log-format")
            .arg("json")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    fn command_with_log(&self, log_file: &Path) -> Command {
        let mut cmd = self.command();
        cmd.arg("--log").arg(log_file);
        cmd
    }

    async fn wait_status(
        &self,
        op: &'static str,
        id: &str,
        mut cmd: Command,
    ) -> Result<std::process::ExitStatus> {
        let mut child = cmd.spawn().map_err(|source| self.spawn_error(op, source))?;
        match tokio::time::timeout(self.timeout, child.wait()).await {
            Ok(status) => status.map_err(|source| self.spawn_error(op, source)),
            Err(_) => Err(self.timeout_error(op, id)),
        }
    }

    /// Runs a short command with piped output; returns stdout, or the error from stderr.
    async fn run(&self, op: &'static str, id: &str, args: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = self.command();
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        tracing::trace!(op, id, "runc");
        let child = cmd.spawn().map_err(|source| self.spawn_error(op, source))?;
        let out = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|source| self.spawn_error(op, source))?,
            Err(_) => return Err(self.timeout_error(op, id)),
        };
        let message = error_message(&String::from_utf8_lossy(&out.stderr));
        if out.status.success() {
            if !message.is_empty() {
                // e.g. delete's "Failed to remove paths": done, but something was left.
                tracing::warn!(op, id, message = %message, "runc succeeded with complaints");
            }
            return Ok(out.stdout);
        }
        Err(classify(op, id, out.status.code().unwrap_or(-1), message))
    }

    fn spawn_error(&self, op: &'static str, source: std::io::Error) -> RuncError {
        RuncError::Spawn {
            op,
            binary: self.binary.clone(),
            source,
        }
    }

    fn timeout_error(&self, op: &'static str, id: &str) -> RuncError {
        RuncError::Timeout {
            op,
            id: id.to_string(),
            timeout: self.timeout,
        }
    }
}

fn classify(op: &'static str, id: &str, code: i32, message: String) -> RuncError {
    if message.contains("does not exist") || message.contains("not exist") {
        return RuncError::NotFound {
            op,
            id: id.to_string(),
        };
    }
    RuncError::Failed {
        op,
        id: id.to_string(),
        code,
        message,
    }
}

fn read_pid_file(op: &'static str, id: &str, path: &Path) -> Result<i32> {
    let io = |source| RuncError::Io {
        op,
        id: id.to_string(),
        path: path.to_path_buf(),
        source,
    };
    let text = std::fs::read_to_string(path).map_err(io)?;
    text.trim().parse::<i32>().map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.to_string(),
        ))
    })
}

fn read_log_error(log_file: &Path) -> String {
    std::fs::read_to_string(log_file)
        .map(|text| error_message(&text))
        .unwrap_or_else(|e| format!("(no runc log: {e})"))
}

#[derive(Deserialize)]
struct LogLine {
    level: Option<String>,
    msg: Option<String>,
}

/// Extracts the error messages from runc's JSON log lines; falls back to the raw text.
pub fn error_message(text: &str) -> String {
    let errors: Vec<String> = text
        .lines()
        .filter_map(|line| serde_json::from_str::<LogLine>(line).ok())
        .filter(|l| matches!(l.level.as_deref(), Some("error" | "fatal")))
        .filter_map(|l| l.msg)
        .collect();
    if errors.is_empty() {
        text.trim().to_string()
    } else {
        errors.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes an executable script. The write happens in a child `sh`, never through a
    /// descriptor of this (multi-threaded) test process: a descriptor open for writing here
    /// would be inherited by another test's fork between its fork and exec, and exec'ing the
    /// script then fails with ETXTBSY ("Text file busy"), as CI saw.
    fn fake_runc(dir: &Path, script: &str) -> PathBuf {
        let path = dir.join("fake-runc");
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
            .arg(&path)
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let text = format!("#!/bin/sh\n{script}\n");
        std::io::Write::write_all(&mut sh.stdin.take().unwrap(), text.as_bytes()).unwrap();
        assert!(sh.wait().unwrap().success());
        path
    }

    #[test]
    fn error_message_takes_json_error_lines() {
        let text =
            "{\"level\":\"warning\",\"msg\":\"w\"}\n{\"level\":\"error\",\"msg\":\"boom\"}\n";
        assert_eq!(error_message(text), "boom");
        assert_eq!(error_message("plain text\n"), "plain text");
    }

    #[tokio::test]
    async fn passes_root_and_log_format_and_parses_state() {
        let dir = tempfile::tempdir().unwrap();
        let args_file = dir.path().join("args");
        let bin = fake_runc(
            dir.path(),
            &format!(
                "echo \"$@\" > {}\necho '{{\"id\":\"c1\",\"pid\":42,\"status\":\"running\",\"bundle\":\"/b\"}}'",
                args_file.display()
            ),
        );
        let runc = Runc::new(bin, "/run/test-root");
        let st = runc.state("c1").await.unwrap();
        assert_eq!(st.pid, 42);
        assert_eq!(st.status, "running");
        let args = std::fs::read_to_string(args_file).unwrap();
        assert_eq!(
            args.trim(),
            "--root /run/test-root --log-format json state c1"
        );
        let runsc =
            Runc::new(runc.binary(), "/r").with_global_args(vec!["--platform=ptrace".into()]);
        runsc.state("c1").await.unwrap();
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(
            args.trim(),
            "--root /r --platform=ptrace --log-format json state c1",
            "global args go after --root, before the command"
        );
    }

    #[tokio::test]
    async fn not_found_is_classified() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_runc(
            dir.path(),
            "echo '{\"level\":\"error\",\"msg\":\"container does not exist\"}' >&2; exit 1",
        );
        let err = Runc::new(bin, "/r").delete("x", false).await.unwrap_err();
        assert!(err.is_not_found(), "{err}");
    }

    #[tokio::test]
    async fn failure_carries_message_and_code() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_runc(
            dir.path(),
            "echo '{\"level\":\"error\",\"msg\":\"nope\"}' >&2; exit 3",
        );
        let err = Runc::new(bin, "/r").start("x").await.unwrap_err();
        match err {
            RuncError::Failed { code, message, .. } => {
                assert_eq!(code, 3);
                assert_eq!(message, "nope");
            }
            other => panic!("unexpected {other}"),
        }
    }

    #[tokio::test]
    async fn create_reads_pid_file_and_log_on_error() {
        let dir = tempfile::tempdir().unwrap();
        // The pid file is the argument after --pid-file, wherever it is (a positional guess
        // once wrote a file named `--pid-file` into the source tree).
        let ok = fake_runc(
            dir.path(),
            "while [ $# -gt 0 ]; do [ \"$1\" = --pid-file ] && echo 1234 > \"$2\"; shift; done",
        );
        let log = dir.path().join("log");
        let pid = Runc::new(ok, "/r")
            .create("c", dir.path(), &log)
            .await
            .unwrap();
        assert_eq!(pid, 1234);
        let bad = fake_runc(
            dir.path(),
            "while [ $# -gt 0 ]; do [ \"$1\" = --log ] && echo '{\"level\":\"error\",\"msg\":\"cannot create\"}' > \"$2\"; shift; done; exit 1",
        );
        let err = Runc::new(bad, "/r")
            .create("c", dir.path(), &log)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("cannot create"), "{err}");
    }

    #[tokio::test]
    async fn timeout_kills_the_call() {
        let dir = tempfile::tempdir().unwrap();
        let bin = fake_runc(dir.path(), "sleep 5");
        let runc = Runc::new(bin, "/r").with_timeout(Duration::from_millis(100));
        let err = runc.start("x").await.unwrap_err();
        assert!(matches!(err, RuncError::Timeout { .. }), "{err}");
    }
}
