//! `crust bench --density N`: memory of the runtime with N pods. The runtime's pid comes from the
//! socket itself (SO_PEERCRED), so this works for any CRI runtime; per-pod processes and their memory
//! come from the pod cgroups under the bench's cgroup parent.

use std::{
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use cri_api::v1::{runtime_service_client::RuntimeServiceClient, RunPodSandboxRequest};
use serde::Serialize;
use tonic::transport::Channel;

use super::{pod_config, BenchArgs};

/// Memory figures, in KiB.
#[derive(Debug, Clone, Serialize)]
pub struct DensityReport {
    pub pods: usize,
    /// The runtime handler the pods ran on ("" = the runtime's default).
    pub runtime_handler: String,
    pub server_pid: i32,
    pub server_rss_kib_idle: u64,
    pub server_pss_kib_idle: u64,
    pub server_rss_kib_loaded: u64,
    pub server_pss_kib_loaded: u64,
    /// Mean over pods of the summed RSS/PSS of the processes in the pod's cgroup.
    pub per_pod_rss_kib: f64,
    pub per_pod_pss_kib: f64,
    pub max_processes_per_pod: usize,
    /// Per-pod monitors outside the pod cgroups (containerd shims, conmon): processes other than
    /// the runtime whose command line names a pod id. Their count and mean RSS/PSS per pod.
    pub monitor_processes: usize,
    pub per_pod_monitor_rss_kib: f64,
    pub per_pod_monitor_pss_kib: f64,
    pub setup_wall_s: f64,
    /// With --restart-cmd: from the command's start until the runtime answered Version, and until
    /// it listed every pod READY again.
    pub restart_to_serving_ms: Option<f64>,
    pub restart_to_all_ready_ms: Option<f64>,
}

/// The pid of the process serving the unix socket at `path`.
pub fn server_pid(path: &Path) -> anyhow::Result<i32> {
    let stream = std::os::unix::net::UnixStream::connect(path)
        .with_context(|| format!("connect {}", path.display()))?;
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cred`, a plain struct of that size.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            &mut cred as *mut libc::ucred as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("SO_PEERCRED");
    }
    Ok(cred.pid)
}

/// (Rss, Pss) in KiB from /proc/PID/smaps_rollup; zeros when the process is gone.
/// CPU time (user + system) `pid` has used so far, its own threads only (not its children).
pub fn cpu_time(pid: i32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(Duration::from_micros(ticks * 1_000_000 / hz))
}

pub fn memory_kib(pid: i32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}

/// The pod cgroups under `parent` (cgroup v1 pids controller, else the v2 unified tree).
fn pod_cgroups(parent: &str) -> Vec<PathBuf> {
    let rel = parent.trim_start_matches('/');
    let v1 = Path::new("/sys/fs/cgroup/pids").join(rel);
    let base = if v1.is_dir() {
        v1
    } else {
        Path::new("/sys/fs/cgroup").join(rel)
    };
    std::fs::read_dir(base)
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn pids_of(cgroup: &Path) -> Vec<i32> {
    std::fs::read_to_string(cgroup.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Starts `args.pods` pods, measures, and removes them again.
pub async fn run(
    client: RuntimeServiceClient<Channel>,
    socket: &Path,
    args: &BenchArgs,
) -> anyhow::Result<DensityReport> {
    let pid = server_pid(socket)?;
    let (rss_idle, pss_idle) = memory_kib(pid);
    let started = Instant::now();
    let started_ids = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let outcome = start_pods(&client, args, started_ids.clone()).await;
    let ids = std::mem::take(&mut *started_ids.lock().await);
    if let Err(e) = outcome {
        let _ = remove_pods(&client, &ids).await;
        return Err(e);
    }
    let setup_wall = started.elapsed();
    let (rss_loaded, pss_loaded) = memory_kib(pid);
    let (per_pod_rss, per_pod_pss, max_procs) = pod_memory(&args.cgroup_parent);
    let monitors = monitors(&ids, pid, &args.cgroup_parent);
    let (monitor_rss, monitor_pss) = monitors
        .iter()
        .map(|p| memory_kib(*p))
        .fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1));
    let pods = ids.len().max(1) as f64;
    let per_pod = |kib: u64| kib as f64 / pods;
    let restart = match &args.restart_cmd {
        Some(cmd) => Some(restart_time(socket, cmd, &ids).await),
        None => None,
    }
    .transpose();
    let removed = remove_pods(&client, &ids).await;
    let restart = restart?;
    removed?;
    Ok(DensityReport {
        pods: args.pods,
        runtime_handler: args.runtime.clone(),
        server_pid: pid,
        server_rss_kib_idle: rss_idle,
        server_pss_kib_idle: pss_idle,
        server_rss_kib_loaded: rss_loaded,
        server_pss_kib_loaded: pss_loaded,
        per_pod_rss_kib: per_pod_rss,
        per_pod_pss_kib: per_pod_pss,
        max_processes_per_pod: max_procs,
        monitor_processes: monitors.len(),
        per_pod_monitor_rss_kib: per_pod(monitor_rss),
        per_pod_monitor_pss_kib: per_pod(monitor_pss),
        setup_wall_s: setup_wall.as_secs_f64(),
        restart_to_serving_ms: restart.map(|r| r.0),
        restart_to_all_ready_ms: restart.map(|r| r.1),
    })
}

/// Runs `cmd`, then polls the socket until Version answers and every pod in `ids` is READY.
async fn restart_time(socket: &Path, cmd: &str, ids: &[String]) -> anyhow::Result<(f64, f64)> {
    let started = Instant::now();
    let status = tokio::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .await
        .with_context(|| format!("run {cmd:?}"))?;
    anyhow::ensure!(status.success(), "{cmd:?} failed: {status}");
    let deadline = started + std::time::Duration::from_secs(60);
    let mut serving = None;
    while Instant::now() < deadline {
        let Ok(channel) = crate::connect(socket.to_path_buf(), 2).await else {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        };
        let mut c = RuntimeServiceClient::new(channel);
        if c.version(cri_api::v1::VersionRequest::default())
            .await
            .is_err()
        {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            continue;
        }
        let serving_ms = *serving.get_or_insert(started.elapsed().as_secs_f64() * 1e3);
        let pods = c
            .list_pod_sandbox(cri_api::v1::ListPodSandboxRequest::default())
            .await?
            .into_inner()
            .items;
        let ready = pods
            .iter()
            .filter(|p| {
                ids.contains(&p.id) && p.state == cri_api::v1::PodSandboxState::SandboxReady as i32
            })
            .count();
        if ready == ids.len() {
            return Ok((serving_ms, started.elapsed().as_secs_f64() * 1e3));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    anyhow::bail!("the runtime did not come back with every pod READY within 60 s")
}

/// Starts the pods, pushing each id to `ids` as soon as it exists (so a failure can remove them).
async fn start_pods(
    client: &RuntimeServiceClient<Channel>,
    args: &BenchArgs,
    ids: Arc<tokio::sync::Mutex<Vec<String>>>,
) -> anyhow::Result<()> {
    let tag = format!("{:x}", crust::events::now_ns());
    let (client, shared, args2) = (client.clone(), ids, args.clone());
    super::in_parallel(args.pods, args.concurrency, "density", move |i| {
        let (mut c, ids, config) = (client.clone(), shared.clone(), pod_config(&args2, i, &tag));
        let handler = args2.runtime.clone();
        async move {
            let req = RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: handler,
            };
            let id = c
                .run_pod_sandbox(req)
                .await
                .context("RunPodSandbox")?
                .into_inner()
                .pod_sandbox_id;
            ids.lock().await.push(id);
            Ok(())
        }
    })
    .await
    .map(drop)
}

/// RemovePodSandbox for every pod in `ids` (all are tried; the first error is returned).
async fn remove_pods(client: &RuntimeServiceClient<Channel>, ids: &[String]) -> anyhow::Result<()> {
    let mut first_error = None;
    for id in ids {
        let req = cri_api::v1::RemovePodSandboxRequest {
            pod_sandbox_id: id.clone(),
        };
        if let Err(e) = client.clone().remove_pod_sandbox(req).await {
            first_error
                .get_or_insert(anyhow::Error::new(e).context(format!("RemovePodSandbox {id}")));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Processes outside the pod cgroups under `parent`, other than the runtime (`runtime`), whose
/// command line names one of the pod ids: the per-pod monitors some runtimes keep (a containerd
/// shim has `-id <pod id>`, conmon `-c <id>`).
fn monitors(ids: &[String], runtime: i32, parent: &str) -> Vec<i32> {
    let in_pods: std::collections::HashSet<i32> = pod_cgroups(parent)
        .iter()
        .flat_map(|cg| pids_of(cg))
        .collect();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| *pid != runtime && !in_pods.contains(pid))
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            ids.iter().any(|id| cmdline.contains(id.as_str()))
        })
        .collect()
}

/// Mean RSS and PSS (KiB) of the pods under `parent`, and the most processes any pod has.
fn pod_memory(parent: &str) -> (f64, f64, usize) {
    let per_pod: Vec<(u64, u64, usize)> = pod_cgroups(parent)
        .iter()
        .map(|cg| {
            let pids = pids_of(cg);
            let (rss, pss) = pids
                .iter()
                .map(|p| memory_kib(*p))
                .fold((0, 0), |a, m| (a.0 + m.0, a.1 + m.1));
            (rss, pss, pids.len())
        })
        .collect();
    let n = per_pod.len().max(1) as f64;
    let rss = per_pod.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let pss = per_pod.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    (rss, pss, per_pod.iter().map(|p| p.2).max().unwrap_or(0))
}

/// Prints the density report.
pub fn print(r: &DensityReport) {
    let handler = match r.runtime_handler.as_str() {
        "" => "the default handler",
        h => h,
    };
    println!(
        "crust bench --density {} on {handler}: runtime pid {}",
        r.pods, r.server_pid
    );
    println!(
        "runtime RSS {:.1} MiB idle, {:.1} MiB with {} pods (PSS {:.1} / {:.1} MiB)",
        r.server_rss_kib_idle as f64 / 1024.0,
        r.server_rss_kib_loaded as f64 / 1024.0,
        r.pods,
        r.server_pss_kib_idle as f64 / 1024.0,
        r.server_pss_kib_loaded as f64 / 1024.0
    );
    println!(
        "per pod: {:.0} KiB RSS, {:.0} KiB PSS, at most {} process(es)",
        r.per_pod_rss_kib, r.per_pod_pss_kib, r.max_processes_per_pod
    );
    println!(
        "per-pod monitors outside the pod cgroups (shims): {} process(es) for {} pods, {:.0} KiB RSS / {:.0} KiB PSS per pod",
        r.monitor_processes, r.pods, r.per_pod_monitor_rss_kib, r.per_pod_monitor_pss_kib
    );
    println!("setup of {} pods took {:.2} s", r.pods, r.setup_wall_s);
    if let (Some(serving), Some(ready)) = (r.restart_to_serving_ms, r.restart_to_all_ready_ms) {
        println!(
            "restart: serving after {serving:.0} ms, all {} pods READY after {ready:.0} ms",
            r.pods
        );
    }
}
