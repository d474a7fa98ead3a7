//! crust: the operator's CLI for crustd (as `isula` is for iSulad). It speaks CRI over the socket
//! like any other client; pod configs are crictl-style JSON or YAML.

mod bench;
mod containers;
mod doctor;
mod images;
mod stream;

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use cri_api::v1::{
    image_service_client::ImageServiceClient, runtime_service_client::RuntimeServiceClient,
    GetEventsRequest, ListPodSandboxRequest, PodSandbox, PodSandboxFilter, PodSandboxState,
    PodSandboxStateValue, PodSandboxStatusRequest, RemovePodSandboxRequest, RunPodSandboxRequest,
    RuntimeConfigRequest, StatusRequest, StopPodSandboxRequest, VersionRequest,
};
use crust_api::v1::admin_client::AdminClient;
use hyper_util::rt::TokioIo;
use tokio_stream::StreamExt;
use tonic::transport::{Channel, Endpoint};

#[derive(Parser, Debug)]
#[command(name = "crust", version, about = "Operate crustd over its CRI socket")]
struct Cli {
    /// crustd's socket.
    #[arg(long, global = true, env = "CRUST_SOCKET", default_value = crust::config::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, default_value = "table")]
    output: Output,
    /// Per-call timeout in seconds.
    #[arg(long, global = true, default_value_t = 240)]
    call_timeout: u64,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Check this node for what crustd needs and say what to fix (needs no running crustd;
    /// exits 1 when something blocks crust).
    Doctor {
        /// The host root to check (a mounted node image, say).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// crustd's config file (its runtimes and CNI dirs are checked).
        #[arg(long, default_value = crust::config::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Print JSON (same as `-o json`).
        #[arg(long)]
        json: bool,
    },
    /// Runtime name and versions.
    Version,
    /// Runtime status and configuration.
    Info,
    /// Run a pod sandbox from a JSON or YAML PodSandboxConfig.
    Runp {
        config: PathBuf,
        /// Runtime handler (empty: crustd's default).
        #[arg(long, default_value = "")]
        runtime: String,
    },
    /// List pod sandboxes.
    Pods {
        /// Only ids starting with this.
        #[arg(long)]
        id: Option<String>,
        /// Only pods with this name.
        #[arg(long)]
        name: Option<String>,
        /// Only ready or notready pods.
        #[arg(long, value_parser = ["ready", "notready"])]
        state: Option<String>,
        /// Label selector key=value (repeatable; all must match).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a pod sandbox's status (with crust's internal record).
    Inspectp { id: String },
    /// Stop pod sandboxes.
    Stopp {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Remove pod sandboxes (stopping them first).
    Rmp {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Stream lifecycle events until interrupted.
    Events,
    /// Benchmark a CRI endpoint (crust or any other), optionally against the floor.
    Bench(Box<bench::BenchArgs>),
    /// Create a container in a pod from crictl-style configs.
    Create {
        pod: String,
        container_config: PathBuf,
        pod_config: PathBuf,
    },
    /// Start created containers.
    Start {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// List containers.
    Ps {
        /// Only containers of this pod (id or prefix).
        #[arg(long)]
        pod: Option<String>,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show a container's status.
    Inspect { id: String },
    /// Stop containers (stop signal, SIGKILL after --timeout seconds).
    Stop {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long, default_value_t = 10)]
        timeout: i64,
    },
    /// Remove containers (running ones are killed).
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Print a container's log.
    Logs {
        id: String,
        #[arg(short, long)]
        follow: bool,
    },
    /// Run a command in a running container through the CRI streaming URL (exit code kept).
    Exec {
        id: String,
        /// Keep stdin open and send this terminal's input.
        #[arg(short, long)]
        interactive: bool,
        /// Allocate a terminal (raw mode here, resized on SIGWINCH).
        #[arg(short, long)]
        tty: bool,
        /// Run with ExecSync instead (output after the end), killed after --timeout seconds.
        #[arg(short, long)]
        sync: bool,
        /// Seconds before a --sync command is killed (0: none).
        #[arg(long, default_value_t = 0)]
        timeout: i64,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Attach to a running container through the CRI streaming URL.
    Attach {
        id: String,
        /// Send this terminal's input (the container must have stdin).
        #[arg(short = 'i', long, alias = "stdin")]
        interactive: bool,
        /// The container has a terminal.
        #[arg(short, long)]
        tty: bool,
        /// Use the shim's attach socket on this node instead of the CRI URL.
        #[arg(long)]
        local: bool,
    },
    /// Forward local ports to a pod: LOCAL:REMOTE (or PORT for both).
    PortForward {
        pod: String,
        #[arg(required = true)]
        ports: Vec<String>,
    },
    /// Container resource usage.
    Stats {
        #[arg(long)]
        pod: Option<String>,
    },
    /// List images.
    Images {
        /// Ids only.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Show an image (by tag, id, id prefix or digest).
    Inspecti { image: String },
    /// Pull an image from its registry (crustd's mirrors and registry config apply).
    Pull {
        image: String,
        /// Registry credentials as USER:PASSWORD.
        #[arg(long)]
        creds: Option<String>,
    },
    /// Import the images of an OCI image layout archive (e.g. `skopeo copy ... oci-archive:F.tar:NAME`).
    Import { archive: PathBuf },
    /// Remove images (by tag, id or digest).
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
    },
}

async fn connect(socket: PathBuf, timeout: u64) -> anyhow::Result<Channel> {
    let display = socket.display().to_string();
    let channel = Endpoint::try_from("http://[::]:50051")?
        .timeout(Duration::from_secs(timeout))
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await
        .with_context(|| format!("cannot connect to crustd at {display}"))?;
    Ok(channel)
}

/// A crictl-style config (JSON or YAML, snake_case) from `path`.
fn parse_config<T: serde::de::DeserializeOwned>(path: &PathBuf) -> anyhow::Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let is_json =
        path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{');
    let config = if is_json {
        serde_json::from_str(&text).with_context(|| format!("parse {} as JSON", path.display()))?
    } else {
        serde_yaml::from_str(&text).with_context(|| format!("parse {} as YAML", path.display()))?
    };
    Ok(config)
}

fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn state_name(state: i32) -> &'static str {
    if state == PodSandboxState::SandboxReady as i32 {
        "Ready"
    } else {
        "NotReady"
    }
}

fn age(created_ns: i64) -> String {
    let now = crust::events::now_ns();
    let secs = ((now - created_ns).max(0) / 1_000_000_000) as u64;
    match secs {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 86400 => format!("{}h ago", s / 3600),
        s => format!("{}d ago", s / 86400),
    }
}

fn pods_filter(
    id: Option<String>,
    state: Option<String>,
    labels: &[String],
) -> anyhow::Result<PodSandboxFilter> {
    let mut filter = PodSandboxFilter {
        id: id.unwrap_or_default(),
        ..Default::default()
    };
    if let Some(s) = state {
        let state = if s == "ready" {
            PodSandboxState::SandboxReady
        } else {
            PodSandboxState::SandboxNotready
        };
        filter.state = Some(PodSandboxStateValue {
            state: state as i32,
        });
    }
    for l in labels {
        let Some((k, v)) = l.split_once('=') else {
            bail!("--label takes key=value, got {l:?}");
        };
        filter.label_selector.insert(k.to_string(), v.to_string());
    }
    Ok(filter)
}

fn print_pods(items: &[PodSandbox], quiet: bool) {
    if quiet {
        items.iter().for_each(|p| println!("{}", p.id));
        return;
    }
    println!(
        "{:<13}  {:<10}  {:<8}  {:<30}  {:<20}  {:<7}  RUNTIME",
        "POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT"
    );
    for p in items {
        let m = p.metadata.clone().unwrap_or_default();
        let short = &p.id[..p.id.len().min(13)];
        println!(
            "{short:<13}  {:<10}  {:<8}  {:<30}  {:<20}  {:<7}  {}",
            age(p.created_at),
            state_name(p.state),
            m.name,
            m.namespace,
            m.attempt,
            p.runtime_handler
        );
    }
}

type Client = RuntimeServiceClient<Channel>;

async fn run(cli: Cli) -> anyhow::Result<()> {
    // The doctor answers before any connection: crustd need not run.
    if let Cmd::Doctor { root, config, json } = &cli.command {
        let fine = doctor(root, config, *json || cli.output == Output::Json)?;
        std::process::exit(if fine { 0 } else { 1 });
    }
    let channel = connect(cli.socket.clone(), cli.call_timeout).await?;
    let images = ImageServiceClient::new(channel.clone());
    let admin = AdminClient::new(channel.clone());
    let c = RuntimeServiceClient::new(channel);
    let json = cli.output == Output::Json;
    match cli.command {
        Cmd::Doctor { .. } => Ok(()), // answered above
        Cmd::Version => version(c, json).await,
        Cmd::Info => info(c, json).await,
        Cmd::Runp { config, runtime } => runp(c, &config, runtime).await,
        Cmd::Pods {
            id,
            name,
            state,
            labels,
            quiet,
        } => {
            let filter = pods_filter(id, state, &labels)?;
            pods(c, filter, name, quiet, json).await
        }
        Cmd::Inspectp { id } => inspectp(c, id).await,
        Cmd::Stopp { ids } => stopp(c, ids).await,
        Cmd::Rmp { ids } => rmp(c, ids).await,
        Cmd::Bench(args) => {
            let versus = match &args.versus {
                Some(socket) => Some(connect(socket.clone(), cli.call_timeout).await?),
                None => None,
            };
            bench::run(c, images, &cli.socket, versus, *args, json).await
        }
        Cmd::Events => events(c, json).await,
        Cmd::Images { quiet } => images::list(images, quiet, json).await,
        Cmd::Create {
            pod,
            container_config,
            pod_config,
        } => containers::create(c, pod, container_config, pod_config).await,
        Cmd::Start { ids } => containers::start(c, ids).await,
        Cmd::Ps { pod, quiet } => containers::ps(c, pod, quiet, json).await,
        Cmd::Inspect { id } => containers::inspect(c, id).await,
        Cmd::Stop { ids, timeout } => containers::stop(c, ids, timeout).await,
        Cmd::Rm { ids } => containers::rm(c, ids).await,
        Cmd::Logs { id, follow } => containers::logs(c, id, follow).await,
        Cmd::Exec {
            id,
            timeout,
            cmd,
            sync,
            interactive,
            tty,
        } => {
            if sync || timeout > 0 {
                containers::exec(c, id, cmd, timeout).await
            } else {
                stream::exec(c, id, cmd, interactive, tty).await
            }
        }
        Cmd::PortForward { pod, ports } => stream::port_forward(c, pod, ports).await,
        Cmd::Stats { pod } => containers::stats(c, pod, json).await,
        Cmd::Attach {
            id,
            interactive,
            tty,
            local,
        } => {
            if local {
                containers::attach(c, id, interactive).await
            } else {
                stream::attach(c, id, interactive, tty).await
            }
        }
        Cmd::Inspecti { image } => images::inspect(images, image).await,
        Cmd::Rmi { images: refs } => images::remove(images, refs).await,
        Cmd::Pull { image, creds } => images::pull(images, image, creds).await,
        Cmd::Import { archive } => images::import(admin, archive).await,
    }
}

/// Prints a report (JSON or table) and writes it to `path` when asked.
fn emit<T: serde::Serialize>(
    report: &T,
    json: bool,
    path: Option<&std::path::Path>,
    table: fn(&T),
) -> anyhow::Result<()> {
    if json {
        print_json(report)?;
    } else {
        table(report);
    }
    if let Some(path) = path {
        std::fs::write(path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(())
}

async fn version(mut c: Client, json: bool) -> anyhow::Result<()> {
    let v = c.version(VersionRequest::default()).await?.into_inner();
    if json {
        return print_json(&v);
    }
    println!(
        "Version:  {}\nRuntimeName:  {}\nRuntimeVersion:  {}\nRuntimeApiVersion:  {}",
        v.version, v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    Ok(())
}

async fn info(mut c: Client, json: bool) -> anyhow::Result<()> {
    let st = c
        .status(StatusRequest { verbose: true })
        .await?
        .into_inner();
    let rc = c
        .runtime_config(RuntimeConfigRequest {})
        .await?
        .into_inner();
    if json {
        return print_json(&serde_json::json!({ "status": st, "runtimeConfig": rc }));
    }
    for cond in st.status.unwrap_or_default().conditions {
        println!(
            "{:<14} {:<5} {} {}",
            cond.r#type, cond.status, cond.reason, cond.message
        );
    }
    let driver = rc.linux.map(|l| l.cgroup_driver).unwrap_or_default();
    println!(
        "cgroup driver: {}",
        if driver == 0 { "systemd" } else { "cgroupfs" }
    );
    if let Some(config) = st.info.get("config") {
        println!("--- effective config ---\n{config}");
    }
    Ok(())
}

async fn runp(mut c: Client, config: &PathBuf, runtime_handler: String) -> anyhow::Result<()> {
    let config = parse_config(config)?;
    let req = RunPodSandboxRequest {
        config: Some(config),
        runtime_handler,
    };
    println!(
        "{}",
        c.run_pod_sandbox(req).await?.into_inner().pod_sandbox_id
    );
    Ok(())
}

async fn pods(
    mut c: Client,
    filter: PodSandboxFilter,
    name: Option<String>,
    quiet: bool,
    json: bool,
) -> anyhow::Result<()> {
    let req = ListPodSandboxRequest {
        filter: Some(filter),
    };
    let mut items = c.list_pod_sandbox(req).await?.into_inner().items;
    if let Some(name) = name {
        items.retain(|p| p.metadata.as_ref().is_some_and(|m| m.name == name));
    }
    if json {
        return print_json(&items);
    }
    print_pods(&items, quiet);
    Ok(())
}

async fn inspectp(mut c: Client, pod_sandbox_id: String) -> anyhow::Result<()> {
    let req = PodSandboxStatusRequest {
        pod_sandbox_id,
        verbose: true,
    };
    let r = c.pod_sandbox_status(req).await?.into_inner();
    let info: serde_json::Value = r
        .info
        .get("info")
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or_default();
    print_json(&serde_json::json!({ "status": r.status, "info": info }))
}

async fn stopp(mut c: Client, ids: Vec<String>) -> anyhow::Result<()> {
    for id in ids {
        c.stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await?;
        println!("Stopped sandbox {id}");
    }
    Ok(())
}

async fn rmp(mut c: Client, ids: Vec<String>) -> anyhow::Result<()> {
    for id in ids {
        c.remove_pod_sandbox(RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await?;
        println!("Removed sandbox {id}");
    }
    Ok(())
}

async fn events(mut c: Client, json: bool) -> anyhow::Result<()> {
    let mut stream = c
        .get_container_events(GetEventsRequest {})
        .await?
        .into_inner();
    while let Some(ev) = stream.next().await {
        let ev = ev?;
        if json {
            println!("{}", serde_json::to_string(&ev)?);
            continue;
        }
        let kind = cri_api::v1::ContainerEventType::try_from(ev.container_event_type)
            .map(|k| k.as_str_name())
            .unwrap_or("UNKNOWN");
        println!("{} {kind} {}", ev.created_at, ev.container_id);
    }
    Ok(())
}

/// `crust doctor`: no connection to crustd.
fn doctor(root: &std::path::Path, config: &std::path::Path, json: bool) -> anyhow::Result<bool> {
    let under_root = root.join(config.strip_prefix("/").unwrap_or(config));
    let config = crust::config::Config::load(&under_root, false)?;
    doctor::report(&doctor::examine(root, &config), json)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let cli = Cli::parse();
    if let Err(e) = run(cli).await {
        match e.downcast_ref::<tonic::Status>() {
            Some(status) => eprintln!("crust: {:?}: {}", status.code(), status.message()),
            None => eprintln!("crust: {e:#}"),
        }
        std::process::exit(1);
    }
}
