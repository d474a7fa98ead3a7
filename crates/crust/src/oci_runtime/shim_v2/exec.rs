//! ExecSync through the shim: the container's own process spec (env, user, capabilities) with
//! the new argv, output through two FIFOs in a scratch dir of the task bundle, capped as the CLI
//! path caps it, a timeout after which the exec'd process is killed, then Delete of the exec.
//!
//! The FIFOs are read from an `O_RDONLY | O_NONBLOCK` end opened before the shim opens its
//! writer; a second read-write end keeps that first read from seeing EOF before the shim has
//! connected, and is dropped once Start returned (the shim then holds its writer), so EOF comes
//! exactly when the shim has copied everything and closed.

use std::{path::Path, time::Duration};

use shim_v2::api;

use super::{io_err, ShimV2Runtime};
use crate::{
    container::exec::{read_capped, ExecOutput, MAX_OUTPUT},
    oci_runtime::OciError,
};

/// One output FIFO: the end read, and the end that holds it open until the shim connects.
pub(super) struct Fifo {
    pub(super) reader: tokio::net::unix::pipe::Receiver,
    holder: std::fs::File,
}

pub(super) fn make_fifo(path: &Path) -> Result<Fifo, OciError> {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).map_err(|e| {
        OciError::Io {
            what: "make the FIFO",
            path: path.to_path_buf(),
            source: e.into(),
        }
    })?;
    let holder = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err("open", path))?;
    let reader = tokio::net::unix::pipe::OpenOptions::new()
        .open_receiver(path)
        .map_err(io_err("open", path))?;
    Ok(Fifo { reader, holder })
}

/// The container's process spec with `cmd` as its argv, with a terminal or not.
pub(super) fn process_spec(dir: &Path, cmd: &[String], tty: bool) -> Result<Vec<u8>, OciError> {
    let file = dir.join("config.json");
    let text = std::fs::read(&file).map_err(io_err("read", &file))?;
    let spec: serde_json::Value = serde_json::from_slice(&text).map_err(|e| OciError::Io {
        what: "parse",
        path: file.clone(),
        source: std::io::Error::other(e),
    })?;
    let mut process = spec["process"].clone();
    process["args"] = serde_json::json!(cmd);
    process["terminal"] = serde_json::json!(tty);
    Ok(process.to_string().into_bytes())
}

/// Runs `cmd` in task `id`; `timeout` zero = none.
pub(super) async fn exec_sync(
    rt: &ShimV2Runtime,
    id: &str,
    cmd: &[String],
    timeout: Duration,
) -> Result<ExecOutput, OciError> {
    let conn = rt.conn_for(id).await?;
    let exec_id = format!("exec-{}", &crate::store::id::new_id()[..16]);
    let scratch = rt.task_dir(id).join(&exec_id);
    std::fs::create_dir_all(&scratch).map_err(io_err("create", &scratch))?;
    let result = run(rt, &conn.shim, id, &exec_id, &scratch, cmd, timeout).await;
    let _ = conn.shim.delete(id, &exec_id).await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

async fn run(
    rt: &ShimV2Runtime,
    shim: &shim_v2::Shim,
    id: &str,
    exec_id: &str,
    scratch: &Path,
    cmd: &[String],
    timeout: Duration,
) -> Result<ExecOutput, OciError> {
    let (out_path, err_path) = (scratch.join("stdout"), scratch.join("stderr"));
    let (out, err) = (make_fifo(&out_path)?, make_fifo(&err_path)?);
    let req = api::ExecProcessRequest {
        id: id.to_string(),
        exec_id: exec_id.to_string(),
        stdout: out_path.to_string_lossy().into_owned(),
        stderr: err_path.to_string_lossy().into_owned(),
        spec: Some(shim_v2::process_spec(&process_spec(
            &rt.task_dir(id),
            cmd,
            false,
        )?))
        .into(),
        ..Default::default()
    };
    shim.exec(&req).await?;
    shim.start(id, exec_id).await?;
    drop((out.holder, err.holder));
    let stdout = tokio::spawn(read_capped(out.reader, MAX_OUTPUT));
    let stderr = tokio::spawn(read_capped(err.reader, MAX_OUTPUT));
    let mut timed_out = false;
    let status = if timeout.is_zero() {
        shim.wait(id, exec_id).await?
    } else {
        match tokio::time::timeout(timeout, shim.wait(id, exec_id)).await {
            Ok(status) => status?,
            Err(_) => {
                timed_out = true;
                shim.kill(id, exec_id, libc::SIGKILL as u32, false).await?;
                shim.wait(id, exec_id).await?
            }
        }
    };
    Ok(ExecOutput {
        stdout: stdout.await.unwrap_or_default(),
        stderr: stderr.await.unwrap_or_default(),
        exit_code: status as i32,
        timed_out,
    })
}
