//! The transport-neutral half of remotecommand: a session's channels (stdin and resize in,
//! stdout, stderr and error out) wired to an exec'd process or the attach socket, the exit
//! status on the error channel, and the kill when the client goes. SPDY streams and WebSocket
//! channels both become [`Channels`].

use std::{future::Future, path::Path, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

use super::{
    exec::{Process, Reader},
    remotecommand, AttachTarget, ExecTarget, Io, TaskAttach,
};

/// How long the output is drained after the process exits (a child it left behind may hold
/// the pipes open).
const DRAIN: Duration = Duration::from_secs(5);

/// A boxed future (for the sink trait).
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where one output channel goes.
pub trait Sink: Send + Sync {
    /// Sends data; false once the peer is gone.
    fn send<'a>(&'a self, data: &'a [u8]) -> Fut<'a, bool>;
    /// Ends the channel.
    fn finish(&self) -> Fut<'_, ()>;
}

/// A session's channels.
pub struct Channels {
    pub stdin: Option<mpsc::UnboundedReceiver<Bytes>>,
    pub resize: Option<mpsc::UnboundedReceiver<Bytes>>,
    pub stdout: Option<Arc<dyn Sink>>,
    pub stderr: Option<Arc<dyn Sink>>,
    pub error: Arc<dyn Sink>,
}

/// Copies `r` to `sink` until EOF (or a read error, as a terminal's EIO at exit), then ends it.
async fn pump_out(mut r: Reader, sink: Arc<dyn Sink>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !sink.send(&buf[..n]).await {
                    return;
                }
            }
        }
    }
    sink.finish().await;
}

/// Ends the error channel with the status of `outcome` for `protocol`.
pub async fn report(error: &dyn Sink, protocol: &str, outcome: Result<i32, String>) {
    let v4 = protocol.starts_with("v4.") || protocol.starts_with("v5.");
    let body = match outcome {
        Ok(code) if v4 => Some(remotecommand::exit_status(code)),
        Ok(0) => None,
        Ok(code) => Some(format!(
            "command terminated with non-zero exit code: exit status {code}"
        )),
        Err(message) if v4 => Some(remotecommand::failure(&message)),
        Err(message) => Some(message),
    };
    if let Some(body) = body {
        error.send(body.as_bytes()).await;
    }
    error.finish().await;
}

/// Runs an Exec or Attach request on the session's channels (port-forward has none).
pub async fn serve(
    ch: Channels,
    request: super::StreamRequest,
    protocol: &str,
    gone: impl Future<Output = ()>,
) {
    match request {
        super::StreamRequest::Exec { target, cmd, io } => {
            exec(ch, &target, &cmd, io, protocol, gone).await
        }
        super::StreamRequest::Attach { target, io } => {
            attach(ch, &target, io, protocol, gone).await
        }
        super::StreamRequest::PortForward { .. } => {}
    }
}

/// Runs `cmd` in the target with the session's channels until it exits (status on the error
/// channel) or `gone` resolves (the process is then SIGKILLed).
pub async fn exec(
    mut ch: Channels,
    target: &ExecTarget,
    cmd: &[String],
    io: Io,
    protocol: &str,
    gone: impl Future<Output = ()>,
) {
    let mut process = match Process::spawn(target, cmd, io).await {
        Ok(p) => p,
        Err(e) => {
            for s in [&ch.stdout, &ch.stderr].into_iter().flatten() {
                s.finish().await;
            }
            return report(ch.error.as_ref(), protocol, Err(e)).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let (Some(mut rx), Some(mut w)) = (ch.stdin.take(), process.stdin.take()) {
        let closer = process.stdin_closer();
        tasks.spawn(async move {
            while let Some(data) = rx.recv().await {
                if w.write_all(&data).await.is_err() {
                    break;
                }
                let _ = w.flush().await;
            }
            let _ = w.shutdown().await; // the client's stdin EOF is the process's
            drop(w);
            if let Some(closer) = closer {
                closer.close_stdin().await;
            }
        });
    }
    if let (Some(mut rx), Some(resizer)) = (ch.resize.take(), process.resizer()) {
        tasks.spawn(async move {
            let mut pending = Vec::new();
            while let Some(data) = rx.recv().await {
                pending.extend_from_slice(&data);
                for size in remotecommand::sizes(&mut pending) {
                    resizer.resize(size).await;
                }
            }
        });
    }
    let mut outputs = tokio::task::JoinSet::new();
    for (sink, reader) in [
        (ch.stdout.clone(), process.stdout.take()),
        (ch.stderr.clone(), process.stderr.take()),
    ] {
        if let (Some(s), Some(r)) = (sink, reader) {
            outputs.spawn(pump_out(r, s));
        }
    }
    let outcome = tokio::select! {
        code = process.wait() => code,
        _ = gone => {
            tracing::info!(container = %target.container_id, "exec client went away; killing the process");
            process.kill().await;
            let _ = process.wait().await;
            tasks.abort_all();
            outputs.abort_all();
            return;
        }
    };
    let _ = tokio::time::timeout(DRAIN, async {
        while outputs.join_next().await.is_some() {}
    })
    .await;
    outputs.abort_all();
    tasks.abort_all();
    report(ch.error.as_ref(), protocol, outcome).await;
}

/// Connects to one of crust-shim's sockets (through its short path), async.
fn connect_shim(socket: &Path) -> std::io::Result<tokio::net::UnixStream> {
    let s = crust_shim::attach::connect(socket)?;
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

/// Passes a tty container's resize messages to its shim's resize socket.
async fn forward_resizes(mut rx: mpsc::UnboundedReceiver<Bytes>, socket: std::path::PathBuf) {
    let Ok(mut conn) = connect_shim(&socket) else {
        tracing::debug!(socket = %socket.display(), "no resize socket; sizes are dropped");
        return;
    };
    while let Some(data) = rx.recv().await {
        if conn.write_all(&data).await.is_err() {
            break;
        }
    }
}

/// Passes a shim-v2 container's resize messages to its shim (ResizePty).
async fn forward_resizes_to_task(mut rx: mpsc::UnboundedReceiver<Bytes>, task: TaskAttach) {
    let mut pending = Vec::new();
    while let Some(data) = rx.recv().await {
        pending.extend_from_slice(&data);
        for size in remotecommand::sizes(&mut pending) {
            let resized = task
                .runtime
                .resize_pty(&task.container_id, size.width, size.height);
            if let Err(e) = resized.await {
                tracing::debug!(container = %task.container_id, error = %e, "resize through the shim");
            }
        }
    }
}

/// Where a session's resize messages go: the shim (shim-v2) or crust-shim's resize socket.
fn forward_resizes_for(
    rx: mpsc::UnboundedReceiver<Bytes>,
    target: &AttachTarget,
) -> Option<tokio::task::JoinHandle<()>> {
    if let Some(task) = &target.task {
        return Some(tokio::spawn(forward_resizes_to_task(rx, task.clone())));
    }
    let dir = target.socket.parent()?;
    let socket = dir.join(crust_shim::attach::RESIZE_SOCKET);
    Some(tokio::spawn(forward_resizes(rx, socket)))
}

/// Bridges the session to the attach socket (crust-shim's, or task-io's) until the container's
/// output ends (it exited) or `gone` resolves (the client left; the socket's server sees the
/// session end). With `stdin_once`, the end of a shim-v2 container's session is also the shim's
/// CloseIO (the shim holds the stdin FIFO open itself).
pub async fn attach(
    ch: Channels,
    target: &AttachTarget,
    io: Io,
    protocol: &str,
    gone: impl Future<Output = ()>,
) {
    attach_socket(ch, target, io, protocol, gone).await;
    if let Some(task) = target.task.as_ref().filter(|t| io.stdin && t.stdin_once) {
        if let Err(e) = task.runtime.close_stdin(&task.container_id).await {
            tracing::debug!(container = %task.container_id, error = %e, "CloseIO after a stdin_once attach");
        }
    }
}

async fn attach_socket(
    mut ch: Channels,
    target: &AttachTarget,
    io: Io,
    protocol: &str,
    gone: impl Future<Output = ()>,
) {
    let socket = target.socket.as_path();
    let conn = match connect_shim(socket) {
        Ok(c) => c,
        Err(e) => {
            let message = format!("attach socket {}: {e}", socket.display());
            return report(ch.error.as_ref(), protocol, Err(message)).await;
        }
    };
    let (mut from_shim, mut to_shim) = conn.into_split();
    // Without stdin the write half is kept open until the end: dropping it shuts it down, which
    // the shim takes for the session's end.
    let (stdin, _keep) = match ch.stdin.take() {
        Some(mut rx) => {
            let task = tokio::spawn(async move {
                while let Some(data) = rx.recv().await {
                    if to_shim.write_all(&data).await.is_err() {
                        break;
                    }
                }
                let _ = to_shim.shutdown().await; // the shim sees the session end (stdin_once)
            });
            (Some(task), None)
        }
        None => (None, Some(to_shim)),
    };
    let resize = match ch.resize.take() {
        Some(rx) if io.tty => forward_resizes_for(rx, target),
        _ => None,
    };
    let stderr = if io.tty { None } else { ch.stderr.clone() };
    let stdout = ch.stdout.clone();
    let copy = async {
        let mut header = [0u8; 5];
        while from_shim.read_exact(&mut header).await.is_ok() {
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut data = vec![0u8; len.min(1 << 20)];
            if from_shim.read_exact(&mut data).await.is_err() {
                break;
            }
            let target = if header[0] == 2 { &stderr } else { &stdout };
            if let Some(s) = target {
                if !s.send(&data).await {
                    break;
                }
            }
        }
    };
    let ended = tokio::select! {
        _ = copy => true,
        _ = gone => false,
    };
    for t in [stdin, resize].into_iter().flatten() {
        t.abort();
    }
    if ended {
        for s in [stdout, stderr].into_iter().flatten() {
            s.finish().await;
        }
        report(ch.error.as_ref(), protocol, Ok(0)).await;
    }
}
