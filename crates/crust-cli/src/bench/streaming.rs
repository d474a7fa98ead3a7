//! `crust bench --streaming IMAGE`: in one pod of the runtime under test, with a container of
//! IMAGE (a busybox with `sleep`, `head` and `nc`):
//! - Exec of `true` until its exit status arrives (CRI Exec + WebSocket v5), p50, beside
//!   ExecSync of the same and the raw `runc exec` of it measured in the same run;
//! - 1 GiB through one forwarded connection (CRI PortForward + WebSocket) beside a direct TCP
//!   connection to the same server (the pod IP; the host's loopback for host-network pods);
//! - the runtime's RSS per idle streaming session (idle port-forward connections).

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use cri_api::v1::{
    ContainerConfig, ContainerMetadata, CreateContainerRequest, ExecRequest, ExecSyncRequest,
    ImageSpec, PodSandboxStatusRequest, PortForwardRequest, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest,
};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use super::BenchArgs;
use crate::Client;

/// What the streaming bench measured.
#[derive(Debug, Serialize)]
pub struct StreamReport {
    pub execs: usize,
    pub exec_p50_ms: f64,
    pub exec_sync_p50_ms: f64,
    pub runc_exec_p50_ms: f64,
    /// Exec / runc exec.
    pub exec_ratio: f64,
    pub bytes: u64,
    pub forward_mib_s: f64,
    pub direct_mib_s: f64,
    /// port-forward / direct.
    pub forward_ratio: f64,
    pub idle_sessions: usize,
    pub idle_session_kib: f64,
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

const PORT: u16 = 9000;
/// An httpd that holds idle connections (for the per-session cost).
const IDLE_PORT: u16 = 9001;
const GIB: u64 = 1 << 30;

/// A pod with two containers: one idle for execs, one serving 1 GiB per connection on PORT.
async fn setup(c: &mut Client, args: &BenchArgs, image: &str) -> anyhow::Result<(String, String)> {
    let mut pod = super::pod_config(args, 0, "streaming");
    pod.metadata.as_mut().context("pod metadata")?.name = "crust-bench-streaming".into();
    let pod_id = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(pod),
            runtime_handler: args.runtime.clone(),
        })
        .await?
        .into_inner()
        .pod_sandbox_id;
    // A persistent server: every connection gets 1 GiB of zeros.
    let server = format!("exec busybox nc -ll -p {PORT} -e busybox head -c {GIB} /dev/zero");
    let web = format!("mkdir -p /tmp/www && exec busybox httpd -f -p {IDLE_PORT} -h /tmp/www");
    let mut ids = Vec::new();
    for (name, script) in [
        ("idle", "exec sleep 3600".to_string()),
        ("source", server),
        ("web", web),
    ] {
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: image.into(),
                ..Default::default()
            }),
            command: vec!["/bin/sh".into(), "-c".into(), script],
            ..Default::default()
        };
        let id = c
            .create_container(CreateContainerRequest {
                pod_sandbox_id: pod_id.clone(),
                config: Some(config),
                sandbox_config: None,
            })
            .await?
            .into_inner()
            .container_id;
        c.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // the servers listen
    Ok((pod_id, ids.swap_remove(0)))
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn ws(url: &str, protocol: &str) -> anyhow::Result<Ws> {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue};
    let mut req = url.replacen("http://", "ws://", 1).into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol)?);
    let addr = req.uri().authority().context("URL")?.to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await?;
    let _ = tcp.set_nodelay(true);
    Ok(tokio_tungstenite::client_async(req, tcp).await?.0)
}

/// One Exec of `true` until its status arrives.
async fn exec_once(c: &mut Client, id: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let url = c
        .exec(ExecRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            stdout: true,
            ..Default::default()
        })
        .await?
        .into_inner()
        .url;
    let mut s = ws(&url, "v5.channel.k8s.io").await?;
    while let Some(m) = s.next().await {
        if let Message::Binary(b) = m? {
            if b.first() == Some(&3) {
                break; // the exit status
            }
        }
    }
    Ok(started.elapsed())
}

async fn execs(
    c: &mut Client,
    args: &BenchArgs,
    id: &str,
    n: usize,
) -> anyhow::Result<(f64, f64, f64)> {
    let (mut exec, mut sync, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    let root = args.crust_state.join("runtime/runc");
    for _ in 0..n {
        exec.push(ms(exec_once(c, id).await?));
        let started = Instant::now();
        c.exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: vec!["true".into()],
            timeout: 10,
        })
        .await?;
        sync.push(ms(started.elapsed()));
        let started = Instant::now();
        let ok = Command::new(&args.runc)
            .arg("--root")
            .arg(&root)
            .args(["exec", id, "true"])
            .status()?;
        anyhow::ensure!(ok.success(), "runc exec failed");
        raw.push(ms(started.elapsed()));
    }
    Ok((p50(exec), p50(sync), p50(raw)))
}

/// Reads everything from `r`; the bytes and MiB/s.
async fn drain(mut r: impl tokio::io::AsyncRead + Unpin) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut n = 0u64;
    loop {
        let got = r.read(&mut buf).await?;
        if got == 0 {
            break;
        }
        n += got as u64;
    }
    Ok((
        n,
        n as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64(),
    ))
}

async fn forward_url(c: &mut Client, pod: &str, port: u16) -> anyhow::Result<String> {
    Ok(c.port_forward(PortForwardRequest {
        pod_sandbox_id: pod.into(),
        port: vec![i32::from(port)],
    })
    .await?
    .into_inner()
    .url + &format!("?port={port}"))
}

/// 1 GiB through a forwarded connection: bytes and MiB/s.
async fn forwarded(c: &mut Client, pod: &str) -> anyhow::Result<(u64, f64)> {
    let url = forward_url(c, pod, PORT).await?;
    let mut s = ws(&url, "v4.channel.k8s.io").await?;
    let started = Instant::now();
    let mut n = 0u64;
    let mut first = true;
    while let Some(m) = s.next().await {
        match m? {
            Message::Binary(b) if b.first() == Some(&0) => {
                let payload = if first {
                    b.len().saturating_sub(3)
                } else {
                    b.len() - 1
                };
                first = false;
                n += payload as u64;
                if n >= GIB {
                    break;
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    let _ = s.close(None).await;
    Ok((
        n,
        n as f64 / (1 << 20) as f64 / started.elapsed().as_secs_f64(),
    ))
}

/// The runtime's RSS growth per idle port-forward session (each holding one idle connection
/// to the httpd; no process of the runtime's).
async fn idle_sessions(c: &mut Client, pod: &str, runtime: i32, n: usize) -> anyhow::Result<f64> {
    let (before, _) = super::density::memory_kib(runtime);
    let mut open = Vec::new();
    for _ in 0..n {
        let url = forward_url(c, pod, IDLE_PORT).await?;
        open.push(ws(&url, "v4.channel.k8s.io").await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (after, _) = super::density::memory_kib(runtime);
    drop(open);
    Ok(after.saturating_sub(before) as f64 / n.max(1) as f64)
}

async fn pod_ip(c: &mut Client, pod: &str) -> anyhow::Result<String> {
    let st = c
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.into(),
            verbose: false,
        })
        .await?
        .into_inner()
        .status
        .context("status")?;
    Ok(st
        .network
        .map(|n| n.ip)
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| "127.0.0.1".into()))
}

/// Runs the bench; the pod is removed whatever happens.
pub async fn run(
    mut c: Client,
    socket: &Path,
    args: &BenchArgs,
    image: &str,
) -> anyhow::Result<StreamReport> {
    let (pod, idle) = setup(&mut c, args, image).await?;
    let result = measure(&mut c, socket, args, &pod, &idle).await;
    let _ = c
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        })
        .await;
    let _ = c
        .remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        })
        .await;
    result
}

async fn measure(
    c: &mut Client,
    socket: &Path,
    args: &BenchArgs,
    pod: &str,
    idle: &str,
) -> anyhow::Result<StreamReport> {
    let n = args.pods.max(5);
    let (exec_p50_ms, exec_sync_p50_ms, runc_exec_p50_ms) = execs(c, args, idle, n).await?;
    let (bytes, forward_mib_s) = forwarded(c, pod).await?;
    let ip = pod_ip(c, pod).await?;
    let direct = tokio::net::TcpStream::connect((ip.as_str(), PORT)).await?;
    let (_, direct_mib_s) = drain(direct).await?;
    let runtime = super::density::server_pid(socket)?;
    let sessions = 20;
    let idle_session_kib = idle_sessions(c, pod, runtime, sessions).await?;
    Ok(StreamReport {
        execs: n,
        exec_p50_ms,
        exec_sync_p50_ms,
        runc_exec_p50_ms,
        exec_ratio: exec_p50_ms / runc_exec_p50_ms.max(1e-9),
        bytes,
        forward_mib_s,
        direct_mib_s,
        forward_ratio: forward_mib_s / direct_mib_s.max(1e-9),
        idle_sessions: sessions,
        idle_session_kib,
    })
}

pub fn print(r: &StreamReport) {
    println!("streaming bench ({} execs)", r.execs);
    println!(
        "  Exec of true, p50      {:8.2} ms   ExecSync {:.2} ms   runc exec {:.2} ms   Exec / runc exec {:.2}x",
        r.exec_p50_ms, r.exec_sync_p50_ms, r.runc_exec_p50_ms, r.exec_ratio
    );
    println!(
        "  1 GiB port-forwarded   {:8.1} MiB/s direct {:.1} MiB/s   forwarded / direct {:.2}x ({} bytes)",
        r.forward_mib_s, r.direct_mib_s, r.forward_ratio, r.bytes
    );
    println!(
        "  idle session           {:8.1} KiB of runtime RSS each ({} sessions)",
        r.idle_session_kib, r.idle_sessions
    );
}
