//! Wiring: from a [`Config`] to a recovered [`CriService`] served on the unix socket.
//!
//! Shutdown (the `shutdown` future resolving, e.g. on SIGTERM) stops serving and removes the socket;
//! pods keep running and are picked up again by the next start.

use std::{
    collections::BTreeMap,
    future::Future,
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use cri_api::v1::{
    image_service_server::ImageServiceServer, runtime_service_server::RuntimeServiceServer,
};
use tokio::net::UnixListener;
use tokio_stream::wrappers::UnixListenerStream;

use crust_api::v1::admin_server::AdminServer;

use crate::{
    config::{Config, RuntimeType},
    container::{ContainerManager, ContainerOptions},
    events::EventBus,
    image::{self, pull::Puller, registry::Registries, store::ImageStore, SandboxImage},
    metrics::collect::StateCounts,
    network::cni::{CniNetwork, CniOptions, EmbeddedNetwork},
    oci_runtime::{shim_v2::ShimV2Runtime, OciRuntime, RuncRuntime, RuntimeCli},
    sandbox::{
        controller::PauseController, pinned::ByKind, store::SandboxStore, ManagerOptions,
        SandboxManager,
    },
    server::admin_import::AdminService,
    server::CriService,
    store::Registrar,
};

/// The oom_score_adj containerd gives sandboxes.
pub const SANDBOX_OOM_SCORE_ADJ: i32 = -998;

/// Startup failures.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Serve(#[from] tonic::transport::Error),
    #[error("containers: {0}")]
    Containers(#[from] crate::container::ContainerError),
    #[error("image store: {0}")]
    Images(#[from] crate::image::store::ImageStoreError),
    #[error(transparent)]
    Streaming(#[from] crate::streaming::StreamingError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> DaemonError {
    let path = path.to_path_buf();
    move |source| DaemonError::Io { what, path, source }
}

/// Builds the service: directories, built-in pause, runtimes, store, and restart recovery.
pub async fn build(config: Config) -> Result<Arc<CriService>, DaemonError> {
    let config = Arc::new(config);
    let sandboxes_root = config.root.join("sandboxes");
    let sandboxes_state = config.state.join("sandboxes");
    for dir in [
        &config.root,
        &config.state,
        &sandboxes_root,
        &sandboxes_state,
    ] {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(dir)
            .map_err(io_err("create", dir))?;
    }
    let rootfs = image::ensure_builtin_pause(&config.root)
        .map_err(io_err("write built-in pause under", &config.root))?;
    let runtimes = runtimes(&config);
    for runtime in runtimes.values() {
        runtime.recover().await;
    }
    let controller = PauseController::new(runtimes.clone(), rootfs, sandbox_oom_score_adj());
    let events = EventBus::default();
    let images = Arc::new(ImageStore::open(&config.root.join("images"))?);
    let puller = Arc::new(Puller::new(
        images,
        Registries::new(config.registries.clone(), config.limits.parse()?),
    ));
    let options = ManagerOptions {
        root_dir: sandboxes_root.clone(),
        state_dir: sandboxes_state,
        handlers: config.runtimes.clone(),
        default_handler: config.default_runtime.clone(),
        netns_dir: config.state.join("netns"),
        sandbox_image: SandboxImage {
            reference: config.sandbox_image.clone(),
            puller: Arc::clone(&puller),
        },
    };
    let registrar = Arc::new(Registrar::default());
    let store = SandboxStore::new(sandboxes_root.clone(), Arc::clone(&registrar));
    let network = cni_network(&config);
    let swept = network.cache().sweep_temp();
    if swept > 0 {
        tracing::info!(swept, "removed CNI cache temp files a crash left");
    }
    // The embedded network is written now (when the conf dir is empty), not at the first pod:
    // tools reading the node's CNI config (crust bench --floor) find it as soon as crustd serves.
    let _ = network.networks();
    let manager = Arc::new(SandboxManager::new(
        store,
        Arc::new(ByKind::new(Arc::new(controller))),
        Arc::new(network),
        events.clone(),
        options,
    ));
    manager
        .recover()
        .await
        .map_err(io_err("recover sandboxes from", &sandboxes_root))?;
    let containers = Arc::new(ContainerManager::new(
        ContainerOptions {
            root_dir: config.root.join("containers"),
            shim: shim_binary(),
        },
        registrar,
        Arc::clone(&manager),
        Arc::clone(puller.store()),
        runtimes,
        events.clone(),
    ));
    containers.recover().await?;
    manager.set_containers(Arc::clone(&containers) as Arc<dyn crate::sandbox::PodContainers>);
    let duration = |s: &str| crate::config::parse_duration(s).unwrap_or_default();
    let settings = crate::streaming::Settings {
        idle_timeout: duration(&config.streaming.idle_timeout),
        stream_creation_timeout: duration(&config.streaming.stream_creation_timeout),
        token_ttl: duration(&config.streaming.token_ttl),
        max_streams: config.streaming.max_streams_per_session,
    };
    let tls = (!config.streaming.tls_cert_file.is_empty()).then(|| crate::streaming::TlsFiles {
        cert: PathBuf::from(&config.streaming.tls_cert_file),
        key: PathBuf::from(&config.streaming.tls_key_file),
    });
    let streaming = crate::streaming::start(&config.streaming.address, settings, tls).await?;
    start_metrics(&config, &manager, &containers).await?;
    Ok(Arc::new(CriService::new(
        manager, events, config, puller, containers, streaming,
    )))
}

/// Points the scrape-time metrics at the stores and serves `/metrics` when configured.
async fn start_metrics(
    config: &Config,
    pods: &Arc<SandboxManager>,
    containers: &Arc<ContainerManager>,
) -> Result<(), DaemonError> {
    let (pods, containers) = (Arc::clone(pods), Arc::clone(containers));
    crate::metrics::collect::set_source(Box::new(move || state_counts(&pods, &containers)));
    if config.metrics.address.is_empty() {
        return Ok(());
    }
    crate::metrics::server::start(&config.metrics.address)
        .await
        .map_err(io_err(
            "serve metrics on",
            Path::new(&config.metrics.address),
        ))?;
    Ok(())
}

/// Pods and containers by CRI state, and the containers whose shim lives.
fn state_counts(pods: &SandboxManager, containers: &ContainerManager) -> StateCounts {
    let all = pods.store().all();
    let ready = all.iter().filter(|s| s.state().is_ready()).count() as i64;
    let total = all.len() as i64;
    let records = containers.list(None);
    let states = [
        cri_api::v1::ContainerState::ContainerCreated,
        cri_api::v1::ContainerState::ContainerRunning,
        cri_api::v1::ContainerState::ContainerExited,
        cri_api::v1::ContainerState::ContainerUnknown,
    ];
    let count = |state: cri_api::v1::ContainerState| {
        records.iter().filter(|r| r.state.to_cri() == state).count() as i64
    };
    StateCounts {
        pods: vec![
            ("SANDBOX_READY", ready),
            ("SANDBOX_NOTREADY", total - ready),
        ],
        containers: states
            .iter()
            .map(|s| (s.as_str_name(), count(*s)))
            .collect(),
        shims: records
            .iter()
            .filter(|r| r.shim.is_some() && r.state.may_run())
            .count() as i64,
    }
}

/// crust-shim: next to this executable, else on PATH.
/// What shims run to publish an event: this crustd (`crustd --address A publish ...`).
fn publish_binary() -> PathBuf {
    std::env::current_exe().unwrap_or_else(|_| resolve_binary(Path::new("crustd")))
}

fn shim_binary() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("crust-shim")))
        .filter(|p| p.is_file());
    beside.unwrap_or_else(|| resolve_binary(Path::new("crust-shim")))
}

/// The CNI pod network from the `[cni]` config; results are cached under the root dir so DEL
/// works after a reboot too.
fn cni_network(config: &Config) -> CniNetwork {
    let embedded = config.cni.default_network.then(|| EmbeddedNetwork {
        dir: config.state.join("cni").join("net.d"),
        bridge: config.cni.default_network_bridge.clone(),
        subnet: config.cni.default_network_subnet.clone(),
    });
    CniNetwork::new(CniOptions {
        conf_dir: config.cni.conf_dir.clone(),
        bin_dirs: config.cni.bin_dirs.clone(),
        timeout: Duration::from_secs(config.cni.plugin_timeout_s.max(1)),
        cache_dir: config.root.join("cni").join("results"),
        embedded,
    })
}

/// One OCI runtime per configured handler, each with its own `--root` under the state dir.
fn runtimes(config: &Config) -> BTreeMap<String, Arc<dyn OciRuntime>> {
    config
        .runtimes
        .iter()
        .map(|(handler, rt)| {
            let root = rt
                .root
                .clone()
                .unwrap_or_else(|| config.state.join("runtime").join(handler));
            let binary = match rt.kind {
                RuntimeType::Oci => resolve_binary(&rt.binary(handler)),
                RuntimeType::ShimV2 => resolve_binary(rt.shim.as_deref().unwrap_or(Path::new(""))),
            };
            if !binary.is_file() {
                tracing::warn!(handler = %handler, path = %binary.display(), "runtime binary not found; pods on this handler will fail");
            }
            let runtime: Arc<dyn OciRuntime> = match rt.kind {
                RuntimeType::Oci => {
                    let args = rt.runtime_args.clone();
                    let cli = RuntimeCli { binary, root, args };
                    Arc::new(RuncRuntime::new(cli, rt.clone()))
                }
                RuntimeType::ShimV2 => {
                    Arc::new(ShimV2Runtime::new(binary, root, publish_binary(), rt.clone()))
                }
            };
            (handler.clone(), runtime)
        })
        .collect()
}

/// An absolute path as is; otherwise the first match on PATH (or the name itself).
pub fn resolve_binary(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .chain(["/usr/sbin", "/usr/bin", "/sbin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(path))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| path.to_path_buf())
}

/// -998 unless crustd may not go below its own score (no CAP_SYS_RESOURCE): then crustd's own,
/// as containerd's `restrict_oom_score_adj` does.
pub fn sandbox_oom_score_adj() -> i32 {
    let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if has_cap_sys_resource() || own <= SANDBOX_OOM_SCORE_ADJ {
        return SANDBOX_OOM_SCORE_ADJ;
    }
    tracing::info!(
        wanted = SANDBOX_OOM_SCORE_ADJ,
        clamped_to = own,
        "no CAP_SYS_RESOURCE: sandbox oom_score_adj clamped to crustd's own"
    );
    own
}

fn has_cap_sys_resource() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Binds the socket: a missing parent dir is made 0700, the socket 0660, a stale socket replaced.
pub fn bind_socket(path: &Path) -> Result<UnixListener, DaemonError> {
    // A directory crustd creates is 0700; an existing one (an operator's choice) is left alone.
    if let Some(dir) = path.parent().filter(|d| !d.exists()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io_err("create", dir))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_err("chmod", dir))?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_err("remove stale socket", path)(e))
        }
        _ => {}
    }
    let listener = UnixListener::bind(path).map_err(io_err("bind", path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(io_err("chmod", path))?;
    Ok(listener)
}

/// How long open connections (kubelet's, an events stream) may take to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a shutdown waits for RunPodSandbox, Stop/Remove and the other state-changing calls
/// still running (a CNI plugin or a pull may be slow; kill -9 remains the way to cut them).
pub const DRAIN_GRACE: Duration = Duration::from_secs(60);

/// Serves `service` on `listener` until `shutdown` resolves, then gives open connections
/// [`SHUTDOWN_GRACE`] to finish before closing them.
pub async fn serve(
    service: Arc<CriService>,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let admin = AdminService::new(
        Arc::clone(&service.puller),
        service.config.root.join("images").join("import"),
    );
    let max = service.config.limits.parse()?.max_grpc_message_bytes;
    let server = tonic::transport::Server::builder()
        .add_service(AdminServer::new(admin).max_decoding_message_size(max))
        .add_service(RuntimeServiceServer::from_arc(service.clone()).max_decoding_message_size(max))
        .add_service(ImageServiceServer::from_arc(service).max_decoding_message_size(max))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
            let _ = stop_rx.await;
        });
    tokio::pin!(server);
    tokio::select! {
        result = &mut server => return Ok(result?),
        () = shutdown => {}
    }
    let _ = stop_tx.send(());
    crate::notify::notify("STOPPING=1\n");
    let running = crate::server::instrument::in_flight();
    if running > 0 {
        tracing::info!(
            running,
            "shutting down: waiting for the calls that change state"
        );
        // The server keeps being polled meanwhile, so their answers still go out.
        tokio::select! {
            result = &mut server => return Ok(result?),
            finished = crate::server::instrument::drain(DRAIN_GRACE) => if !finished {
                tracing::warn!(grace = ?DRAIN_GRACE, left = crate::server::instrument::in_flight(),
                    "calls still running after the grace period are cut; recovery settles them");
            },
        }
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, server).await {
        Ok(result) => Ok(result?),
        Err(_) => {
            tracing::info!(grace = ?SHUTDOWN_GRACE, "closing connections still open after the grace period");
            Ok(())
        }
    }
}

/// Builds, binds and serves with `config` until `shutdown`; removes the socket afterwards.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), DaemonError> {
    let socket = config.socket.clone();
    let service = build(config).await?;
    let listener = bind_socket(&socket)?;
    tracing::info!(socket = %socket.display(), "crustd serving CRI v1");
    crate::notify::notify("READY=1\nSTATUS=serving CRI v1\n");
    let trimmer = crate::memory::spawn_idle_trim(crate::memory::QUIET);
    let result = serve(service, listener, shutdown).await;
    trimmer.abort();
    let _ = std::fs::remove_file(&socket);
    tracing::info!("crustd stopped; pods keep running");
    result
}
