//! One streaming session after the upgrade: the SPDY session, the client's streams, then the
//! exec'd process or the attach socket wired to them, and the exit status on the error stream.
//! A client that goes away ends the session; an exec'd process is then SIGKILLed.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    exec::{Process, Reader},
    remotecommand::{self, Streams},
    ExecTarget, Io, Settings, StreamRequest,
};

/// How long the output is drained after the process exits (a child it left behind may hold
/// the pipes open).
const DRAIN: Duration = Duration::from_secs(5);

/// Runs a session on an upgraded connection.
pub async fn session<IO>(io: IO, request: StreamRequest, protocol: &str, settings: &Settings)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let config = spdy::Config {
        idle_timeout: Some(settings.idle_timeout),
        ..spdy::Config::default()
    };
    let (mut session, mut incoming) = spdy::Session::server(io, config);
    let wanted = match &request {
        StreamRequest::Exec { io, .. } | StreamRequest::Attach { io, .. } => *io,
        StreamRequest::PortForward { netns, pod } => {
            super::portforward::serve(incoming, netns.clone(), pod.clone()).await;
            return;
        }
    };
    let timeout = settings.stream_creation_timeout;
    let streams = match remotecommand::accept(&mut incoming, wanted, protocol, timeout).await {
        Ok(s) => s,
        Err(e) => {
            tracing::info!(error = %e, "streaming session without its streams");
            session.go_away();
            return;
        }
    };
    match request {
        StreamRequest::Exec { target, cmd, io } => {
            exec(&mut session, streams, &target, &cmd, io, protocol).await
        }
        StreamRequest::Attach { socket, io } => {
            attach(&mut session, streams, &socket, io, protocol).await
        }
        StreamRequest::PortForward { .. } => {}
    }
    session.go_away();
    let _ = tokio::time::timeout(Duration::from_secs(5), session.closed()).await;
}

/// Copies `r` into stream `s` until EOF (or a read error, as a terminal's EIO at exit), then
/// sends FIN.
async fn pump_out(mut r: Reader, s: spdy::Stream) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.send(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
    let _ = s.finish().await;
}

/// Ends the error stream with the status of `code` (or a failure message).
async fn report(error: &spdy::Stream, protocol: &str, outcome: Result<i32, String>) {
    let body = match outcome {
        Ok(code) => remotecommand::error_stream_body(protocol, code),
        Err(message) if protocol == "v4.channel.k8s.io" => Some(remotecommand::failure(&message)),
        Err(message) => Some(message),
    };
    if let Some(body) = body {
        let _ = error.send(body.as_bytes()).await;
    }
    let _ = error.finish().await;
}

async fn exec(
    session: &mut spdy::Session,
    streams: Streams,
    target: &ExecTarget,
    cmd: &[String],
    io: Io,
    protocol: &str,
) {
    let mut process = match Process::spawn(target, cmd, io).await {
        Ok(p) => p,
        Err(e) => return report(&streams.error, protocol, Err(e)).await,
    };
    let mut tasks = tokio::task::JoinSet::new();
    if let (Some(mut s), Some(mut w)) = (streams.stdin, process.stdin.take()) {
        tasks.spawn(async move {
            while let Some(data) = s.recv().await {
                if w.write_all(&data).await.is_err() {
                    break;
                }
                let _ = w.flush().await;
            }
            let _ = w.shutdown().await; // stdin's FIN is the process's EOF
        });
    }
    if let (Some(mut s), Some(resizer)) = (streams.resize, process.resizer()) {
        tasks.spawn(async move {
            let mut pending = Vec::new();
            while let Some(data) = s.recv().await {
                pending.extend_from_slice(&data);
                for size in remotecommand::sizes(&mut pending) {
                    resizer.resize(size);
                }
            }
        });
    }
    let mut outputs = tokio::task::JoinSet::new();
    for (stream, reader) in [
        (streams.stdout, process.stdout.take()),
        (streams.stderr, process.stderr.take()),
    ] {
        if let (Some(s), Some(r)) = (stream, reader) {
            outputs.spawn(pump_out(r, s));
        }
    }
    let outcome = tokio::select! {
        code = process.wait() => code,
        _ = session.closed() => {
            tracing::info!(container = %target.container_id, "exec client went away; killing the process");
            process.kill();
            let _ = process.wait().await;
            return;
        }
    };
    let _ = tokio::time::timeout(DRAIN, async {
        while outputs.join_next().await.is_some() {}
    })
    .await;
    outputs.abort_all();
    tasks.abort_all();
    report(&streams.error, protocol, outcome).await;
}

async fn attach(
    session: &mut spdy::Session,
    streams: Streams,
    socket: &std::path::Path,
    io: Io,
    protocol: &str,
) {
    let connected = crust_shim::attach::connect(socket).and_then(|s| {
        s.set_nonblocking(true)?;
        tokio::net::UnixStream::from_std(s)
    });
    let conn = match connected {
        Ok(c) => c,
        Err(e) => {
            let message = format!("attach socket {}: {e}", socket.display());
            return report(&streams.error, protocol, Err(message)).await;
        }
    };
    let (mut from_shim, mut to_shim) = conn.into_split();
    let stdin = streams.stdin.map(|mut s| {
        tokio::spawn(async move {
            while let Some(data) = s.recv().await {
                if to_shim.write_all(&data).await.is_err() {
                    break;
                }
            }
            let _ = to_shim.shutdown().await; // the shim sees the session's end (stdin_once)
        })
    });
    let (stdout, stderr) = (streams.stdout, if io.tty { None } else { streams.stderr });
    let copy = async {
        let mut header = [0u8; 5];
        loop {
            if from_shim.read_exact(&mut header).await.is_err() {
                break;
            }
            let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
            let mut data = vec![0u8; len.min(1 << 20)];
            if from_shim.read_exact(&mut data).await.is_err() {
                break;
            }
            let target = if header[0] == 2 {
                stderr.as_ref()
            } else {
                stdout.as_ref()
            };
            if let Some(s) = target {
                if s.send(&data).await.is_err() {
                    break;
                }
            }
        }
    };
    tokio::select! {
        _ = copy => {}
        _ = session.closed() => {
            if let Some(t) = stdin { t.abort(); }
            return;
        }
    }
    if let Some(t) = stdin {
        t.abort();
    }
    for s in [stdout, stderr].into_iter().flatten() {
        let _ = s.finish().await;
    }
    report(&streams.error, protocol, Ok(0)).await;
}
