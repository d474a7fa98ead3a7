//! Port-forward over SPDY (`portforward.k8s.io`): the client opens an error and a data stream per
//! connection, both with headers `port` and `requestID`; each pair is one TCP connection to
//! `localhost:PORT` inside the pod's network namespace (the host's loopback for host-network
//! pods). The socket is made on a fresh thread that enters the pinned netns (so no async worker
//! ever changes namespace), then driven async. A refused port is a message on that request's
//! error stream; the session goes on. Many requests run at once.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream},
    os::fd::AsFd,
    path::{Path, PathBuf},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    sync::mpsc,
};

/// The port-forward protocol.
pub const PROTOCOL: &str = "portforward.k8s.io";

/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `localhost:port` (IPv4, then IPv6) inside the netns at `netns`, or on the host's
/// loopback without one. Blocking: runs on its own thread.
fn connect_in(netns: Option<&Path>, port: u16) -> std::io::Result<TcpStream> {
    if let Some(path) = netns {
        let ns = std::fs::File::open(path)?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e4) => {
            let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
            TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e4)
        }
    }
}

/// [`connect_in`] on a new thread (the netns change dies with it), as a tokio stream.
pub(super) async fn connect(
    netns: Option<PathBuf>,
    port: u16,
) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("crust-portforward".into())
        .spawn(move || {
            let _ = tx.send(connect_in(netns.as_deref(), port));
        })?;
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("connect thread died"))??;
    stream.set_nonblocking(true)?;
    let _ = stream.set_nodelay(true);
    tokio::net::TcpStream::from_std(stream)
}

/// One forwarded connection: its two streams.
struct Pair {
    data: Option<spdy::Stream>,
    error: Option<spdy::Stream>,
}

/// Serves a port-forward session until the client goes.
pub async fn serve(
    mut incoming: mpsc::Receiver<spdy::Stream>,
    netns: Option<PathBuf>,
    pod: String,
) {
    let mut pending: HashMap<String, Pair> = HashMap::new();
    while let Some(stream) = incoming.recv().await {
        let _ = stream.reply(&[(":status", "200"), (":version", "HTTP/1.1")], false);
        let request = stream.header("requestid").unwrap_or("").to_string();
        let kind = stream.header("streamtype").unwrap_or("").to_string();
        let pair = pending.entry(request.clone()).or_insert(Pair {
            data: None,
            error: None,
        });
        match kind.as_str() {
            "data" => pair.data = Some(stream),
            "error" => pair.error = Some(stream),
            _ => {
                stream.reset(spdy::frame::rst::PROTOCOL_ERROR);
                continue;
            }
        }
        if pair.data.is_some() && pair.error.is_some() {
            if let Some(Pair {
                data: Some(data),
                error: Some(error),
            }) = pending.remove(&request)
            {
                tokio::spawn(forward(data, error, netns.clone(), pod.clone()));
            }
        }
    }
}

/// Forwards one data stream to its port; a failure goes on the error stream.
async fn forward(mut data: spdy::Stream, error: spdy::Stream, netns: Option<PathBuf>, pod: String) {
    let port = data
        .header("port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p > 0);
    let Some(port) = port else {
        let _ = error.send(b"invalid port header").await;
        let _ = error.finish().await;
        return;
    };
    let tcp = match connect(netns, port).await {
        Ok(t) => t,
        Err(e) => {
            let message = format!(
                "error forwarding port {port} to pod {pod}: failed to connect to localhost:{port} inside its network namespace: {e}"
            );
            let _ = error.send(message.as_bytes()).await;
            let _ = error.finish().await;
            let _ = data.finish().await;
            return;
        }
    };
    let (mut from_port, mut to_port) = tcp.into_split();
    let sender = data.sender();
    let upstream = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_port.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.send(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = sender.finish().await;
    };
    let downstream = async move {
        while let Some(chunk) = data.recv().await {
            if to_port.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_port.shutdown().await;
    };
    tokio::join!(upstream, downstream);
    let _ = error.finish().await;
}
