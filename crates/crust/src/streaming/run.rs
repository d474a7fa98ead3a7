//! One SPDY streaming session after the upgrade: the SPDY session, the client's streams turned
//! into [`Channels`], then exec, attach or port-forward. A client that goes away ends the
//! session; an exec'd process is then SIGKILLed.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use tokio::{
    io::{AsyncRead, AsyncWrite},
    sync::mpsc,
};

use super::{
    channels::{self, Channels, Fut, Sink},
    remotecommand, Settings, StreamRequest,
};

/// An output channel on a SPDY stream.
struct SpdySink(spdy::session::StreamSender);

impl Sink for SpdySink {
    fn send<'a>(&'a self, data: &'a [u8]) -> Fut<'a, bool> {
        Box::pin(async move { self.0.send(data).await.is_ok() })
    }

    fn finish(&self) -> Fut<'_, ()> {
        Box::pin(async move {
            let _ = self.0.finish().await;
        })
    }
}

/// The data of an input stream, as a channel (ends at the stream's FIN).
fn inbound(mut stream: spdy::Stream) -> mpsc::UnboundedReceiver<Bytes> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(data) = stream.recv().await {
            if tx.send(data).is_err() {
                break;
            }
        }
    });
    rx
}

fn sink(stream: &spdy::Stream) -> Arc<dyn Sink> {
    Arc::new(SpdySink(stream.sender()))
}

/// Runs a session on an upgraded connection.
pub async fn session<IO>(io: IO, request: StreamRequest, protocol: &str, settings: &Settings)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let config = spdy::Config {
        idle_timeout: Some(settings.idle_timeout),
        max_streams: settings.max_streams,
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
    let ch = Channels {
        stdout: streams.stdout.as_ref().map(sink),
        stderr: streams.stderr.as_ref().map(sink),
        error: sink(&streams.error),
        stdin: streams.stdin.map(inbound),
        resize: streams.resize.map(inbound),
    };
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    let mut watcher = session.watch();
    tokio::spawn(async move {
        watcher.closed().await;
        let _ = closed_tx.send(());
    });
    let gone = async {
        let _ = closed_rx.await;
    };
    channels::serve(ch, request, protocol, gone).await;
    session.go_away();
    let _ = tokio::time::timeout(Duration::from_secs(5), session.closed()).await;
}
