//! `crust bench`: drives any CRI endpoint (crust, containerd, CRI-O) and measures it. Each kind of
//! run is its own module: `pods` (N pods at concurrency C, per-RPC percentiles, `--floor` ratios
//! measured by `floor`), `density` (memory per pod), `pull` (PullImage beside skopeo + umoci) and
//! `streaming` (Exec, PortForward throughput, memory per session). This module holds the options
//! and what the runs share: the pod config, the parallel driver, percentiles, the progress bar.

mod density;
mod floor;
mod pods;
mod pull;
mod streaming;

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use cri_api::v1::{
    image_service_client::ImageServiceClient, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata,
};
use serde::Serialize;
use tonic::transport::Channel;

use crate::{emit, images, Client};

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// Pods to run.
    #[arg(long, default_value_t = 50)]
    pub pods: usize,
    /// Requests in flight at once.
    #[arg(long, short = 'c', default_value_t = 1)]
    pub concurrency: usize,
    /// Host-network pods (no CNI).
    #[arg(long)]
    pub host_network: bool,
    /// Set cri.sandbox.network.setup.v2=true (network first).
    #[arg(long)]
    pub network_first: bool,
    /// The runtime handler (RuntimeClass handler) of the pods; empty: the runtime's default.
    #[arg(long, default_value = "")]
    pub runtime: String,
    /// Also measure the floor: netns + CNI ADD + runc create/start and the reverse, same pods.
    #[arg(long)]
    pub floor: bool,
    /// The conflist for the floor (default: the first in /etc/cni/net.d, else crustd's embedded one).
    #[arg(long)]
    pub conflist: Option<PathBuf>,
    /// CNI plugin dirs for the floor.
    #[arg(long, default_value = "/opt/cni/bin:/usr/lib/cni")]
    pub cni_bin_dirs: String,
    /// crustd's root (the built-in pause rootfs is used for the floor).
    #[arg(long, default_value = crust::config::DEFAULT_ROOT)]
    pub crust_root: PathBuf,
    /// crustd's state dir (the embedded CNI config lives there).
    #[arg(long, default_value = crust::config::DEFAULT_STATE)]
    pub crust_state: PathBuf,
    /// The runc binary for the floor.
    #[arg(long, default_value = "runc")]
    pub runc: PathBuf,
    /// Cgroup parent of the bench pods.
    #[arg(long, default_value = "/crust-bench")]
    pub cgroup_parent: String,
    /// Write the results as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Instead of latencies: start this many pods and report the runtime's and the pods' memory.
    #[arg(long)]
    pub density: Option<usize>,
    /// Instead of pods: cold PullImage of this image vs skopeo copy + umoci unpack.
    #[arg(long)]
    pub pull: Option<String>,
    /// Runs of the pull bench.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// With --density: restart the runtime with this shell command once the pods run, and time
    /// until it serves again and lists every pod READY (e.g. "systemctl restart crustd").
    #[arg(long)]
    pub restart_cmd: Option<String>,
    /// Also bench this second CRI endpoint (e.g. containerd's socket) on the same pods,
    /// interleaved batch by batch with the first (and the floor), and print the ratios.
    #[arg(long)]
    pub versus: Option<PathBuf>,
    /// The runtime handler of the --versus endpoint's pods; empty: its default.
    #[arg(long, default_value = "")]
    pub versus_runtime: String,
    /// Give every pod one container from this image (pulled first if missing).
    #[arg(long)]
    pub container_image: Option<String>,
    /// Streaming bench with this image (busybox: sleep, head, nc): Exec p50 beside ExecSync and
    /// runc exec, 1 GiB port-forwarded beside a direct connection, RSS per idle session; the
    /// number of execs is --pods.
    #[arg(long)]
    pub streaming: Option<String>,
    /// The container's command.
    #[arg(long, num_args = 1.., default_values_t = ["sleep".to_string(), "3600".to_string()])]
    pub container_cmd: Vec<String>,
}

/// Latencies of one operation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub n: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Stats {
    /// Percentiles (nearest rank) of `samples`.
    pub fn of(samples: &[Duration]) -> Stats {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let pick = |p: f64| {
            if ms.is_empty() {
                return 0.0;
            }
            let rank = ((p / 100.0) * ms.len() as f64).ceil() as usize;
            ms[rank.clamp(1, ms.len()) - 1]
        };
        Stats {
            n: ms.len(),
            min_ms: ms.first().copied().unwrap_or(0.0),
            p50_ms: pick(50.0),
            p95_ms: pick(95.0),
            p99_ms: pick(99.0),
            max_ms: ms.last().copied().unwrap_or(0.0),
        }
    }
}

/// Runs the bench `args` asks for against the endpoint at `socket` and prints (or writes) its
/// report.
pub async fn run(
    c: Client,
    images: ImageServiceClient<Channel>,
    socket: &Path,
    versus: Option<Channel>,
    mut args: BenchArgs,
    json: bool,
) -> anyhow::Result<()> {
    let path = args.json.clone();
    if let Some(image) = args.pull.clone() {
        let report = pull::run(images, image, args.runs).await?;
        return emit(&report, json, path.as_deref(), pull::print);
    }
    if let Some(image) = args.streaming.clone() {
        images::ensure(images, &image).await?;
        let report = streaming::run(c, socket, &args, &image).await?;
        return emit(&report, json, path.as_deref(), streaming::print);
    }
    if let Some(pods) = args.density {
        args.pods = pods;
        let report = density::run(c, socket, &args).await?;
        return emit(&report, json, path.as_deref(), density::print);
    }
    if let Some(image) = &args.container_image {
        images::ensure(images, image).await?;
    }
    let versus = match (versus, &args.versus) {
        (Some(channel), Some(path)) => {
            if let Some(image) = &args.container_image {
                images::ensure(ImageServiceClient::new(channel.clone()), image).await?;
            }
            Some((Client::new(channel), path.display().to_string()))
        }
        _ => None,
    };
    let report = pods::run(c, socket.display().to_string(), versus, args).await?;
    emit(&report, json, path.as_deref(), pods::print)
}

pub(crate) fn pod_config(args: &BenchArgs, i: usize, run_tag: &str) -> PodSandboxConfig {
    let network = if args.host_network {
        NamespaceMode::Node
    } else {
        NamespaceMode::Pod
    };
    let mut config = PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: format!("bench-{i}"),
            namespace: "crust-bench".into(),
            uid: format!("{run_tag}-{i}"),
            attempt: 0,
        }),
        hostname: format!("bench-{i}"),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: args.cgroup_parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                // kubelet's pod without shareProcessNamespace: own PID namespaces per container.
                namespace_options: Some(NamespaceOption {
                    network: network as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    if args.network_first {
        config
            .annotations
            .insert("cri.sandbox.network.setup.v2".into(), "true".into());
    }
    config
}

/// Runs `work(i)` for i in 0..n with at most `c` in flight; returns the wall time.
pub(crate) async fn in_parallel<F, Fut>(
    n: usize,
    c: usize,
    label: &str,
    work: F,
) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    in_parallel_range(0..n, c, Progress::new(label, n), work).await
}

/// One side's per-pod work in an interleaved phase (a runtime's, or the floor's).
pub(crate) type Work = Arc<
    dyn Fn(usize) -> futures_util::future::BoxFuture<'static, anyhow::Result<()>> + Send + Sync,
>;

/// Pods per interleaved batch at concurrency `c`: one when sequential, 2xC otherwise.
pub(crate) fn batch_size(c: usize) -> usize {
    if c <= 1 {
        1
    } else {
        2 * c
    }
}

/// Runs every side's work for `n` pods at concurrency `c`, batch by batch ([`batch_size`]), the
/// sides of a batch back to back and the first of them rotating from batch to batch. Every side
/// then sees the same machine state (pods already running, the kernel's netns cleanup, VM
/// noise), so ratios between them compare like with like. Returns each side's summed batch
/// walls.
pub(crate) async fn interleaved(
    n: usize,
    c: usize,
    label: &str,
    sides: &[Work],
) -> anyhow::Result<Vec<Duration>> {
    let progress = Progress::new(label, sides.len() * n);
    let mut walls = vec![Duration::ZERO; sides.len()];
    for (k, start) in (0..n).step_by(batch_size(c)).enumerate() {
        let range = start..(start + batch_size(c)).min(n);
        for turn in 0..sides.len() {
            let side = (k + turn) % sides.len();
            let work = sides[side].clone();
            let progress = progress.clone();
            walls[side] += in_parallel_range(range.clone(), c, progress, move |i| work(i)).await?;
        }
    }
    Ok(walls)
}

/// Runs `work(i)` for i in `range` with at most `c` in flight, ticking `progress`; returns the
/// wall time.
pub(crate) async fn in_parallel_range<F, Fut>(
    range: std::ops::Range<usize>,
    c: usize,
    progress: Arc<Progress>,
    work: F,
) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let work = Arc::new(work);
    let next = Arc::new(AtomicUsize::new(range.start));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..c.max(1) {
        let (work, next, progress) = (work.clone(), next.clone(), progress.clone());
        let end = range.end;
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= end {
                    return Ok::<(), anyhow::Error>(());
                }
                work(i).await?;
                progress.tick();
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(started.elapsed())
}

/// A progress bar on stderr (when it is a terminal), shared by every batch of one phase.
pub struct Progress {
    label: String,
    done: AtomicUsize,
    total: usize,
}

impl Progress {
    pub fn new(label: &str, total: usize) -> Arc<Progress> {
        Arc::new(Progress {
            label: label.to_string(),
            done: AtomicUsize::new(0),
            total,
        })
    }

    fn tick(&self) {
        let done = self.done.fetch_add(1, Ordering::SeqCst) + 1;
        let mut err = std::io::stderr();
        if !err.is_terminal() || self.total < 10 {
            return;
        }
        let width = 30;
        let filled = done * width / self.total.max(1);
        let _ = write!(
            err,
            "\r{:<10} [{}{}] {done}/{}",
            self.label,
            "=".repeat(filled),
            " ".repeat(width - filled),
            self.total
        );
        if done == self.total {
            let _ = writeln!(err);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let s = Stats::of(&samples);
        assert_eq!(
            (s.min_ms, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms),
            (1.0, 50.0, 95.0, 99.0, 100.0)
        );
        assert_eq!(Stats::of(&[]).n, 0);
        assert_eq!(Stats::of(&[Duration::from_millis(7)]).p99_ms, 7.0);
    }
}
