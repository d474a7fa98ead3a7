//! SPDY/3.1 (draft-mbelshe-httpbis-spdy-00 with the 3.1 flow-control changes) for the servers of
//! protocols that still ride on it, such as Kubernetes' remotecommand and port-forward. It knows
//! nothing of HTTP semantics or Kubernetes:
//! - [`frame`]: the frames, encoded and decoded (header blocks still compressed), with limits;
//! - [`headers`]: header blocks and their zlib compression with the SPDY/3 dictionary, one
//!   context per direction;
//! - [`session`]: an async session over any `AsyncRead + AsyncWrite` that accepts the peer's
//!   streams, answers PING, honours GOAWAY and RST_STREAM, and does flow control with peers
//!   that use it (Go's spdystream sends no WINDOW_UPDATE and expects none to matter).

pub mod frame;
pub mod headers;
pub mod session;

pub use frame::{Frame, FrameError};
pub use headers::Headers;
pub use session::{Config, Session, Stream};
