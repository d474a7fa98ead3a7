//! `crust exec`, `crust attach` and `crust port-forward` through the CRI streaming URLs, as
//! crictl has them: the CLI asks crustd for the URL over CRI and speaks WebSocket to the
//! streaming server (remotecommand v5; port-forward v4 channels). With `-t` the local terminal
//! is put in raw mode and its size follows SIGWINCH; the command's exit code becomes crust's.

use std::io::Write as _;

use anyhow::{bail, Context as _};
use cri_api::v1::{AttachRequest, ExecRequest, PortForwardRequest};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, http::HeaderValue, Message};

use crate::Client;

/// The local terminal in raw mode until dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter(on: bool) -> RawMode {
        use nix::sys::termios;
        let stdin = std::io::stdin();
        if !on || !nix::unistd::isatty(libc::STDIN_FILENO).unwrap_or(false) {
            return RawMode(None);
        }
        let Ok(saved) = termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(&stdin, termios::SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                saved,
            );
        }
    }
}

/// This terminal's size as a remotecommand resize message.
fn terminal_size() -> Option<Vec<u8>> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into a valid pointer.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0).then(|| {
        serde_json::json!({"Width": ws.ws_col, "Height": ws.ws_row})
            .to_string()
            .into_bytes()
    })
}

fn framed(channel: u8, data: &[u8]) -> Message {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    Message::Binary(v.into())
}

/// The exit code a v4/v5 status names.
fn exit_code(status: &[u8]) -> anyhow::Result<i32> {
    if status.is_empty() {
        return Ok(0);
    }
    let v: serde_json::Value = serde_json::from_slice(status).context("exit status")?;
    if v["status"] == "Success" {
        return Ok(0);
    }
    if v["reason"] == "NonZeroExitCode" {
        let code = v["details"]["causes"][0]["message"].as_str().unwrap_or("1");
        return Ok(code.parse().unwrap_or(1));
    }
    bail!("{}", v["message"].as_str().unwrap_or("the stream failed"))
}

async fn connect(
    url: &str,
    protocol: &str,
) -> anyhow::Result<tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>> {
    let ws_url = url.replacen("http://", "ws://", 1);
    let mut req = ws_url.as_str().into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_str(protocol)?);
    let addr = req.uri().authority().context("streaming URL")?.to_string();
    let tcp = tokio::net::TcpStream::connect(&addr).await?;
    let (ws, _) = tokio_tungstenite::client_async(req, tcp)
        .await
        .with_context(|| format!("connect to {url}"))?;
    Ok(ws)
}

/// A remotecommand session on `url`: this process's stdin/stdout/stderr and terminal.
async fn remotecommand(url: &str, stdin: bool, tty: bool) -> anyhow::Result<i32> {
    let ws = connect(url, "v5.channel.k8s.io").await?;
    let (mut tx, mut rx) = ws.split();
    let _raw = RawMode::enter(tty);
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel::<Message>();
    if tty {
        if let Some(size) = terminal_size() {
            let _ = out_tx.send(framed(4, &size));
        }
        let resizes = out_tx.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let Ok(mut winch) = signal(SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some(size) = terminal_size() {
                    let _ = resizes.send(framed(4, &size));
                }
            }
        });
    }
    if stdin {
        let input = out_tx.clone();
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 || input.send(framed(0, &buf[..n])).is_err() {
                    break;
                }
            }
            let _ = input.send(framed(255, &[0])); // stdin's EOF
        });
    }
    tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            if tx.send(m).await.is_err() {
                break;
            }
        }
    });
    let mut status = Vec::new();
    while let Some(msg) = rx.next().await {
        let data = match msg? {
            Message::Binary(b) => b,
            Message::Close(_) => break,
            _ => continue,
        };
        let Some((&channel, payload)) = data.split_first() else {
            continue;
        };
        match channel {
            1 => {
                std::io::stdout().write_all(payload)?;
                std::io::stdout().flush()?;
            }
            2 => std::io::stderr().write_all(payload)?,
            3 => status.extend_from_slice(payload),
            _ => {}
        }
    }
    drop(_raw);
    exit_code(&status)
}

/// `crust exec [-i] [-t] ID -- CMD...`.
pub async fn exec(
    mut c: Client,
    id: String,
    cmd: Vec<String>,
    stdin: bool,
    tty: bool,
) -> anyhow::Result<()> {
    let url = c
        .exec(ExecRequest {
            container_id: id,
            cmd,
            tty,
            stdin,
            stdout: true,
            stderr: !tty,
        })
        .await?
        .into_inner()
        .url;
    exit_with(remotecommand(&url, stdin, tty).await?)
}

/// Ends crust with the command's exit code.
fn exit_with(code: i32) -> ! {
    std::process::exit(code)
}

/// `crust attach [-i] [-t] ID` through the CRI Attach URL.
pub async fn attach(mut c: Client, id: String, stdin: bool, tty: bool) -> anyhow::Result<()> {
    let url = c
        .attach(AttachRequest {
            container_id: id,
            stdin,
            tty,
            stdout: true,
            stderr: !tty,
        })
        .await?
        .into_inner()
        .url;
    exit_with(remotecommand(&url, stdin, tty).await?)
}

/// Forwards one accepted local connection to `remote` in the pod (a URL per connection: tokens
/// are single use).
async fn forward_one(
    mut c: Client,
    pod: String,
    remote: u16,
    local: tokio::net::TcpStream,
) -> anyhow::Result<()> {
    let url = c
        .port_forward(PortForwardRequest {
            pod_sandbox_id: pod,
            port: vec![i32::from(remote)],
        })
        .await?
        .into_inner()
        .url;
    let ws = connect(&format!("{url}?port={remote}"), "v4.channel.k8s.io").await?;
    let (mut tx, mut rx) = ws.split();
    let (mut from_local, mut to_local) = local.into_split();
    let up = async move {
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(n) = from_local.read(&mut buf).await {
            if n == 0 || tx.send(framed(0, &buf[..n])).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let mut seen = [false; 2];
        while let Some(Ok(Message::Binary(data))) = rx.next().await {
            let Some((&channel, mut payload)) = data.split_first() else {
                continue;
            };
            let ch = usize::from(channel.min(1));
            if !seen[ch] {
                seen[ch] = true; // each channel opens with the port number
                payload = payload.get(2..).unwrap_or_default();
            }
            if channel == 0 {
                if to_local.write_all(payload).await.is_err() {
                    break;
                }
            } else if !payload.is_empty() {
                eprintln!("port-forward: {}", String::from_utf8_lossy(payload));
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    Ok(())
}

/// `crust port-forward POD LOCAL:REMOTE...`: listens on 127.0.0.1:LOCAL for each pair.
pub async fn port_forward(c: Client, pod: String, pairs: Vec<String>) -> anyhow::Result<()> {
    let mut listeners = Vec::new();
    for pair in &pairs {
        let (local, remote) = pair.split_once(':').unwrap_or((pair, pair));
        let (local, remote): (u16, u16) = (local.parse()?, remote.parse()?);
        let l = tokio::net::TcpListener::bind(("127.0.0.1", local)).await?;
        println!("Forwarding from {} -> {remote}", l.local_addr()?);
        listeners.push((l, remote));
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (l, remote) in listeners {
        let (c, pod) = (c.clone(), pod.clone());
        tasks.spawn(async move {
            while let Ok((conn, _)) = l.accept().await {
                let (c, pod) = (c.clone(), pod.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward_one(c, pod, remote, conn).await {
                        eprintln!("port-forward: {e:#}");
                    }
                });
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}
