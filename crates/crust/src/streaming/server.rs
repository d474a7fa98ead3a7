//! The HTTP side: `/exec/<token>`, `/attach/<token>` and `/portforward/<token>` (any method;
//! kubelet and critest POST),
//! upgraded to SPDY/3.1 with a negotiated `X-Stream-Protocol-Version`; an unknown or used token
//! is 404, a request that is not a SPDY upgrade 400, no common protocol 403 with the versions
//! served. Each connection runs on its own task; a misbehaving client ends its own connection.

use std::{convert::Infallible, sync::Arc};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::{remotecommand, run, StreamRequest, Streaming};

type Reply = Response<Full<Bytes>>;

fn plain(status: StatusCode, text: String) -> Reply {
    let mut r = Response::new(Full::new(Bytes::from(text)));
    *r.status_mut() = status;
    r
}

/// Serves one connection (plain or TLS) with HTTP/1.1 and upgrades.
async fn connection<IO>(io: IO, streaming: Arc<Streaming>, peer: std::net::SocketAddr)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let streaming = Arc::clone(&streaming);
        async move { Ok::<_, Infallible>(route(streaming, req)) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "streaming connection ended");
    }
}

/// Accepts connections until the listener fails (TLS first when `tls` is set).
pub async fn serve(
    listener: tokio::net::TcpListener,
    streaming: Arc<Streaming>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "streaming accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (streaming, tls) = (Arc::clone(&streaming), tls.clone());
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                return connection(tcp, streaming, peer).await;
            };
            let handshake = acceptor.accept(tcp);
            match tokio::time::timeout(std::time::Duration::from_secs(10), handshake).await {
                Ok(Ok(stream)) => connection(stream, streaming, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn header_values(req: &Request<Incoming>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

fn route(streaming: Arc<Streaming>, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let Some((verb, token)) = path.split_once('/') else {
        return plain(StatusCode::NOT_FOUND, "not found\n".into());
    };
    if !matches!(verb, "exec" | "attach" | "portforward") {
        return plain(StatusCode::NOT_FOUND, format!("no such endpoint /{verb}\n"));
    }
    let upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if upgrade == "websocket" {
        return websocket(streaming, req, verb, token);
    }
    if upgrade != "spdy/3.1" {
        return plain(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: this endpoint needs Upgrade: SPDY/3.1 or websocket\n".into(),
        );
    }
    let client = header_values(&req, "x-stream-protocol-version");
    let served: &[&str] = if verb == "portforward" {
        &[super::portforward::PROTOCOL]
    } else {
        &remotecommand::PROTOCOLS
    };
    let protocol = if client.is_empty() {
        served[served.len() - 1]
    } else {
        match remotecommand::negotiate(&client, served) {
            Some(p) => p,
            None => return refuse(&client, served),
        }
    };
    let Some(request) = redeem_for(&streaming, verb, token) else {
        return plain(
            StatusCode::NOT_FOUND,
            "unknown, used or expired token\n".into(),
        );
    };
    let settings = streaming.settings().clone();
    let chosen = protocol.to_string();
    let mut r = switch(req, "SPDY/3.1", move |io| async move {
        run::session(io, request, &chosen, &settings).await
    });
    if let Ok(v) = header::HeaderValue::from_str(protocol) {
        r.headers_mut().insert("X-Stream-Protocol-Version", v);
    }
    r
}

/// Answers 101 with `Upgrade: upgrade` and runs `session` on the upgraded connection.
fn switch<F, Fut>(req: Request<Incoming>, upgrade: &'static str, session: F) -> Reply
where
    F: FnOnce(TokioIo<hyper::upgrade::Upgraded>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let upgraded = hyper::upgrade::on(req);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(io) => session(TokioIo::new(io)).await,
            Err(e) => tracing::debug!(error = %e, upgrade, "streaming upgrade failed"),
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        header::CONNECTION,
        header::HeaderValue::from_static("Upgrade"),
    );
    h.insert(header::UPGRADE, header::HeaderValue::from_static(upgrade));
    r
}

/// The request's token, if it is for `verb`.
fn redeem_for(streaming: &Streaming, verb: &str, token: &str) -> Option<StreamRequest> {
    let request = streaming.redeem(token)?;
    let fits = matches!(
        (&request, verb),
        (StreamRequest::Exec { .. }, "exec")
            | (StreamRequest::Attach { .. }, "attach")
            | (StreamRequest::PortForward { .. }, "portforward")
    );
    fits.then_some(request)
}

/// The ports of a WebSocket port-forward (`?port=80&port=8080`).
fn query_ports(req: &Request<Incoming>) -> Result<Vec<u16>, String> {
    let ports: Result<Vec<u16>, String> = req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("port="))
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(format!("invalid port {p:?}"))
        })
        .collect();
    match ports {
        Ok(p) if p.is_empty() => Err("no port in the query (?port=N)".into()),
        Ok(p) if p.len() > 64 => Err("more than 64 ports".into()),
        other => other,
    }
}

/// The WebSocket upgrade: subprotocol negotiation, Sec-WebSocket-Accept, then the session.
fn websocket(streaming: Arc<Streaming>, req: Request<Incoming>, verb: &str, token: &str) -> Reply {
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
    else {
        return plain(StatusCode::BAD_REQUEST, "no Sec-WebSocket-Key\n".into());
    };
    let served: &[&'static str] = if verb == "portforward" {
        &super::websocket::PORTFORWARD
    } else {
        &super::websocket::REMOTECOMMAND
    };
    let client = header_values(&req, "sec-websocket-protocol");
    let protocol = if client.is_empty() {
        "channel.k8s.io"
    } else {
        match remotecommand::negotiate(&client, served) {
            Some(p) => p,
            None => return refuse(&client, served),
        }
    };
    let ports = if verb == "portforward" {
        match query_ports(&req) {
            Ok(p) => p,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    } else {
        Vec::new()
    };
    let Some(request) = redeem_for(&streaming, verb, token) else {
        return plain(
            StatusCode::NOT_FOUND,
            "unknown, used or expired token\n".into(),
        );
    };
    let settings = streaming.settings().clone();
    let chosen = protocol.to_string();
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(&key);
    let mut r = switch(req, "websocket", move |io| async move {
        super::websocket::session(io, request, chosen, settings, ports).await
    });
    let h = r.headers_mut();
    if let Ok(v) = header::HeaderValue::from_str(&accept) {
        h.insert("Sec-WebSocket-Accept", v);
    }
    if !client.is_empty() {
        h.insert(
            "Sec-WebSocket-Protocol",
            header::HeaderValue::from_static(protocol),
        );
    }
    r
}

/// 403 naming what the server speaks (as kubelet's handshake does).
fn refuse(client: &[String], served: &[&'static str]) -> Reply {
    let mut r = plain(
        StatusCode::FORBIDDEN,
        format!(
            "unable to upgrade: unable to negotiate protocol: client supports {client:?}, server supports {served:?}\n"
        ),
    );
    for p in served.iter().copied() {
        r.headers_mut().append(
            "X-Accepted-Stream-Protocol-Versions",
            header::HeaderValue::from_static(p),
        );
    }
    r
}
