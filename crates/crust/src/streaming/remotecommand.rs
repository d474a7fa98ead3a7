//! Kubernetes remotecommand over SPDY: protocol negotiation (`channel.k8s.io` to
//! `v4.channel.k8s.io`), the client's streams (`streamType` error, stdin, stdout, stderr,
//! resize), the resize messages and the v4 exit status on the error stream.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::Io;

/// The remotecommand versions served, newest first.
pub const PROTOCOLS: [&str; 4] = [
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];

/// The first of the client's protocols (in its order) that the server supports.
pub fn negotiate<'a>(client: &[String], server: &[&'a str]) -> Option<&'a str> {
    client
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|c| server.iter().find(|s| **s == c).copied())
}

/// The client's streams, once all that the session needs are there.
pub struct Streams {
    pub error: spdy::Stream,
    pub stdin: Option<spdy::Stream>,
    pub stdout: Option<spdy::Stream>,
    pub stderr: Option<spdy::Stream>,
    pub resize: Option<spdy::Stream>,
}

/// A resize message (`{"Width":W,"Height":H}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Size {
    #[serde(rename = "Width")]
    pub width: u16,
    #[serde(rename = "Height")]
    pub height: u16,
}

/// Accepts the client's streams (replying to each) until those `io` needs have arrived, or
/// fails after `timeout`. Unknown stream types are reset.
pub async fn accept(
    incoming: &mut mpsc::Receiver<spdy::Stream>,
    io: Io,
    protocol: &str,
    timeout: Duration,
) -> Result<Streams, String> {
    let resize_expected = io.tty && protocol != "channel.k8s.io" && protocol != "v2.channel.k8s.io";
    let (mut error, mut stdin, mut stdout, mut stderr, mut resize) = (None, None, None, None, None);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let complete = error.is_some()
            && (!io.stdin || stdin.is_some())
            && (!io.stdout || stdout.is_some())
            && (!io.stderr || io.tty || stderr.is_some())
            && (!resize_expected || resize.is_some());
        if complete {
            break;
        }
        let stream = tokio::time::timeout_at(deadline, incoming.recv())
            .await
            .map_err(|_| format!("the client did not open its streams within {timeout:?}"))?
            .ok_or("the client closed the connection before opening its streams")?;
        tracing::debug!(id = stream.id(), headers = ?stream.headers(), "remotecommand stream");
        // Go's spdystream replies with no headers; SPDY/3 peers such as spdy-transport want the
        // response pseudo headers, which Go clients ignore.
        if stream
            .reply(&[(":status", "200"), (":version", "HTTP/1.1")], false)
            .is_err()
        {
            return Err("the connection closed".into());
        }
        let slot = match stream.header("streamtype").unwrap_or("") {
            "error" => &mut error,
            "stdin" => &mut stdin,
            "stdout" => &mut stdout,
            "stderr" => &mut stderr,
            "resize" => &mut resize,
            _ => {
                stream.reset(spdy::frame::rst::PROTOCOL_ERROR);
                continue;
            }
        };
        *slot = Some(stream);
    }
    Ok(Streams {
        error: error.ok_or("no error stream")?,
        stdin,
        stdout,
        stderr,
        resize,
    })
}

/// The v4 status of an exit: Success, or NonZeroExitCode with the code.
pub fn exit_status(code: i32) -> String {
    if code == 0 {
        return serde_json::json!({"metadata": {}, "status": "Success"}).to_string();
    }
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command, exit status {code}"),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
    .to_string()
}

/// The v4 status of a failure that is not an exit code.
pub fn failure(message: &str) -> String {
    serde_json::json!({
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "InternalError",
        "code": 500,
    })
    .to_string()
}

/// Splits a resize stream's bytes into sizes (objects may span reads); keeps the tail.
pub fn sizes(pending: &mut Vec<u8>) -> Vec<Size> {
    let mut out = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(pending).into_iter::<Size>();
    let mut used = 0;
    while let Some(Ok(size)) = de.next() {
        used = de.byte_offset();
        out.push(size);
    }
    pending.drain(..used);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_the_clients_order() {
        let client = vec![
            "v4.channel.k8s.io".to_string(),
            "channel.k8s.io".to_string(),
        ];
        assert_eq!(negotiate(&client, &PROTOCOLS), Some("v4.channel.k8s.io"));
        let client = vec!["v3.channel.k8s.io, v2.channel.k8s.io".to_string()];
        assert_eq!(negotiate(&client, &PROTOCOLS), Some("v3.channel.k8s.io"));
        assert_eq!(negotiate(&["v9.x".to_string()], &PROTOCOLS), None);
    }

    #[test]
    fn v4_statuses_as_client_go_reads_them() {
        let ok: serde_json::Value = serde_json::from_str(&exit_status(0)).unwrap();
        assert_eq!(ok["status"], "Success");
        let bad: serde_json::Value = serde_json::from_str(&exit_status(137)).unwrap();
        assert_eq!(bad["reason"], "NonZeroExitCode");
        assert_eq!(bad["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(bad["details"]["causes"][0]["message"], "137");
    }

    #[test]
    fn resize_messages_across_reads() {
        let mut pending = br#"{"Width":80,"Height":24}{"Width":100,"#.to_vec();
        assert_eq!(
            sizes(&mut pending),
            [Size {
                width: 80,
                height: 24
            }]
        );
        pending.extend_from_slice(br#""Height":30}"#);
        assert_eq!(
            sizes(&mut pending),
            [Size {
                width: 100,
                height: 30
            }]
        );
        assert!(pending.is_empty());
    }
}
