//! Hostile registries and images (#14): a registry that serves invalid or oversized manifests,
//! junk configs, truncated blobs or nothing at all (a fault-injecting HTTP server, since a real
//! registry refuses to store such things), and images in a real registry with a gzip bomb or a
//! layer that writes through an absolute symlink. Each pull fails fast with a code that names
//! the image's fault (never Unknown or Internal), nothing is left in the store or outside
//! crustd's dirs, and crustd's memory stays bounded.

mod common;

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    sync::Arc,
    time::{Duration, Instant},
};

use common::{
    assert_store_clean, entries, peak_rss_kib,
    registry::{busybox_layer, sha256, Compression, Registry, TarBuilder, TestImage, TestLayer},
    Daemon,
};
use cri_api::v1::{ImageSpec, PullImageRequest};
use tonic::Code;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// How the fake registry answers one path.
#[derive(Clone)]
enum Reply {
    /// 200 with this content type and body.
    Body(&'static str, Vec<u8>),
    /// Claims `Content-Length: claimed` and sends only `body`, then closes.
    Short { claimed: usize, body: Vec<u8> },
    /// Sends the headers, then nothing (until the client gives up).
    Stall,
}

/// A plain-HTTP fake registry on 127.0.0.1 answering from a fixed table (one request per
/// connection; anything else, such as a TLS hello, is closed unanswered).
struct FakeRegistry {
    addr: String,
}

impl FakeRegistry {
    fn start(table: HashMap<String, Reply>) -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let table = Arc::new(table);
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let table = Arc::clone(&table);
                std::thread::spawn(move || serve(conn, &table));
            }
        });
        FakeRegistry { addr }
    }
}

fn serve(conn: std::net::TcpStream, table: &HashMap<String, Reply>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err()
        || !line.starts_with("GET ") && !line.starts_with("HEAD ")
    {
        return;
    }
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let mut out = conn;
    let head = |status: &str, ctype: &str, len: usize| {
        format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nDocker-Distribution-Api-Version: registry/2.0\r\nConnection: close\r\n\r\n")
    };
    if path == "/v2/" {
        let _ = out.write_all(head("200 OK", "application/json", 2).as_bytes());
        let _ = out.write_all(b"{}");
        return;
    }
    match table.get(&path) {
        Some(Reply::Body(ctype, body)) => {
            let _ = out.write_all(head("200 OK", ctype, body.len()).as_bytes());
            let _ = out.write_all(body);
        }
        Some(Reply::Short { claimed, body }) => {
            let _ = out.write_all(head("200 OK", "application/octet-stream", *claimed).as_bytes());
            let _ = out.write_all(body);
        }
        Some(Reply::Stall) => {
            let _ = out.write_all(head("200 OK", OCI_MANIFEST, 100).as_bytes());
            let mut sink = [0u8; 1];
            let _ = out.read(&mut sink); // until the client closes
        }
        None => {
            let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}"#;
            let _ = out.write_all(head("404 Not Found", "application/json", body.len()).as_bytes());
            let _ = out.write_all(body);
        }
    }
}

fn manifest(config: (&str, u64), layers: &[(&str, u64)]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|(d, s)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.0, "size": config.1},
        "layers": layers,
    }))
    .unwrap()
}

fn image_config(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

async fn pull(d: &Daemon, image: &str) -> Result<(), tonic::Status> {
    d.image_client()
        .await
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: image.to_string(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await
        .map(drop)
}

#[tokio::test]
async fn a_hostile_registry_fails_pulls_fast_with_the_images_fault() {
    let good_layer = gzip(&TarBuilder::new().file("f", b"x", 0o644).finish());
    let good_diff = sha256(&gzip_inner(&good_layer));
    let config = image_config(std::slice::from_ref(&good_diff));
    let (config_d, layer_d) = (sha256(&config), sha256(&good_layer));
    let junk_config = b"{\"rootfs\": 7".to_vec();
    let junk_d = sha256(&junk_config);
    let mut t: HashMap<String, Reply> = HashMap::new();
    let m = |repo: &str| format!("/v2/h/{repo}/manifests/1");
    let b = |repo: &str, d: &str| format!("/v2/h/{repo}/blobs/{d}");
    t.insert(
        m("notjson"),
        Reply::Body(OCI_MANIFEST, b"{not json".to_vec()),
    );
    t.insert(
        m("badshape"),
        Reply::Body(
            OCI_MANIFEST,
            br#"{"schemaVersion":2,"config":"x","layers":7}"#.to_vec(),
        ),
    );
    t.insert(m("huge"), Reply::Body(OCI_MANIFEST, vec![b' '; 5 << 20]));
    t.insert(
        m("hugeconfig"),
        Reply::Body(
            OCI_MANIFEST,
            manifest(
                (&config_d, 10 << 30),
                &[(&layer_d, good_layer.len() as u64)],
            ),
        ),
    );
    t.insert(
        m("junkconfig"),
        Reply::Body(
            OCI_MANIFEST,
            manifest(
                (&junk_d, junk_config.len() as u64),
                &[(&layer_d, good_layer.len() as u64)],
            ),
        ),
    );
    t.insert(
        b("junkconfig", &junk_d),
        Reply::Body("application/octet-stream", junk_config.clone()),
    );
    for repo in ["truncated", "cut"] {
        t.insert(
            m(repo),
            Reply::Body(
                OCI_MANIFEST,
                manifest(
                    (&config_d, config.len() as u64),
                    &[(&layer_d, good_layer.len() as u64)],
                ),
            ),
        );
        t.insert(
            b(repo, &config_d),
            Reply::Body("application/octet-stream", config.clone()),
        );
    }
    let half = good_layer[..good_layer.len() / 2].to_vec();
    // An honest short answer (the size does not match) and a connection cut mid-body.
    t.insert(
        b("truncated", &layer_d),
        Reply::Short {
            claimed: half.len(),
            body: half.clone(),
        },
    );
    t.insert(
        b("cut", &layer_d),
        Reply::Short {
            claimed: good_layer.len(),
            body: half,
        },
    );
    t.insert(m("stall"), Reply::Stall);
    let fake = FakeRegistry::start(t);
    let d = Daemon::start_with("[limits]\nregistry_read_timeout = \"2s\"\n", &[]).await;
    let cases = [
        ("notjson", Code::FailedPrecondition, "manifest"),
        ("badshape", Code::FailedPrecondition, "manifest"),
        ("huge", Code::ResourceExhausted, "larger than"),
        ("hugeconfig", Code::ResourceExhausted, "max_manifest_size"),
        ("junkconfig", Code::FailedPrecondition, "image config"),
        ("truncated", Code::DataLoss, "bytes"),
        ("cut", Code::Unavailable, &layer_d),
        ("stall", Code::Unavailable, "manifests"),
    ];
    for (repo, code, says) in cases {
        let started = Instant::now();
        let err = pull(&d, &format!("{}/h/{repo}:1", fake.addr))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code, "{repo}: {err:?}");
        assert!(
            err.message().contains(says),
            "{repo} says {says:?}: {err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{repo}: {:?}",
            started.elapsed()
        );
        assert_store_clean(&d);
    }
    assert!(
        peak_rss_kib(&d) < 200 << 10,
        "crustd's peak RSS: {} KiB",
        peak_rss_kib(&d)
    );
}

/// The tar inside a gzip layer (its diffID is the tar's digest).
fn gzip_inner(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[tokio::test]
async fn gzip_bombs_and_layers_writing_through_symlinks_are_refused() {
    let registry = Registry::start().await;
    let bomb = TestImage::new(vec![TestLayer::new(
        TarBuilder::new()
            .file("bomb", &vec![0u8; 64 << 20], 0o644)
            .finish(),
        Compression::Gzip,
    )]);
    registry.push_image("lib/bomb", "1", &bomb).await;
    let outside = tempfile::tempdir().unwrap();
    let through = TestImage::new(vec![TestLayer::new(
        TarBuilder::new()
            .symlink("escape", &outside.path().display().to_string())
            .file("escape/pwned", b"pwned", 0o644)
            .finish(),
        Compression::Gzip,
    )]);
    registry.push_image("lib/through", "1", &through).await;
    let fine = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    registry.push_image("lib/fine", "1", &fine).await;
    let d = Daemon::start_with("[limits]\nmax_layer_unpacked_size = \"16MiB\"\n", &[]).await;
    let err = pull(&d, &format!("{}/lib/bomb:1", registry.addr))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("max_layer_unpacked_size"), "{err:?}");
    assert_store_clean(&d);
    let err = pull(&d, &format!("{}/lib/through:1", registry.addr))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("symlink"), "{err:?}");
    assert!(
        entries(outside.path()).is_empty(),
        "written outside: {:?}",
        entries(outside.path())
    );
    assert_store_clean(&d);
    // An image within the limits still pulls.
    pull(&d, &format!("{}/lib/fine:1", registry.addr))
        .await
        .unwrap();
    assert!(
        peak_rss_kib(&d) < 200 << 10,
        "crustd's peak RSS: {} KiB",
        peak_rss_kib(&d)
    );
}
