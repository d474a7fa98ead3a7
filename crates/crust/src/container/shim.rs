//! Starting crust-shim for a container: it runs `runc create` itself, answers `ok <init pid>
//! <shim pid>` (or `error <message>`) on stdout, and stays behind as the container's monitor.
//! The spawn runs on a blocking thread (it waits for `runc create`).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use super::ContainerError;
use crate::oci_runtime::RuntimeCli;

/// What to start the shim with.
#[derive(Debug, Clone)]
pub struct ShimArgs {
    pub id: String,
    pub bundle: PathBuf,
    pub runtime: RuntimeCli,
    pub log_path: PathBuf,
    /// The pod's log directory, below which the shim resolves `log_path` without symlinks.
    pub log_root: Option<PathBuf>,
    pub exit_file: PathBuf,
    /// The container has a terminal (its output arrives on a pty).
    pub tty: bool,
    /// The container reads stdin, fed by attach clients.
    pub stdin: bool,
    /// Stdin closes after the first attach session.
    pub stdin_once: bool,
}

/// Pids the shim reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    pub init_pid: i32,
    pub shim_pid: i32,
    /// The runtime runs the container inside a sandbox process (runsc): the shim starts it.
    pub sandboxed: bool,
}

/// Parses the shim's answer.
pub fn parse_answer(text: &str) -> Result<Started, ContainerError> {
    let line = text.lines().next().unwrap_or("").trim();
    if let Some(message) = line.strip_prefix("error ") {
        return Err(ContainerError::Shim(message.to_string()));
    }
    let parts: Vec<&str> = line
        .strip_prefix("ok ")
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let pid = |i: usize| parts.get(i).and_then(|p| p.parse::<i32>().ok());
    match (pid(0), pid(1), parts.get(2).copied()) {
        (Some(init_pid), Some(shim_pid), mode @ (None | Some("sandboxed"))) => Ok(Started {
            init_pid,
            shim_pid,
            sandboxed: mode.is_some(),
        }),
        _ => Err(ContainerError::Shim(format!("unexpected answer {line:?}"))),
    }
}

/// Runs `binary` with `args` and waits for its answer.
pub async fn start(binary: &Path, args: ShimArgs) -> Result<Started, ContainerError> {
    let binary = binary.to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(&binary);
        if args.tty {
            cmd.arg("--tty");
        }
        if args.stdin {
            cmd.arg("--stdin");
        }
        if args.stdin_once {
            cmd.arg("--stdin-once");
        }
        if let Some(root) = &args.log_root {
            cmd.arg("--log-root").arg(root);
        }
        cmd.arg("--id")
            .arg(&args.id)
            .arg("--bundle")
            .arg(&args.bundle)
            .args(args.runtime.shim_flags())
            .arg("--log-path")
            .arg(&args.log_path)
            .arg("--exit-file")
            .arg(&args.exit_file)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| ContainerError::Shim(format!("run {}: {e}", binary.display())))
    })
    .await
    .map_err(|e| ContainerError::Task(e.to_string()))??;
    let text = String::from_utf8_lossy(&output.stdout);
    if text.trim().is_empty() {
        return Err(ContainerError::Shim(format!(
            "no answer (exit {:?}): {}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    parse_answer(&text)
}

/// The exit file the shim writes: `{"exit_code": N, "exited_at_ns": T}` (for shim-v2 tasks
/// crustd writes it from the shim's answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitFile {
    pub exit_code: i32,
    pub exited_at_ns: i64,
}

impl ExitFile {
    /// Writes the file atomically.
    pub fn write(&self, path: &Path) -> Result<(), crate::store::RecordError> {
        let body = serde_json::to_vec(self).unwrap_or_default();
        crate::store::write_atomic(path, &body)
    }
}

/// Reads the exit file; `None` when it is missing or unreadable.
pub fn read_exit(path: &Path) -> Option<ExitFile> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        assert_eq!(
            parse_answer("ok 12 34\n").unwrap(),
            Started {
                init_pid: 12,
                sandboxed: false,
                shim_pid: 34
            }
        );
        let err = parse_answer("error runc create failed: no such file\n").unwrap_err();
        assert!(err.to_string().contains("no such file"));
        assert!(parse_answer("ok x").is_err());
        assert!(parse_answer("ok 12 34 sandboxed").unwrap().sandboxed);
        assert!(parse_answer("ok 12 34 other").is_err());
    }
}
