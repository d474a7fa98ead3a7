//! The streaming server behind CRI `Exec`, `Attach` and `PortForward` (STREAMING.md): the CRI
//! verbs validate the request, keep it under a single-use token ([`tokens`]) and answer with a
//! URL on this server; the client (kubelet, crictl) connects there and upgrades to SPDY/3.1
//! ([`server`]). The remotecommand protocol ([`remotecommand`]) then carries stdin, stdout,
//! stderr, resize and the exit status between the client and an exec'd process ([`exec`]) or a
//! container's attach socket (crust-shim's, or task-io's for a shim-v2 container; [`channels`]).

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
        target: AttachTarget,
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
    pub runtime: crate::oci_runtime::RuntimeCli,
    pub container_id: String,
    pub scratch: PathBuf,
    /// crust-shim, whose `exec-tty` mode runs terminal execs.
    pub shim: PathBuf,
    /// The handler's runtime when it runs execs itself (shim-v2: the shim's Exec); `None`: the
    /// CLI above.
    pub task: Option<Arc<dyn crate::oci_runtime::OciRuntime>>,
}

/// Where an Attach goes: the attach socket (crust-shim's, or task-io's for a shim-v2
/// container), and for a shim-v2 container the shim that holds its terminal and stdin.
#[derive(Debug, Clone)]
pub struct AttachTarget {
    pub socket: PathBuf,
    pub task: Option<TaskAttach>,
}

/// A shim-v2 container's side of an Attach: resizes are the shim's ResizePty, and with
/// `stdin_once` the session's end is the shim's CloseIO.
#[derive(Debug, Clone)]
pub struct TaskAttach {
    pub runtime: Arc<dyn crate::oci_runtime::OciRuntime>,
    pub container_id: String,
    pub stdin_once: bool,
}

/// Streaming server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub idle_timeout: Duration,
    pub stream_creation_timeout: Duration,
    /// How long an issued URL stays usable.
    pub token_ttl: Duration,
    /// Streams open at once in one SPDY session.
    pub max_streams: usize,
}

/// Why a streaming request cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum StreamingError {
    #[error("cannot make a streaming token: {0}")]
    Token(getrandom::Error),
    #[error("streaming server: {0}")]
    Listen(std::io::Error),
    #[error("streaming TLS: {0}")]
    Tls(String),
}

/// The server's TLS certificate chain and key (PEM files).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A TLS acceptor from PEM files (rustls with ring; TLS 1.2 and 1.3).
fn acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, StreamingError> {
    use rustls_pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};
    let tls = |path: &std::path::Path, e: &dyn std::fmt::Display| {
        StreamingError::Tls(format!("{}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| tls(&files.cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls(&files.cert, &e))?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| tls(&files.key, &e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StreamingError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| tls(&files.cert, &e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
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

/// Binds the streaming server (TLS when `tls` names a certificate and key) and starts serving;
/// the returned handle issues tokens.
pub async fn start(
    address: &str,
    settings: Settings,
    tls: Option<TlsFiles>,
) -> Result<Arc<Streaming>, StreamingError> {
    let acceptor = tls.as_ref().map(acceptor).transpose()?;
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(StreamingError::Listen)?;
    let local = listener.local_addr().map_err(StreamingError::Listen)?;
    let scheme = if acceptor.is_some() { "https" } else { "http" };
    let streaming = Arc::new(Streaming {
        tokens: tokens::Tokens::new(settings.token_ttl),
        base_url: format!("{scheme}://{local}"),
        settings,
    });
    tracing::info!(address = %local, tls = acceptor.is_some(), "streaming server listening");
    tokio::spawn(server::serve(listener, Arc::clone(&streaming), acceptor));
    Ok(streaming)
}
