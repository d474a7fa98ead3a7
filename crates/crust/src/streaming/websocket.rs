//! remotecommand and port-forward over WebSocket (tokio-tungstenite), the path newer clients
//! take. Every message starts with a channel byte: remotecommand 0 stdin, 1 stdout, 2 stderr,
//! 3 error, 4 resize, and in v5 255 = "this channel is closed" (then the channel byte); the
//! `base64.` subprotocols send text messages whose first character is the channel digit and
//! the rest base64. Port-forward takes its ports from the query (`?port=80&port=8080`): the
//! i-th port has data channel 2i and error channel 2i+1, and each channel's first message is
//! the port number (2 bytes, little endian).

use std::{path::PathBuf, sync::Arc, time::Duration};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::mpsc,
};
use tokio_tungstenite::{
    tungstenite::{protocol::Role, Message},
    WebSocketStream,
};

use super::{
    channels::{self, Channels, Fut, Sink},
    Settings, StreamRequest,
};

/// remotecommand subprotocols served, in the server's preference.
pub const REMOTECOMMAND: [&str; 5] = [
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];
/// Port-forward subprotocols served.
pub const PORTFORWARD: [&str; 4] = [
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
];

/// The v5 "channel closed" marker.
const CLOSE: u8 = 255;

/// What the writer task sends.
enum Out {
    Data(u8, Bytes),
    Close,
}

/// Encodes one channel message for the subprotocol.
fn encode(base64: bool, channel: u8, data: &[u8]) -> Message {
    if base64 {
        let text = format!(
            "{}{}",
            char::from(b'0' + channel.min(9)),
            base64::engine::general_purpose::STANDARD.encode(data)
        );
        Message::Text(text.into())
    } else {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(channel);
        v.extend_from_slice(data);
        Message::Binary(v.into())
    }
}

/// The channel and payload of a client message (`None`: not a channel message).
fn decode(base64: bool, msg: &Message) -> Option<(u8, Vec<u8>)> {
    match msg {
        Message::Binary(b) if !b.is_empty() => Some((b[0], b[1..].to_vec())),
        Message::Text(t) if base64 && !t.is_empty() => {
            let channel = t.as_bytes()[0].checked_sub(b'0')?;
            let data = base64::engine::general_purpose::STANDARD
                .decode(&t.as_bytes()[1..])
                .ok()?;
            Some((channel, data))
        }
        _ => None,
    }
}

/// An output channel.
struct WsSink {
    channel: u8,
    v5: bool,
    out: mpsc::UnboundedSender<Out>,
}

impl Sink for WsSink {
    fn send<'a>(&'a self, data: &'a [u8]) -> Fut<'a, bool> {
        let ok = self
            .out
            .send(Out::Data(self.channel, Bytes::copy_from_slice(data)))
            .is_ok();
        Box::pin(async move { ok })
    }

    fn finish(&self) -> Fut<'_, ()> {
        if self.v5 {
            let _ = self
                .out
                .send(Out::Data(CLOSE, Bytes::copy_from_slice(&[self.channel])));
        }
        Box::pin(async {})
    }
}

/// Runs a WebSocket session on an upgraded connection.
pub async fn session<IO>(
    io: IO,
    request: StreamRequest,
    protocol: String,
    settings: Settings,
    ports: Vec<u16>,
) where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut stream) = ws.split();
    let base64 = protocol.contains("base64");
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Out>();
    let writer = tokio::spawn(async move {
        while let Some(out) = out_rx.recv().await {
            let msg = match out {
                Out::Data(channel, data) => encode(base64, channel, &data),
                Out::Close => Message::Close(None),
            };
            let close = matches!(msg, Message::Close(_));
            if sink.send(msg).await.is_err() || close {
                break;
            }
        }
        let _ = sink.close().await;
    });
    // Client messages by channel; the map's end (close, error, idle) is the client's going.
    let (in_tx, in_rx) = mpsc::unbounded_channel::<(u8, Vec<u8>)>();
    let idle = settings.idle_timeout;
    let reader = tokio::spawn(async move {
        while let Ok(Some(Ok(msg))) = tokio::time::timeout(idle, stream.next()).await {
            if msg.is_close() {
                break;
            }
            if let Some(m) = decode(base64, &msg) {
                if in_tx.send(m).is_err() {
                    break;
                }
            }
        }
    });
    match request {
        StreamRequest::Exec { .. } | StreamRequest::Attach { .. } => {
            remotecommand(request, &protocol, &out_tx, in_rx).await
        }
        StreamRequest::PortForward { netns, pod } => {
            portforward(netns, pod, ports, &out_tx, in_rx).await
        }
    }
    let _ = out_tx.send(Out::Close);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    reader.abort();
}

async fn remotecommand(
    request: StreamRequest,
    protocol: &str,
    out: &mpsc::UnboundedSender<Out>,
    mut incoming: mpsc::UnboundedReceiver<(u8, Vec<u8>)>,
) {
    let v5 = protocol.starts_with("v5.");
    let io = match &request {
        StreamRequest::Exec { io, .. } | StreamRequest::Attach { io, .. } => *io,
        StreamRequest::PortForward { .. } => return,
    };
    let sink = |channel: u8| -> Arc<dyn Sink> {
        Arc::new(WsSink {
            channel,
            v5,
            out: out.clone(),
        })
    };
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel();
    let (resize_tx, resize_rx) = mpsc::unbounded_channel();
    let ch = Channels {
        stdin: io.stdin.then_some(stdin_rx),
        resize: io.tty.then_some(resize_rx),
        stdout: io.stdout.then(|| sink(1)),
        stderr: (io.stderr && !io.tty).then(|| sink(2)),
        error: sink(3),
    };
    let (gone_tx, gone_rx) = tokio::sync::oneshot::channel::<()>();
    let route = async move {
        let mut stdin = Some(stdin_tx);
        while let Some((channel, data)) = incoming.recv().await {
            match channel {
                0 => {
                    if let Some(tx) = &stdin {
                        let _ = tx.send(Bytes::from(data));
                    }
                }
                4 => {
                    let _ = resize_tx.send(Bytes::from(data));
                }
                CLOSE if data.first() == Some(&0) => stdin = None, // v5: stdin's EOF
                _ => {}
            }
        }
        let _ = gone_tx.send(());
    };
    let router = tokio::spawn(route);
    let gone = async {
        let _ = gone_rx.await;
    };
    channels::serve(ch, request, protocol, gone).await;
    router.abort();
}

async fn portforward(
    netns: Option<PathBuf>,
    pod: String,
    ports: Vec<u16>,
    out: &mpsc::UnboundedSender<Out>,
    mut incoming: mpsc::UnboundedReceiver<(u8, Vec<u8>)>,
) {
    let mut writers: Vec<Option<mpsc::UnboundedSender<Vec<u8>>>> = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, port) in ports.iter().copied().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
        let _ = out.send(Out::Data(data, prefix.clone()));
        let _ = out.send(Out::Data(error, prefix));
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        writers.push(Some(tx));
        let (out, netns, pod) = (out.clone(), netns.clone(), pod.clone());
        tasks.spawn(async move {
            let tcp = match super::portforward::connect(netns, port).await {
                Ok(t) => t,
                Err(e) => {
                    let message = format!("error forwarding port {port} to pod {pod}: {e}");
                    let _ = out.send(Out::Data(error, Bytes::from(message)));
                    return;
                }
            };
            let (mut from_port, mut to_port) = tcp.into_split();
            let down = async move {
                while let Some(data) = rx.recv().await {
                    if to_port.write_all(&data).await.is_err() {
                        break;
                    }
                }
                let _ = to_port.shutdown().await;
            };
            let up = async {
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = from_port.read(&mut buf).await {
                    if n == 0
                        || out
                            .send(Out::Data(data, Bytes::copy_from_slice(&buf[..n])))
                            .is_err()
                    {
                        break;
                    }
                }
            };
            tokio::select! {
                _ = up => {}
                _ = down => {}
            }
        });
    }
    let route = async {
        while let Some((channel, data)) = incoming.recv().await {
            let i = usize::from(channel / 2);
            if channel % 2 == 0 {
                if let Some(Some(tx)) = writers.get(i) {
                    let _ = tx.send(data);
                }
            }
        }
    };
    tokio::select! {
        _ = route => {}
        _ = async { while tasks.join_next().await.is_some() {} } => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_framing_binary_and_base64() {
        assert_eq!(
            encode(false, 1, b"hi"),
            Message::Binary(vec![1, b'h', b'i'].into())
        );
        assert_eq!(encode(true, 2, b"hi"), Message::Text("2aGk=".into()));
        assert_eq!(
            decode(true, &Message::Text("0aGk=".into())),
            Some((0, b"hi".to_vec()))
        );
        assert_eq!(
            decode(false, &Message::Binary(vec![255, 0].into())),
            Some((255, vec![0]))
        );
        assert_eq!(decode(false, &Message::Binary(Vec::new().into())), None);
        assert_eq!(decode(true, &Message::Text("0!!".into())), None);
    }
}
