//! The streaming server behind CRI `Exec`, `Attach` and `PortForward` (STREAMING.md): the CRI
//! verbs validate the request, keep it under a single-use token ([`tokens`]) and answer with a
//! URL on this server; the client (kubelet, crictl) connects there and upgrades to SPDY/3.1
//! ([`server`]). The remotecommand protocol ([`remotecommand`]) then carries stdin, stdout,
//! stderr, resize and the exit status between the client and an exec'd process ([`exec`]) or
//! crust-shim's attach socket ([`attach`]).

pub mod channels;
pub mod exec;
pub mod portforward;
pub mod remotecommand;
pub mod run;
pub mod server;
pub mod tokens;
pub mod websocket;

use std::{path::PathBuf, sync::Arc, time::Duration};

/// What a token stands for, validated when it was issued.
#[derive(Debug, Clone)]
pub enum StreamRequest {
    Exec {
        target: ExecTarget,
        cmd: Vec<String>,
        io: Io,
    },
    Attach {
        socket: PathBuf,
        io: Io,
    },
    PortForward {
        /// The pod's pinned netns; `None` for a host-network pod.
        netns: Option<PathBuf>,
        pod: String,
    },
}

/// The streams a remotecommand session carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Io {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// How to run a process in a container: its runtime, state root and id, and a scratch dir.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub runtime: PathBuf,
    pub runtime_root: PathBuf,
    pub container_id: String,
    pub scratch: PathBuf,
    /// crust-shim, whose `exec-tty` mode runs terminal execs.
    pub shim: PathBuf,
}

/// Streaming server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub idle_timeout: Duration,
    pub stream_creation_timeout: Duration,
}

/// Why a streaming request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    #[error("cannot make a streaming token: {0}")]
    Token(getrandom::Error),
    #[error("streaming server: {0}")]
    Listen(std::io::Error),
}

/// The issuing side, shared with the CRI handlers.
#[derive(Debug)]
pub struct Streaming {
    tokens: tokens::Tokens<StreamRequest>,
    base_url: String,
    settings: Settings,
}

impl Streaming {
    /// The URL a client connects to for `request`.
    pub fn issue(&self, verb: &str, request: StreamRequest) -> Result<String, StreamingError> {
        let token = self.tokens.insert(request).map_err(StreamingError::Token)?;
        Ok(format!("{}/{verb}/{token}", self.base_url))
    }

    /// Takes the request of a token (once).
    pub fn redeem(&self, token: &str) -> Option<StreamRequest> {
        self.tokens.take(token)
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The server's base URL (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// Binds the streaming server and starts serving; the returned handle issues tokens.
pub async fn start(address: &str, settings: Settings) -> Result<Arc<Streaming>, StreamingError> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(StreamingError::Listen)?;
    let local = listener.local_addr().map_err(StreamingError::Listen)?;
    let streaming = Arc::new(Streaming {
        tokens: tokens::Tokens::new(tokens::TOKEN_TTL),
        base_url: format!("http://{local}"),
        settings,
    });
    tracing::info!(address = %local, "streaming server listening");
    tokio::spawn(server::serve(listener, Arc::clone(&streaming)));
    Ok(streaming)
}
