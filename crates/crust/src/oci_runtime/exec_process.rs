//! The process an exec runs: the container's own process spec (user, groups, capabilities, env,
//! cwd, rlimits, AppArmor, no_new_privileges) from its bundle's `config.json`, with the exec's
//! argv and terminal. CLI runtimes get it as `exec --process FILE`, as containerd passes it:
//! the command line alone is not the same thing everywhere (`runsc exec ID CMD` runs CMD as
//! root, whoever the container runs as); shims get it in ExecProcess.

use std::{
    io::Write as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

use super::OciError;

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OciError {
    let path = path.to_path_buf();
    move |source| OciError::Io { what, path, source }
}

/// The process spec of the container whose bundle is `bundle`, with `cmd` as its argv and a
/// terminal or not.
pub fn spec(bundle: &Path, cmd: &[String], tty: bool) -> Result<Vec<u8>, OciError> {
    let file = bundle.join("config.json");
    let text = std::fs::read(&file).map_err(io_err("read", &file))?;
    let spec: serde_json::Value = serde_json::from_slice(&text)
        .map_err(|e| io_err("parse", &file)(std::io::Error::other(e)))?;
    let mut process = spec["process"].clone();
    if !process.is_object() {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "no process in the spec");
        return Err(io_err("parse", &file)(e));
    }
    process["args"] = serde_json::json!(cmd);
    process["terminal"] = serde_json::json!(tty);
    Ok(process.to_string().into_bytes())
}

/// One CLI exec's files in the container's dir: the process spec it runs (`--process`) and the
/// pid file the runtime writes (`--pid-file`). Both go when this is dropped.
#[derive(Debug)]
pub struct ExecFiles {
    pub process: PathBuf,
    pub pid: PathBuf,
}

impl ExecFiles {
    /// Writes the process spec of `cmd` for the container whose bundle is `bundle` (mode 0600:
    /// it holds the container's environment).
    pub fn write(bundle: &Path, cmd: &[String], tty: bool) -> Result<ExecFiles, OciError> {
        let name = format!("exec-{}", &crate::store::id::new_id()[..16]);
        let files = ExecFiles {
            process: bundle.join(format!("{name}.json")),
            pid: bundle.join(format!("{name}.pid")),
        };
        let spec = spec(bundle, cmd, tty)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&files.process)
            .map_err(io_err("create", &files.process))?;
        file.write_all(&spec)
            .map_err(io_err("write", &files.process))?;
        Ok(files)
    }
}

impl ExecFiles {
    /// `runtime exec --pid-file PID --process SPEC ID`, killed when dropped; stdio still to set.
    pub fn command(&self, runtime: &super::RuntimeCli, id: &str) -> tokio::process::Command {
        let mut command = runtime.command();
        command
            .arg("exec")
            .arg("--pid-file")
            .arg(&self.pid)
            .arg("--process")
            .arg(&self.process)
            .arg(id)
            .kill_on_drop(true);
        command
    }
}

impl Drop for ExecFiles {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.process);
        let _ = std::fs::remove_file(&self.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exec_runs_the_containers_process_with_its_own_argv() {
        let dir = tempfile::tempdir().unwrap();
        let process = serde_json::json!({
            "user": {"uid": 1000, "gid": 1000, "additionalGids": [4000]},
            "args": ["sleep", "1000"], "env": ["A=1"], "cwd": "/tmp", "terminal": false,
        });
        let config = serde_json::json!({"ociVersion": "1.0.2", "process": process});
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        let cmd = ["id".to_string(), "-u".to_string()];
        let files = ExecFiles::write(dir.path(), &cmd, true).unwrap();
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files.process).unwrap()).unwrap();
        assert_eq!(written["args"], serde_json::json!(["id", "-u"]));
        assert_eq!(written["terminal"], true);
        assert_eq!(
            (&written["user"], &written["cwd"]),
            (&process["user"], &process["cwd"])
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.process)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (spec, pid) = (files.process.clone(), files.pid.clone());
        std::fs::write(&pid, "1").unwrap();
        drop(files);
        assert!(!spec.exists() && !pid.exists());
        std::fs::write(dir.path().join("config.json"), "{}").unwrap();
        assert!(
            ExecFiles::write(dir.path(), &cmd, false).is_err(),
            "no process"
        );
    }
}
