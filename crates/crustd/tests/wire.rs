//! Wire-level compatibility: Go gRPC clients (crictl/critest <= 1.29, kubelet < 1.30) send the unix
//! socket path as the HTTP/2 `:authority`. This test speaks raw HTTP/2 (hand-encoded HPACK literals)
//! to send exactly that, and checks crustd answers the RPC instead of resetting the stream.

mod common;

use std::time::Duration;

use common::Daemon;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK "literal header field without indexing, new name", no Huffman (lengths < 127).
fn literal(block: &mut Vec<u8>, name: &str, value: &str) {
    assert!(name.len() < 127 && value.len() < 127);
    block.push(0x00);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

async fn read_frame(s: &mut tokio::net::UnixStream) -> (u8, u8, u32, Vec<u8>) {
    let mut head = [0u8; 9];
    s.read_exact(&mut head).await.unwrap();
    let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
    let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).await.unwrap();
    (head[3], head[4], stream, payload)
}

#[tokio::test]
async fn authority_socket_path_is_accepted() {
    let d = Daemon::start().await;
    let socket = d.socket.display().to_string();
    let mut s = tokio::net::UnixStream::connect(&d.socket).await.unwrap();
    let mut block = Vec::new();
    literal(&mut block, ":method", "POST");
    literal(&mut block, ":scheme", "http");
    literal(&mut block, ":path", "/runtime.v1.RuntimeService/Version");
    literal(&mut block, ":authority", &socket);
    literal(&mut block, "content-type", "application/grpc");
    literal(&mut block, "te", "trailers");
    let mut out = PREFACE.to_vec();
    out.extend(frame(SETTINGS, 0, 0, &[]));
    out.extend(frame(HEADERS, 0x4, 1, &block)); // END_HEADERS
    out.extend(frame(DATA, 0x1, 1, &[0, 0, 0, 0, 0])); // empty VersionRequest, END_STREAM
    s.write_all(&out).await.unwrap();

    let response = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let (kind, flags, stream, payload) = read_frame(&mut s).await;
            match kind {
                SETTINGS if flags & 0x1 == 0 => {
                    s.write_all(&frame(SETTINGS, 0x1, 0, &[])).await.unwrap()
                }
                RST_STREAM => panic!(
                    "stream reset (error code {:?}): :authority rejected",
                    &payload
                ),
                GOAWAY => panic!("GOAWAY {:?}", payload),
                DATA if stream == 1 => return payload,
                _ => {}
            }
        }
    })
    .await
    .expect("a response within 5 s");
    assert!(
        response.len() >= 5 && response[0] == 0,
        "gRPC message frame"
    );
    let v = cri_api::v1::VersionResponse::decode(&response[5..]).unwrap();
    assert_eq!(v.runtime_name, "crust");
}
