//! The `/metrics` endpoint: plain HTTP/1.1 on `[metrics] address`, the exposition of
//! [`super::global`]: OpenMetrics when the scraper asks for it (Prometheus does), the classic
//! text format (0.0.4) otherwise; any other path is 404.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `address` and serves `/metrics` on its own task; the bound address.
pub async fn start(address: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "metrics listening");
    tokio::spawn(serve(listener));
    Ok(local)
}

async fn serve(listener: tokio::net::TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(reply(&req)) });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

fn reply(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let openmetrics = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (status, body, kind) = if req.uri().path() != "/metrics" {
        (
            StatusCode::NOT_FOUND,
            "not found: try /metrics\n".to_string(),
            "text/plain",
        )
    } else if openmetrics {
        (StatusCode::OK, super::global().render(), OPENMETRICS)
    } else {
        (
            StatusCode::OK,
            super::to_text_format(&super::global().render()),
            TEXT,
        )
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(kind) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}
