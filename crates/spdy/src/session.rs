//! A SPDY/3.1 session, server side: the peer opens streams (SYN_STREAM), the application
//! replies and exchanges data on them. One task drives the connection: it decodes frames,
//! answers PING, applies SETTINGS, WINDOW_UPDATE, RST_STREAM and GOAWAY, and writes what the
//! streams send. Flow control follows the peer: once it shows it does flow control (a SETTINGS
//! initial window or a WINDOW_UPDATE), sends wait for window and consumed data is credited back;
//! a peer that never does (Go's spdystream) is never throttled. Malformed frames or header blocks
//! end the session with GOAWAY (the header compression context is shared, so there is no
//! recovering); a stream over the concurrency limit is refused with RST_STREAM.

use std::{
    collections::{HashMap, VecDeque},
    time::Duration,
};

use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    sync::{mpsc, oneshot},
};

use crate::{
    frame::{self, goaway, rst, Frame, DEFAULT_WINDOW, FLAG_FIN, SETTINGS_INITIAL_WINDOW_SIZE},
    headers::{Compressor, Decompressor, Headers},
};

/// Session limits.
#[derive(Debug, Clone)]
pub struct Config {
    /// Streams open at once; more are refused.
    pub max_streams: usize,
    /// The longest frame accepted.
    pub max_frame: usize,
    /// The most a header block may inflate to.
    pub max_header_block: usize,
    /// No frame either way for this long ends the session.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_streams: 128,
            max_frame: 1 << 20,
            max_header_block: 256 * 1024,
            idle_timeout: None,
        }
    }
}

/// The stream or session is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("SPDY stream closed")]
pub struct Closed;

/// The biggest DATA frame crust writes.
const CHUNK: usize = 32 * 1024;

enum Cmd {
    Reply {
        id: u32,
        headers: Vec<(String, String)>,
        fin: bool,
    },
    Data {
        id: u32,
        data: Bytes,
        fin: bool,
        done: oneshot::Sender<Result<(), Closed>>,
    },
    Reset {
        id: u32,
        status: u32,
    },
    Consumed {
        id: u32,
        n: usize,
    },
    GoAway,
}

/// A stream the peer opened.
pub struct Stream {
    id: u32,
    headers: Headers,
    data: mpsc::UnboundedReceiver<Bytes>,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stream")
            .field("id", &self.id)
            .field("headers", &self.headers)
            .finish()
    }
}

impl Stream {
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The SYN_STREAM's headers (names lowercase).
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.first().map(String::as_str)
    }

    /// Answers the stream with SYN_REPLY.
    pub fn reply(&self, headers: &[(&str, &str)], fin: bool) -> Result<(), Closed> {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.cmd
            .send(Cmd::Reply {
                id: self.id,
                headers,
                fin,
            })
            .map_err(|_| Closed)
    }

    /// The next data from the peer; `None` at its FIN, a reset, or the session's end.
    pub async fn recv(&mut self) -> Option<Bytes> {
        let data = self.data.recv().await?;
        let _ = self.cmd.send(Cmd::Consumed {
            id: self.id,
            n: data.len(),
        });
        Some(data)
    }

    /// A handle that sends on this stream (for another task).
    pub fn sender(&self) -> StreamSender {
        StreamSender {
            id: self.id,
            cmd: self.cmd.clone(),
        }
    }

    /// Sends `data` and returns once it is written (or queued behind the peer's window).
    pub async fn send(&self, data: &[u8]) -> Result<(), Closed> {
        self.sender().send(data).await
    }

    /// Ends this side of the stream (FIN).
    pub async fn finish(&self) -> Result<(), Closed> {
        self.sender().finish().await
    }

    /// Resets the stream.
    pub fn reset(&self, status: u32) {
        let _ = self.cmd.send(Cmd::Reset {
            id: self.id,
            status,
        });
    }
}

/// Sends on a stream from any task.
#[derive(Clone)]
pub struct StreamSender {
    id: u32,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl StreamSender {
    async fn data(&self, data: Bytes, fin: bool) -> Result<(), Closed> {
        let (done, wait) = oneshot::channel();
        self.cmd
            .send(Cmd::Data {
                id: self.id,
                data,
                fin,
                done,
            })
            .map_err(|_| Closed)?;
        wait.await.map_err(|_| Closed)?
    }

    /// Sends `data` (split into frames) and returns once it is written.
    pub async fn send(&self, data: &[u8]) -> Result<(), Closed> {
        self.data(Bytes::copy_from_slice(data), false).await
    }

    /// Ends this side of the stream (FIN).
    pub async fn finish(&self) -> Result<(), Closed> {
        self.data(Bytes::new(), true).await
    }
}

/// The session handle: stop accepting streams, or wait for its end.
pub struct Session {
    cmd: mpsc::UnboundedSender<Cmd>,
    done: tokio::sync::watch::Receiver<bool>,
}

impl Session {
    /// Runs a server session on `io`; new streams arrive on the returned receiver, which ends
    /// with the session.
    pub fn server<IO>(io: IO, config: Config) -> (Session, mpsc::Receiver<Stream>)
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (streams_tx, streams_rx) = mpsc::channel(config.max_streams.max(1));
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        let driver = Driver {
            decompressor: Decompressor::new(config.max_header_block),
            compressor: Compressor::new(),
            config,
            streams: HashMap::new(),
            incoming: Some(streams_tx),
            cmd_tx: cmd_tx.clone(),
            out: BytesMut::new(),
            flow_control: false,
            session_window: i64::from(DEFAULT_WINDOW),
            initial_window: i64::from(DEFAULT_WINDOW),
            session_unacked: 0,
            last_peer_stream: 0,
        };
        tokio::spawn(async move {
            if let Err(e) = driver.run(io, cmd_rx).await {
                tracing::debug!(error = %e, "SPDY session ended");
            }
            let _ = done_tx.send(true);
        });
        (
            Session {
                cmd: cmd_tx,
                done: done_rx,
            },
            streams_rx,
        )
    }

    /// Sends GOAWAY: no new streams; the session ends when the open ones are done.
    pub fn go_away(&self) {
        let _ = self.cmd.send(Cmd::GoAway);
    }

    /// Waits for the session to end.
    pub async fn closed(&mut self) {
        let _ = self.done.wait_for(|d| *d).await;
    }

    /// A handle that only waits for the session's end (for another task).
    pub fn watch(&self) -> SessionWatch {
        SessionWatch(self.done.clone())
    }
}

/// Waits for a session's end.
pub struct SessionWatch(tokio::sync::watch::Receiver<bool>);

impl SessionWatch {
    pub async fn closed(&mut self) {
        let _ = self.0.wait_for(|d| *d).await;
    }
}

struct Pending {
    data: Bytes,
    fin: bool,
    done: oneshot::Sender<Result<(), Closed>>,
}

struct Entry {
    data: Option<mpsc::UnboundedSender<Bytes>>,
    send_window: i64,
    queue: VecDeque<Pending>,
    unacked: usize,
    local_fin: bool,
    remote_fin: bool,
}

struct Driver {
    config: Config,
    compressor: Compressor,
    decompressor: Decompressor,
    streams: HashMap<u32, Entry>,
    incoming: Option<mpsc::Sender<Stream>>,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    out: BytesMut,
    flow_control: bool,
    session_window: i64,
    initial_window: i64,
    session_unacked: usize,
    last_peer_stream: u32,
}

/// Why a session ended badly.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Frame(#[from] frame::FrameError),
    #[error(transparent)]
    Headers(#[from] crate::headers::HeaderError),
    #[error("idle for {0:?}")]
    Idle(Duration),
}

impl Driver {
    async fn run<IO>(
        mut self,
        io: IO,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
    ) -> Result<(), SessionError>
    where
        IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(io);
        let mut buf = BytesMut::with_capacity(64 * 1024);
        let idle = self
            .config
            .idle_timeout
            .unwrap_or(Duration::from_secs(u32::MAX as u64));
        let result = loop {
            let step = tokio::select! {
                n = reader.read_buf(&mut buf) => match n {
                    Ok(0) => break Ok(()),
                    Ok(_) => self.frames(&mut buf),
                    Err(e) => break Err(e.into()),
                },
                Some(cmd) = cmds.recv() => { self.command(cmd); Ok(()) },
                _ = tokio::time::sleep(idle) => Err(SessionError::Idle(idle)),
            };
            if let Err(e) = step {
                let status = match e {
                    SessionError::Idle(_) => goaway::OK,
                    _ => goaway::PROTOCOL_ERROR,
                };
                self.write(&Frame::GoAway {
                    last_good_stream_id: self.last_peer_stream,
                    status,
                });
                let _ = writer.write_all(&self.out).await;
                break Err(e);
            }
            if !self.out.is_empty() {
                if let Err(e) = writer.write_all(&self.out).await {
                    break Err(e.into());
                }
                self.out.clear();
            }
            if self.incoming.is_none() && self.streams.is_empty() {
                break Ok(());
            }
        };
        let _ = writer.shutdown().await;
        for (_, entry) in self.streams.drain() {
            for p in entry.queue {
                let _ = p.done.send(Err(Closed));
            }
        }
        result
    }

    fn write(&mut self, f: &Frame) {
        frame::encode(f, &mut self.out);
    }

    fn frames(&mut self, buf: &mut BytesMut) -> Result<(), SessionError> {
        while let Some(f) = frame::decode(buf, self.config.max_frame)? {
            self.frame(f)?;
        }
        Ok(())
    }

    fn frame(&mut self, f: Frame) -> Result<(), SessionError> {
        match f {
            Frame::SynStream {
                stream_id,
                flags,
                header_block,
                ..
            } => self.syn_stream(stream_id, flags, &header_block)?,
            Frame::Data {
                stream_id,
                fin,
                data,
            } => self.data(stream_id, fin, data),
            Frame::RstStream { stream_id, .. } => {
                if let Some(mut e) = self.streams.remove(&stream_id) {
                    e.data = None;
                    for p in e.queue {
                        let _ = p.done.send(Err(Closed));
                    }
                }
            }
            Frame::Settings { entries } => self.settings(&entries),
            Frame::Ping { id } => self.write(&Frame::Ping { id }),
            Frame::GoAway { .. } => self.incoming = None,
            Frame::WindowUpdate { stream_id, delta } => self.window_update(stream_id, delta),
            Frame::Headers { header_block, .. } | Frame::SynReply { header_block, .. } => {
                // Keep the shared decompression context in step even though the content is unused.
                self.decompressor.decompress(&header_block)?;
            }
            Frame::Unknown { .. } => {}
        }
        Ok(())
    }

    fn syn_stream(&mut self, id: u32, flags: u8, block: &[u8]) -> Result<(), SessionError> {
        let headers = self.decompressor.decompress(block)?;
        // Peer streams are odd. Their ids should rise, but spdy-transport sends a SYN_STREAM only
        // when the stream first writes, so they can arrive out of order: only an id in use is
        // refused.
        if id == 0 || id.is_multiple_of(2) || self.streams.contains_key(&id) {
            let status = if id.is_multiple_of(2) {
                rst::PROTOCOL_ERROR
            } else {
                rst::STREAM_IN_USE
            };
            self.write(&Frame::RstStream {
                stream_id: id,
                status,
            });
            return Ok(());
        }
        self.last_peer_stream = self.last_peer_stream.max(id);
        let Some(incoming) = self.incoming.clone() else {
            self.write(&Frame::RstStream {
                stream_id: id,
                status: rst::REFUSED_STREAM,
            });
            return Ok(());
        };
        if self.streams.len() >= self.config.max_streams {
            self.write(&Frame::RstStream {
                stream_id: id,
                status: rst::REFUSED_STREAM,
            });
            return Ok(());
        }
        let (data_tx, data_rx) = mpsc::unbounded_channel();
        let remote_fin = flags & FLAG_FIN != 0;
        let stream = Stream {
            id,
            headers,
            data: data_rx,
            cmd: self.cmd_tx.clone(),
        };
        if incoming.try_send(stream).is_err() {
            self.write(&Frame::RstStream {
                stream_id: id,
                status: rst::REFUSED_STREAM,
            });
            return Ok(());
        }
        self.streams.insert(
            id,
            Entry {
                data: (!remote_fin).then_some(data_tx),
                send_window: self.initial_window,
                queue: VecDeque::new(),
                unacked: 0,
                local_fin: false,
                remote_fin,
            },
        );
        Ok(())
    }

    fn data(&mut self, id: u32, fin: bool, data: Bytes) {
        let Some(e) = self.streams.get_mut(&id) else {
            self.write(&Frame::RstStream {
                stream_id: id,
                status: rst::INVALID_STREAM,
            });
            return;
        };
        if let Some(tx) = &e.data {
            if !data.is_empty() {
                let _ = tx.send(data);
            }
        }
        if fin {
            e.data = None;
            e.remote_fin = true;
            self.reap(id);
        }
    }

    fn settings(&mut self, entries: &[(u8, u32, u32)]) {
        for (_, id, value) in entries {
            if *id == SETTINGS_INITIAL_WINDOW_SIZE {
                let delta = i64::from(*value) - self.initial_window;
                self.initial_window = i64::from(*value);
                self.flow_control = true;
                for e in self.streams.values_mut() {
                    e.send_window += delta;
                }
            }
        }
        self.pump_all();
    }

    fn window_update(&mut self, id: u32, delta: u32) {
        self.flow_control = true;
        if id == 0 {
            self.session_window += i64::from(delta);
            self.pump_all();
        } else if let Some(e) = self.streams.get_mut(&id) {
            e.send_window += i64::from(delta);
            self.pump(id);
        }
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Reply { id, headers, fin } => {
                let pairs: Vec<(&str, &str)> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let header_block = self.compressor.compress(&pairs);
                self.write(&Frame::SynReply {
                    stream_id: id,
                    fin,
                    header_block,
                });
                if fin {
                    if let Some(e) = self.streams.get_mut(&id) {
                        e.local_fin = true;
                    }
                    self.reap(id);
                }
            }
            Cmd::Data {
                id,
                data,
                fin,
                done,
            } => match self.streams.get_mut(&id) {
                Some(e) if !e.local_fin => {
                    e.queue.push_back(Pending { data, fin, done });
                    self.pump(id);
                }
                _ => {
                    let _ = done.send(Err(Closed));
                }
            },
            Cmd::Reset { id, status } => {
                if let Some(e) = self.streams.remove(&id) {
                    for p in e.queue {
                        let _ = p.done.send(Err(Closed));
                    }
                    self.write(&Frame::RstStream {
                        stream_id: id,
                        status,
                    });
                }
            }
            Cmd::Consumed { id, n } => self.credit(id, n),
            Cmd::GoAway => {
                self.incoming = None;
                self.write(&Frame::GoAway {
                    last_good_stream_id: self.last_peer_stream,
                    status: goaway::OK,
                });
            }
        }
    }

    /// Gives consumed bytes back to a flow-controlling peer, in half-window steps.
    fn credit(&mut self, id: u32, n: usize) {
        if !self.flow_control {
            return;
        }
        let half = (DEFAULT_WINDOW / 2) as usize;
        self.session_unacked += n;
        if self.session_unacked >= half {
            let delta = std::mem::take(&mut self.session_unacked) as u32;
            self.write(&Frame::WindowUpdate {
                stream_id: 0,
                delta,
            });
        }
        let mut update = None;
        if let Some(e) = self.streams.get_mut(&id) {
            e.unacked += n;
            if e.unacked >= half && !e.remote_fin {
                update = Some(std::mem::take(&mut e.unacked) as u32);
            }
        }
        if let Some(delta) = update {
            self.write(&Frame::WindowUpdate {
                stream_id: id,
                delta,
            });
        }
    }

    fn pump_all(&mut self) {
        let ids: Vec<u32> = self.streams.keys().copied().collect();
        for id in ids {
            self.pump(id);
        }
    }

    /// Writes as much of stream `id`'s queue as the windows allow.
    fn pump(&mut self, id: u32) {
        loop {
            let Some(e) = self.streams.get_mut(&id) else {
                return;
            };
            let Some(p) = e.queue.front_mut() else { break };
            let allowed = if self.flow_control {
                e.send_window.min(self.session_window).max(0) as usize
            } else {
                usize::MAX
            };
            if p.data.is_empty() {
                let Some(p) = e.queue.pop_front() else { break };
                if p.fin {
                    e.local_fin = true;
                    frame::encode(
                        &Frame::Data {
                            stream_id: id,
                            fin: true,
                            data: Bytes::new(),
                        },
                        &mut self.out,
                    );
                }
                let _ = p.done.send(Ok(()));
                continue;
            }
            if allowed == 0 {
                break;
            }
            let n = p.data.len().min(CHUNK).min(allowed);
            let chunk = p.data.split_to(n);
            let last = p.data.is_empty() && p.fin;
            if self.flow_control {
                e.send_window -= n as i64;
                self.session_window -= n as i64;
            }
            frame::encode(
                &Frame::Data {
                    stream_id: id,
                    fin: last,
                    data: chunk,
                },
                &mut self.out,
            );
            if p.data.is_empty() {
                let Some(p) = e.queue.pop_front() else { break };
                e.local_fin |= p.fin;
                let _ = p.done.send(Ok(()));
            }
        }
        self.reap(id);
    }

    /// Forgets a stream both sides have finished.
    fn reap(&mut self, id: u32) {
        if self
            .streams
            .get(&id)
            .is_some_and(|e| e.local_fin && e.remote_fin && e.queue.is_empty())
        {
            self.streams.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, DuplexStream};

    /// The client side, by hand: frames in and out over a duplex pipe.
    struct Peer {
        io: DuplexStream,
        c: Compressor,
        d: Decompressor,
        buf: BytesMut,
    }

    impl Peer {
        async fn send(&mut self, f: Frame) {
            let mut out = BytesMut::new();
            frame::encode(&f, &mut out);
            self.io.write_all(&out).await.unwrap();
        }

        async fn syn(&mut self, id: u32, headers: &[(&str, &str)], fin: bool) {
            let header_block = self.c.compress(headers);
            let flags = if fin { FLAG_FIN } else { 0 };
            self.send(Frame::SynStream {
                stream_id: id,
                associated_to: 0,
                priority: 0,
                flags,
                header_block,
            })
            .await;
        }

        async fn next(&mut self) -> Frame {
            loop {
                if let Some(f) = frame::decode(&mut self.buf, 1 << 24).unwrap() {
                    return f;
                }
                let n = self.io.read_buf(&mut self.buf).await.unwrap();
                assert!(n > 0, "session closed");
            }
        }
    }

    fn pair() -> (Peer, Session, mpsc::Receiver<Stream>) {
        let (a, b) = duplex(1 << 20);
        let (session, streams) = Session::server(b, Config::default());
        let peer = Peer {
            io: a,
            c: Compressor::new(),
            d: Decompressor::new(1 << 16),
            buf: BytesMut::new(),
        };
        (peer, session, streams)
    }

    #[tokio::test]
    async fn streams_replies_data_ping_and_fin() {
        let (mut peer, _session, mut streams) = pair();
        peer.syn(1, &[("streamType", "stdin")], false).await;
        peer.syn(3, &[("streamType", "stdout")], false).await;
        let mut stdin = streams.recv().await.unwrap();
        let stdout = streams.recv().await.unwrap();
        assert_eq!(stdin.header("streamtype"), Some("stdin"));
        stdin.reply(&[], false).unwrap();
        stdout.reply(&[], false).unwrap();
        for id in [1, 3] {
            match peer.next().await {
                Frame::SynReply {
                    stream_id,
                    header_block,
                    ..
                } => {
                    assert_eq!(stream_id, id);
                    assert!(peer.d.decompress(&header_block).unwrap().is_empty());
                }
                other => panic!("{other:?}"),
            }
        }
        peer.send(Frame::Ping { id: 7 }).await;
        assert_eq!(peer.next().await, Frame::Ping { id: 7 });
        peer.send(Frame::Data {
            stream_id: 1,
            fin: true,
            data: Bytes::from_static(b"in"),
        })
        .await;
        assert_eq!(stdin.recv().await.unwrap(), "in");
        assert_eq!(stdin.recv().await, None, "FIN");
        stdout.send(b"out").await.unwrap();
        stdout.finish().await.unwrap();
        assert_eq!(
            peer.next().await,
            Frame::Data {
                stream_id: 3,
                fin: false,
                data: Bytes::from_static(b"out")
            }
        );
        assert_eq!(
            peer.next().await,
            Frame::Data {
                stream_id: 3,
                fin: true,
                data: Bytes::new()
            }
        );
    }

    #[tokio::test]
    async fn flow_control_once_the_peer_uses_it() {
        let (mut peer, _session, mut streams) = pair();
        peer.send(Frame::Settings {
            entries: vec![(0, SETTINGS_INITIAL_WINDOW_SIZE, 10)],
        })
        .await;
        peer.syn(1, &[("x", "y")], false).await;
        let s = streams.recv().await.unwrap();
        let sender = s.sender();
        let sent = tokio::spawn(async move { sender.send(&[7u8; 25]).await });
        let mut got = 0;
        for _ in 0..2 {
            match peer.next().await {
                Frame::Data { data, .. } => got += data.len(),
                other => panic!("{other:?}"),
            }
            assert!(got <= 10 || got == 20);
            peer.send(Frame::WindowUpdate {
                stream_id: 1,
                delta: 10,
            })
            .await;
        }
        match peer.next().await {
            Frame::Data { data, .. } => got += data.len(),
            other => panic!("{other:?}"),
        }
        assert_eq!(got, 25);
        sent.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn garbage_ends_the_session_with_goaway() {
        let (mut peer, mut session, _streams) = pair();
        peer.io
            .write_all(&[
                0x80, 0x03, 0x00, 0x01, 0, 0, 0, 12, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xde, 0xad,
            ])
            .await
            .unwrap();
        match peer.next().await {
            Frame::GoAway { status, .. } => assert_eq!(status, goaway::PROTOCOL_ERROR),
            other => panic!("{other:?}"),
        }
        session.closed().await;
    }

    #[tokio::test]
    async fn too_many_streams_are_refused() {
        let (a, b) = duplex(1 << 20);
        let (_session, mut streams) = Session::server(
            b,
            Config {
                max_streams: 1,
                ..Config::default()
            },
        );
        let mut peer = Peer {
            io: a,
            c: Compressor::new(),
            d: Decompressor::new(1 << 16),
            buf: BytesMut::new(),
        };
        peer.syn(1, &[("a", "b")], false).await;
        peer.syn(3, &[("a", "b")], false).await;
        let _first = streams.recv().await.unwrap();
        assert_eq!(
            peer.next().await,
            Frame::RstStream {
                stream_id: 3,
                status: rst::REFUSED_STREAM
            }
        );
    }
}

#[cfg(test)]
mod hostile {
    use super::*;
    use tokio::io::duplex;

    /// xorshift: repeatable pseudo-random bytes.
    fn bytes(seed: &mut u64, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed >> 24) as u8
            })
            .collect()
    }

    /// Random bytes, and valid frame headers with random bodies, never panic the decoder or the
    /// header decompressor and never hang a session: each ends (GOAWAY or EOF) on its own.
    #[tokio::test]
    async fn garbage_never_panics_or_hangs() {
        let mut seed = 0x5eed_u64;
        for round in 0..2000 {
            let mut input = bytes(&mut seed, (round % 97) + 1);
            if round % 2 == 0 && input.len() >= 8 {
                let kind = [1u8, 2, 3, 4, 6, 7, 8, 9][round % 8];
                let len = input.len() - 8;
                input[..8].copy_from_slice(&[0x80, 3, 0, kind, 0, 0, (len >> 8) as u8, len as u8]);
            }
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = frame::decode(&mut buf, 1 << 16) {}
            let _ = Decompressor::new(1 << 12).decompress(&input);
            let (mut a, b) = duplex(1 << 16);
            let (mut session, _streams) = Session::server(b, Config::default());
            a.write_all(&input).await.unwrap();
            drop(a);
            tokio::time::timeout(Duration::from_secs(5), session.closed())
                .await
                .expect("the session ends");
        }
    }
}
