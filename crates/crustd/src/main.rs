//! crustd: the crust CRI v1 daemon.
//!
//! `crustd [serve]` runs the daemon; `crustd config` prints the effective configuration;
//! `crustd version` prints the version; `crustd --address A publish --topic T --namespace N`
//! is the `-publish-binary` of crust's shim v2 runtimes (the event on stdin). Flags override the
//! config file.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use crust::config::{Config, DEFAULT_CONFIG};

#[derive(Parser, Debug)]
#[command(
    name = "crustd",
    version,
    about = "crust: a Kubernetes CRI v1 container runtime"
)]
struct Cli {
    /// CRI socket path.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// Root (persistent) directory.
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    /// State (volatile) directory.
    #[arg(long, global = true)]
    state: Option<PathBuf>,
    /// Config file (TOML). A missing default file means built-in defaults.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Events address of a shim v2 handler (`publish`: the `-address` the shim was given).
    #[arg(long, global = true)]
    address: Option<PathBuf>,
    /// Log filter (RUST_LOG syntax).
    #[arg(long, global = true, default_value = "info", env = "CRUST_LOG")]
    log: String,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Print the effective configuration.
    Config,
    /// Print the version.
    Version,
    /// Forward one shim event (a protobuf Any on stdin) to crustd: a shim's publish binary.
    Publish {
        /// The event's topic, such as `/tasks/oom`.
        #[arg(long)]
        topic: String,
        /// The containerd namespace the shim runs in.
        #[arg(long)]
        namespace: String,
    },
}

/// The largest event `publish` reads from stdin.
const MAX_EVENT: u64 = 4 << 20;

/// `crustd --address A publish --topic T --namespace N`.
fn publish(address: Option<&PathBuf>, topic: &str, namespace: &str) -> anyhow::Result<()> {
    use std::io::Read as _;
    let address = address.context("publish needs --address")?;
    let mut event = Vec::new();
    std::io::stdin()
        .take(MAX_EVENT + 1)
        .read_to_end(&mut event)
        .context("read the event from stdin")?;
    anyhow::ensure!(
        event.len() as u64 <= MAX_EVENT,
        "the event is over {MAX_EVENT} bytes"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let published = crust::oci_runtime::shim_v2::publish_event(address, namespace, topic, &event);
    runtime.block_on(published)?;
    Ok(())
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let (path, required) = match &cli.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let mut config = Config::load(&path, required)?;
    if let Some(s) = &cli.socket {
        config.socket = s.clone();
    }
    if let Some(r) = &cli.root {
        config.root = r.clone();
    }
    if let Some(s) = &cli.state {
        config.state = s.clone();
    }
    Ok(config)
}

/// Installs the SIGTERM/SIGINT handlers now (before the socket is bound: a SIGTERM right after
/// crustd starts serving must be a graceful stop, not the default action) and returns the future
/// that resolves on the first of them. Call inside the runtime.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("cannot install signal handlers; stop crustd with SIGKILL");
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        }
    }
}

fn main() -> anyhow::Result<()> {
    crust::notify::take_from_env();
    let cli = Cli::parse();
    match cli.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Config => {
            print!("{}", load_config(&cli)?.to_toml());
            Ok(())
        }
        Command::Version => {
            println!("crustd {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Publish { topic, namespace } => publish(cli.address.as_ref(), topic, namespace),
        Command::Serve => {
            let config = load_config(&cli)?;
            crust::memory::limit_arenas();
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(&cli.log))
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .context("start the async runtime")?;
            runtime.block_on(async { crust::daemon::run(config, shutdown_signal()).await })?;
            Ok(())
        }
    }
}
