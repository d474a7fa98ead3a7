//! `crust bench` (the default run): N pods at concurrency C through the CRI endpoint, min/p50/p95/p99
//! per RPC and throughput; with `--floor`, the raw cost of the work a runtime delegates (see
//! `floor.rs`), and with `--versus SOCKET` a second runtime (containerd), each measured
//! interleaved with the runtime's pods batch by batch, and the ratios.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use cri_api::v1::{
    runtime_service_client::RuntimeServiceClient, ContainerConfig, ContainerMetadata,
    CreateContainerRequest, ImageSpec, PodSandboxConfig, PodSandboxStatusRequest,
    RemoveContainerRequest, RemovePodSandboxRequest, RunPodSandboxRequest, StartContainerRequest,
    StopContainerRequest, StopPodSandboxRequest,
};
use serde::Serialize;
use tonic::transport::Channel;

use super::{floor, in_parallel, interleaved, pod_config, BenchArgs, Stats, Work};

type Shared<T> = Arc<tokio::sync::Mutex<T>>;

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    pub endpoint: String,
    pub pods: usize,
    pub concurrency: usize,
    pub mode: &'static str,
    pub rpcs: BTreeMap<String, Stats>,
    pub setup_wall_s: f64,
    pub teardown_wall_s: f64,
    pub pods_per_s: f64,
    pub floor: Option<floor::FloorReport>,
    /// CPU the runtime process itself (not runc or plugins) used per pod, setup and teardown, in
    /// ms; absent when its pid is not visible through the socket.
    pub runtime_cpu_ms_per_pod: Option<f64>,
    /// Pods per batch when the floor ran interleaved with the runtime (see floor::Paired); the
    /// walls are then summed batch walls.
    pub floor_batch: Option<usize>,
    /// The `--versus` endpoint's figures from the same interleaved run.
    pub versus: Option<VersusReport>,
    pub ratios: BTreeMap<String, f64>,
}

/// The second runtime's side of an interleaved run.
#[derive(Debug, Serialize)]
pub struct VersusReport {
    pub endpoint: String,
    pub rpcs: BTreeMap<String, Stats>,
    pub setup_wall_s: f64,
    pub teardown_wall_s: f64,
    pub runtime_cpu_ms_per_pod: Option<f64>,
}

#[derive(Default)]
struct Samples {
    by_rpc: BTreeMap<&'static str, Vec<Duration>>,
}

impl Samples {
    /// Percentiles per RPC.
    fn stats(&self) -> BTreeMap<String, Stats> {
        self.by_rpc
            .iter()
            .map(|(k, v)| (k.to_string(), Stats::of(v)))
            .collect()
    }
}

async fn timed<T, F: std::future::Future<Output = Result<T, tonic::Status>>>(
    samples: &tokio::sync::Mutex<Samples>,
    rpc: &'static str,
    fut: F,
) -> anyhow::Result<T> {
    let started = Instant::now();
    let out = fut.await.with_context(|| format!("{rpc} failed"))?;
    samples
        .lock()
        .await
        .by_rpc
        .entry(rpc)
        .or_default()
        .push(started.elapsed());
    Ok(out)
}

/// What the phases of one runtime's bench share: the client, the options, the samples, the (pod
/// id, container id or "") of every pod as soon as each exists, and what runs interleaved with
/// it (the floor, a second runtime).
#[derive(Clone)]
struct Bench {
    client: RuntimeServiceClient<Channel>,
    args: Arc<BenchArgs>,
    /// Makes this run's pod uids unique.
    tag: Arc<String>,
    samples: Shared<Samples>,
    ids: Shared<Vec<(String, String)>>,
    /// Summed batch walls [setup, teardown] when this bench is the second side of a run.
    walls: Arc<std::sync::Mutex<[Duration; 2]>>,
    paired: Option<Arc<floor::Paired>>,
    versus: Option<Arc<Bench>>,
}

impl Bench {
    fn new(client: RuntimeServiceClient<Channel>, args: Arc<BenchArgs>) -> Bench {
        Bench {
            client,
            ids: Arc::new(tokio::sync::Mutex::new(vec![Default::default(); args.pods])),
            args,
            tag: Arc::new(format!("{:x}", crust::events::now_ns())),
            samples: Arc::default(),
            walls: Arc::default(),
            paired: None,
            versus: None,
        }
    }
}

/// A runtime's CPU time (through its socket's peer), measured around a run.
struct CpuMeter(Option<(i32, Duration)>);

impl CpuMeter {
    fn start(endpoint: &str) -> CpuMeter {
        let pid = super::density::server_pid(std::path::Path::new(endpoint)).ok();
        CpuMeter(pid.and_then(|p| super::density::cpu_time(p).map(|t| (p, t))))
    }

    /// CPU ms per pod since `start`.
    fn per_pod(&self, pods: usize) -> Option<f64> {
        let (pid, before) = self.0?;
        let after = super::density::cpu_time(pid)?;
        Some((after - before).as_secs_f64() * 1e3 / pods.max(1) as f64)
    }
}

/// The bench against the endpoint behind `client` (and `versus`, a second endpoint, interleaved).
pub async fn run(
    client: RuntimeServiceClient<Channel>,
    endpoint: String,
    versus: Option<(RuntimeServiceClient<Channel>, String)>,
    args: BenchArgs,
) -> anyhow::Result<Report> {
    // The floor runs interleaved with the runtime, batch by batch (see super::interleaved).
    let paired = if args.floor && !args.host_network {
        Some(Arc::new(floor::Paired::new(floor::Floor::new(&args)?)))
    } else {
        None
    };
    let args = Arc::new(args);
    let mut bench = Bench::new(client, args.clone());
    bench.paired = paired.clone();
    if let Some((client, _)) = &versus {
        let mut other = (*args).clone();
        other.runtime = args.versus_runtime.clone();
        bench.versus = Some(Arc::new(Bench::new(client.clone(), Arc::new(other))));
    }
    let cpu = CpuMeter::start(&endpoint);
    let versus_cpu = versus.as_ref().map(|(_, e)| CpuMeter::start(e));
    let (setup, teardown) = bench.phases().await?;
    let runtime_cpu_ms_per_pod = cpu.per_pod(args.pods);
    let rpcs = bench.samples.lock().await.stats();
    let floor = match &paired {
        Some(p) => Some(p.report().await),
        None => None,
    };
    let versus = match (&bench.versus, versus) {
        (Some(other), Some((_, endpoint))) => {
            let [setup, teardown] = other.walls.lock().map(|w| *w).unwrap_or_default();
            Some(VersusReport {
                endpoint,
                rpcs: other.samples.lock().await.stats(),
                setup_wall_s: setup.as_secs_f64(),
                teardown_wall_s: teardown.as_secs_f64(),
                runtime_cpu_ms_per_pod: versus_cpu.and_then(|m| m.per_pod(args.pods)),
            })
        }
        _ => None,
    };
    let mut ratios = ratios(&rpcs, floor.as_ref(), setup);
    if let Some(v) = &versus {
        ratios.extend(versus_ratios(&rpcs, setup, v));
    }
    Ok(Report {
        endpoint,
        pods: args.pods,
        concurrency: args.concurrency,
        mode: mode(&args),
        rpcs,
        setup_wall_s: setup.as_secs_f64(),
        teardown_wall_s: teardown.as_secs_f64(),
        pods_per_s: args.pods as f64 / setup.as_secs_f64().max(1e-9),
        floor,
        floor_batch: (paired.is_some() || versus.is_some())
            .then(|| super::batch_size(args.concurrency)),
        runtime_cpu_ms_per_pod,
        versus,
        ratios,
    })
}

impl Bench {
    /// Setup then teardown of every pod; returns their walls. On failure, what was made is removed.
    async fn phases(&self) -> anyhow::Result<(Duration, Duration)> {
        let phases = async {
            let setup = self.run_phase(floor::Phase::Setup, "run").await?;
            let teardown = self.run_phase(floor::Phase::Teardown, "stop+rm").await?;
            anyhow::Ok((setup, teardown))
        };
        let walls = phases.await;
        if walls.is_err() {
            self.clean_up().await;
            if let Some(other) = &self.versus {
                other.clean_up().await;
            }
        }
        walls
    }

    /// This runtime's per-pod work of `phase`: RunPodSandbox + PodSandboxStatus (+ the
    /// container), or Stop + Remove of the pod's container (if any) and of the pod.
    fn work(&self, phase: floor::Phase) -> Work {
        let bench = self.clone();
        Arc::new(move |i| {
            let bench = bench.clone();
            Box::pin(async move {
                match phase {
                    floor::Phase::Setup => {
                        let config = pod_config(&bench.args, i, &bench.tag);
                        bench.setup_pod(i, config).await
                    }
                    floor::Phase::Teardown => {
                        let (pod, container) = bench.ids.lock().await[i].clone();
                        bench.teardown_pod(pod, container).await
                    }
                }
            })
        })
    }

    /// Runs a phase for every pod, on its own or batch by batch with the second runtime and the
    /// floor; returns this runtime's (summed batch) wall.
    async fn run_phase(&self, phase: floor::Phase, label: &str) -> anyhow::Result<Duration> {
        let (n, c) = (self.args.pods, self.args.concurrency);
        let mut sides = vec![self.work(phase)];
        sides.extend(self.versus.iter().map(|v| v.work(phase)));
        sides.extend(self.paired.iter().map(|p| p.work(phase)));
        if sides.len() == 1 {
            let work = sides.remove(0);
            return in_parallel(n, c, label, move |i| work(i)).await;
        }
        let walls = interleaved(n, c, &format!("{label} x{}", sides.len()), &sides).await?;
        if let Some(other) = &self.versus {
            if let Ok(mut w) = other.walls.lock() {
                w[phase as usize] = walls[1];
            }
        }
        if let (Some(p), Some(wall)) = (&self.paired, walls.last()) {
            p.set_wall(phase, *wall);
        }
        Ok(walls[0])
    }

    /// Pod `i` (and its container, if any), noted in `ids[i]` as soon as each exists.
    async fn setup_pod(&self, i: usize, config: PodSandboxConfig) -> anyhow::Result<()> {
        let (mut c, samples) = (self.client.clone(), &self.samples);
        let req = RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: self.args.runtime.clone(),
        };
        let started = Instant::now();
        let id = timed(samples, "RunPodSandbox", c.run_pod_sandbox(req))
            .await?
            .into_inner()
            .pod_sandbox_id;
        let run = started.elapsed();
        self.ids.lock().await[i].0 = id.clone();
        let status = PodSandboxStatusRequest {
            pod_sandbox_id: id.clone(),
            verbose: false,
        };
        timed(samples, "PodSandboxStatus", c.pod_sandbox_status(status)).await?;
        if let Some(image) = &self.args.container_image {
            let started = Instant::now();
            let container =
                create_container(&mut c, samples, &self.args, &id, image, config).await?;
            self.ids.lock().await[i].1 = container.clone();
            let start = StartContainerRequest {
                container_id: container,
            };
            timed(samples, "StartContainer", c.start_container(start)).await?;
            // RunPodSandbox + CreateContainer + StartContainer (the status call left out).
            let ready = run + started.elapsed();
            let mut samples = samples.lock().await;
            samples
                .by_rpc
                .entry("Pod+container ready")
                .or_default()
                .push(ready);
        }
        Ok(())
    }

    /// Stop + Remove of one pod's container (if any), then of the pod.
    async fn teardown_pod(&self, pod: String, container: String) -> anyhow::Result<()> {
        let (mut c, samples) = (self.client.clone(), &self.samples);
        if !container.is_empty() {
            let stop = StopContainerRequest {
                container_id: container.clone(),
                timeout: 0,
            };
            timed(samples, "StopContainer", c.stop_container(stop)).await?;
            let remove = RemoveContainerRequest {
                container_id: container,
            };
            timed(samples, "RemoveContainer", c.remove_container(remove)).await?;
        }
        let started = Instant::now();
        let stop = StopPodSandboxRequest {
            pod_sandbox_id: pod.clone(),
        };
        timed(samples, "StopPodSandbox", c.stop_pod_sandbox(stop)).await?;
        let remove = RemovePodSandboxRequest {
            pod_sandbox_id: pod,
        };
        timed(samples, "RemovePodSandbox", c.remove_pod_sandbox(remove)).await?;
        let took = started.elapsed();
        samples
            .lock()
            .await
            .by_rpc
            .entry("Stop+Remove")
            .or_default()
            .push(took);
        Ok(())
    }

    /// After a failed bench: Stop + Remove of every pod (and container) it created, and the
    /// floor's leftovers. Best effort: a pod already removed is fine (both verbs are idempotent).
    async fn clean_up(&self) {
        let ids = self.ids.lock().await.clone();
        for (pod, container) in ids.into_iter().filter(|(pod, _)| !pod.is_empty()) {
            if let Err(e) = self.teardown_pod(pod.clone(), container).await {
                eprintln!("pod {pod}: cleanup: {e:#}");
            }
        }
        if let Some(p) = &self.paired {
            p.clean_up().await;
        }
    }
}

/// CreateContainer of the pod's one container; returns its id.
async fn create_container(
    c: &mut RuntimeServiceClient<Channel>,
    samples: &Shared<Samples>,
    args: &BenchArgs,
    pod: &str,
    image: &str,
    sandbox_config: PodSandboxConfig,
) -> anyhow::Result<String> {
    let config = ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "bench".into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: image.to_string(),
            ..Default::default()
        }),
        command: args.container_cmd.clone(),
        ..Default::default()
    };
    let req = CreateContainerRequest {
        pod_sandbox_id: pod.to_string(),
        config: Some(config),
        sandbox_config: Some(sandbox_config),
    };
    Ok(timed(samples, "CreateContainer", c.create_container(req))
        .await?
        .into_inner()
        .container_id)
}

fn mode(args: &BenchArgs) -> &'static str {
    match (args.host_network, args.network_first) {
        (true, _) => "host-network",
        (false, true) => "cni, network first",
        (false, false) => "cni, start first",
    }
}

fn ratios(
    rpcs: &BTreeMap<String, Stats>,
    floor: Option<&floor::FloorReport>,
    setup: Duration,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Some(floor) = floor else {
        return out;
    };
    if let Some(run) = rpcs.get("RunPodSandbox") {
        out.insert(
            "RunPodSandbox p50 / floor setup p50".into(),
            run.p50_ms / floor.setup.p50_ms.max(1e-9),
        );
        out.insert(
            "RunPodSandbox p50 / pinned floor (netns + CNI ADD) p50".into(),
            run.p50_ms / floor.pinned_setup.p50_ms.max(1e-9),
        );
    }
    if let Some(td) = rpcs.get("Stop+Remove") {
        out.insert(
            "Stop+Remove p50 / floor teardown p50".into(),
            td.p50_ms / floor.teardown.p50_ms.max(1e-9),
        );
    }
    out.insert(
        "setup wall / floor setup wall".into(),
        setup.as_secs_f64() / floor.setup_wall_s.max(1e-9),
    );
    out
}

/// The ratios of this runtime's figures to the `--versus` runtime's, from one interleaved run.
fn versus_ratios(
    rpcs: &BTreeMap<String, Stats>,
    setup: Duration,
    v: &VersusReport,
) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for rpc in ["RunPodSandbox", "Stop+Remove", "Pod+container ready"] {
        if let (Some(a), Some(b)) = (rpcs.get(rpc), v.rpcs.get(rpc)) {
            out.insert(
                format!("{rpc} p50 / versus {rpc} p50"),
                a.p50_ms / b.p50_ms.max(1e-9),
            );
        }
    }
    out.insert(
        "setup wall / versus setup wall".into(),
        setup.as_secs_f64() / v.setup_wall_s.max(1e-9),
    );
    out
}

/// Prints the report as a table.
pub fn print(report: &Report) {
    println!(
        "crust bench: {} pods, concurrency {}, {} against {}",
        report.pods, report.concurrency, report.mode, report.endpoint
    );
    if let Some(batch) = report.floor_batch {
        println!(
            "interleaved in batches of {batch} pod(s) with the {}, rotating which goes first; \
             walls are summed batch walls",
            match (&report.versus, &report.floor) {
                (Some(_), Some(_)) => "versus runtime and the floor",
                (Some(_), None) => "versus runtime",
                _ => "floor",
            }
        );
    }
    println!(
        "{:<22} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation (ms)", "n", "min", "p50", "p95", "p99", "max"
    );
    let row = |name: &str, s: &Stats| {
        println!(
            "{name:<22} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            s.n, s.min_ms, s.p50_ms, s.p95_ms, s.p99_ms, s.max_ms
        )
    };
    for (name, s) in &report.rpcs {
        row(name, s);
    }
    if let Some(v) = &report.versus {
        for (name, s) in &v.rpcs {
            row(&format!("versus: {name}"), s);
        }
    }
    if let Some(f) = &report.floor {
        row("floor: setup", &f.setup);
        row("floor: pinned setup", &f.pinned_setup);
        row("floor: teardown", &f.teardown);
    }
    println!(
        "setup wall {:.2} s ({:.1} pods/s), teardown wall {:.2} s",
        report.setup_wall_s, report.pods_per_s, report.teardown_wall_s
    );
    if let Some(f) = &report.floor {
        println!(
            "floor setup wall {:.2} s, teardown wall {:.2} s",
            f.setup_wall_s, f.teardown_wall_s
        );
        let steps: Vec<String> = f
            .setup_steps_p50_ms
            .iter()
            .map(|(name, ms)| format!("{name} {ms:.1}"))
            .collect();
        println!("floor setup steps p50 (ms): {}", steps.join(", "));
    }
    if let Some(cpu) = report.runtime_cpu_ms_per_pod {
        println!("runtime process CPU per pod, setup + teardown: {cpu:.1} ms");
    }
    if let Some(v) = &report.versus {
        println!(
            "versus {}: setup wall {:.2} s, teardown wall {:.2} s, runtime CPU per pod {}",
            v.endpoint,
            v.setup_wall_s,
            v.teardown_wall_s,
            v.runtime_cpu_ms_per_pod
                .map_or("unknown".to_string(), |c| format!("{c:.1} ms"))
        );
    }
    for (name, ratio) in &report.ratios {
        println!("ratio {name}: {ratio:.2}x");
    }
}
