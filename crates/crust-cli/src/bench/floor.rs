//! The floor: the raw cost of what a CRI runtime delegates for one pod, measured with the same
//! conflist, plugins, runc and pause rootfs as crustd, and none of its bookkeeping (no records, no
//! events, no shm, no gRPC). Setup = netns create (with `lo` up) + CNI ADD + runc create + start;
//! teardown = SIGKILL + wait + runc delete + CNI DEL + netns removal. The pinned floor is the same
//! pods' netns + CNI ADD alone: the setup of a sandbox whose namespaces are pinned without a pause
//! process (#16), where `runc create` + `start` of the pause are gone.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use cni::{Cni, NetworkConfigList, RuntimeConf};
use cri_api::v1::PodSandboxConfig;
use crust::{
    network::netns,
    oci_runtime::monitor::Process,
    sandbox::{
        spec::{pause_spec, PauseSpecInput},
        NetworkMode,
    },
};
use serde::Serialize;
use tokio::sync::Mutex;

use super::{BenchArgs, Stats, Work};

/// What the floor measured.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub conflist: PathBuf,
    pub setup: Stats,
    /// netns + CNI ADD of the same pods: the floor of a sandbox without a pause.
    pub pinned_setup: Stats,
    pub teardown: Stats,
    pub setup_wall_s: f64,
    pub teardown_wall_s: f64,
    /// p50 of each setup step, in order, to compare with crustd's `RunPodSandbox step times`.
    pub setup_steps_p50_ms: Vec<(String, f64)>,
}

/// The setup steps timed separately.
const SETUP_STEPS: [&str; 4] = ["netns", "cni add", "runc create", "runc start"];

struct Env {
    cni: Cni,
    list: NetworkConfigList,
    runc: runc::Runc,
    rootfs: PathBuf,
    work: PathBuf,
    cgroup_parent: String,
    tag: String,
}

/// The floor's prepared environment and what it measured so far, pod by pod (so the bench can
/// interleave floor pods with the runtime's pods).
pub struct Floor {
    env: Env,
    /// Per pod: `None` when it holds nothing, `Some(0)` once its setup began, `Some(pid)` once
    /// its pause runs; back to `None` when torn down (so a failed bench knows what to clean).
    pods: Mutex<Vec<Option<i32>>>,
    setups: Mutex<Vec<[Duration; 4]>>,
    teardowns: Mutex<Vec<Duration>>,
}

impl Floor {
    /// Prepares the floor for `args.pods` pods (conflist, pause rootfs, a private runc root).
    pub fn new(args: &BenchArgs) -> anyhow::Result<Floor> {
        Ok(Floor {
            env: prepare(args)?,
            pods: Mutex::new(vec![None; args.pods]),
            setups: Mutex::default(),
            teardowns: Mutex::default(),
        })
    }

    /// Sets up floor pod `i`; returns how long it took.
    pub async fn setup(&self, i: usize) -> anyhow::Result<Duration> {
        self.pods.lock().await[i] = Some(0);
        let (pid, steps) = setup_one(&self.env, i).await?;
        self.pods.lock().await[i] = Some(pid);
        self.setups.lock().await.push(steps);
        Ok(steps.iter().sum())
    }

    /// Tears down floor pod `i`; returns how long it took.
    pub async fn teardown(&self, i: usize) -> anyhow::Result<Duration> {
        let pid = self.pods.lock().await[i].unwrap_or(0);
        let started = Instant::now();
        teardown_one(&self.env, i, pid).await?;
        let took = started.elapsed();
        self.pods.lock().await[i] = None;
        self.teardowns.lock().await.push(took);
        Ok(took)
    }

    /// After a failed bench: removes what every floor pod still holds (forced runc delete, CNI DEL,
    /// netns), whatever state its setup or teardown stopped in. Best effort; failures are printed.
    pub async fn clean_up(&self) {
        let live: Vec<usize> = (self.pods.lock().await.iter().enumerate())
            .filter_map(|(i, pod)| pod.map(|_| i))
            .collect();
        for i in live {
            if let Err(e) = clean_up_one(&self.env, i).await {
                eprintln!("floor pod {i}: cleanup: {e:#}");
            }
        }
        eprintln!("cleaned up the floor's pods in {}", self.env.work.display());
    }

    /// The report, with the given wall times; removes the floor's work directory.
    pub async fn report(&self, setup_wall: Duration, teardown_wall: Duration) -> FloorReport {
        let _ = std::fs::remove_dir_all(&self.env.work);
        let steps = self.setups.lock().await;
        let totals: Vec<Duration> = steps.iter().map(|s| s.iter().sum()).collect();
        let pinned: Vec<Duration> = steps.iter().map(|s| s[0] + s[1]).collect();
        let setup_steps_p50_ms = SETUP_STEPS
            .iter()
            .enumerate()
            .map(|(k, name)| {
                let one: Vec<Duration> = steps.iter().map(|s| s[k]).collect();
                (name.to_string(), Stats::of(&one).p50_ms)
            })
            .collect();
        FloorReport {
            conflist: self.env.list.source.clone(),
            setup: Stats::of(&totals),
            pinned_setup: Stats::of(&pinned),
            teardown: Stats::of(&self.teardowns.lock().await),
            setup_wall_s: setup_wall.as_secs_f64(),
            teardown_wall_s: teardown_wall.as_secs_f64(),
            setup_steps_p50_ms,
        }
    }
}

impl Drop for Floor {
    /// A bench that failed midway still removes the floor's directory when nothing of its pods is
    /// left in it (a floor pod still set up keeps its files, for the operator to see).
    fn drop(&mut self) {
        for sub in ["bundles", "netns", "runc", ""] {
            let _ = std::fs::remove_dir(self.env.work.join(sub));
        }
    }
}

/// The floor as one side of an interleaved run (see [`super::interleaved`]): its per-pod work
/// and its summed batch walls.
pub struct Paired {
    floor: Floor,
    /// The floor's summed batch walls: [setup, teardown].
    floor_walls: std::sync::Mutex<[Duration; 2]>,
}

/// Which half of the bench a batch belongs to.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    Setup = 0,
    Teardown = 1,
}

impl Paired {
    pub fn new(floor: Floor) -> Paired {
        Paired {
            floor,
            floor_walls: Default::default(),
        }
    }

    /// The floor's per-pod work of `phase`.
    pub fn work(self: &Arc<Self>, phase: Phase) -> Work {
        let me = self.clone();
        Arc::new(move |i| {
            let me = me.clone();
            Box::pin(async move {
                match phase {
                    Phase::Setup => me.floor.setup(i).await.map(drop),
                    Phase::Teardown => me.floor.teardown(i).await.map(drop),
                }
            })
        })
    }

    /// Records the floor's summed batch wall of `phase`.
    pub fn set_wall(&self, phase: Phase, wall: Duration) {
        if let Ok(mut w) = self.floor_walls.lock() {
            w[phase as usize] = wall;
        }
    }

    /// See [`Floor::clean_up`].
    pub async fn clean_up(&self) {
        self.floor.clean_up().await;
    }

    /// The floor's report, with its summed batch walls.
    pub async fn report(&self) -> FloorReport {
        let [setup, teardown] = self.floor_walls.lock().map(|t| *t).unwrap_or_default();
        self.floor.report(setup, teardown).await
    }
}

fn prepare(args: &BenchArgs) -> anyhow::Result<Env> {
    let bin_dirs: Vec<PathBuf> = std::env::split_paths(&args.cni_bin_dirs).collect();
    let list = find_conflist(args)?;
    let rootfs = args.crust_root.join("images/builtin-pause/rootfs");
    if !rootfs.join("pause").is_file() {
        bail!(
            "{} has no pause: start crustd once (or pass --crust-root)",
            rootfs.display()
        );
    }
    let tag = format!("{:x}", crust::events::now_ns() & 0xffff_ffff);
    let work = PathBuf::from(format!("/run/crust-bench-floor-{tag}"));
    std::fs::create_dir_all(&work)?;
    let runc_bin = crust::daemon::resolve_binary(&args.runc);
    Ok(Env {
        cni: Cni::new(bin_dirs, Duration::from_secs(30)),
        list,
        runc: runc::Runc::new(runc_bin, work.join("runc")),
        rootfs,
        cgroup_parent: args.cgroup_parent.clone(),
        work,
        tag,
    })
}

fn find_conflist(args: &BenchArgs) -> anyhow::Result<NetworkConfigList> {
    if let Some(path) = &args.conflist {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
        return Ok(NetworkConfigList::parse(&text, path)?);
    }
    for dir in [
        PathBuf::from("/etc/cni/net.d"),
        args.crust_state.join("cni/net.d"),
    ] {
        if let Some(first) = cni::load_dir(&dir).0.into_iter().next() {
            return Ok(first);
        }
    }
    bail!("no CNI config found: pass --conflist")
}

fn runtime_conf(env: &Env, i: usize, netns: &Path) -> RuntimeConf {
    RuntimeConf {
        container_id: container_id(env, i),
        netns: netns.display().to_string(),
        if_name: "eth0".into(),
        args: vec![
            ("IgnoreUnknown".into(), "1".into()),
            ("K8S_POD_NAMESPACE".into(), "crust-bench".into()),
            ("K8S_POD_NAME".into(), format!("floor-{i}")),
            ("K8S_POD_INFRA_CONTAINER_ID".into(), container_id(env, i)),
        ],
        capability_args: Default::default(),
    }
}

fn container_id(env: &Env, i: usize) -> String {
    format!("crust-floor-{}-{i}", env.tag)
}

/// One pod's setup; returns the pause pid and the time of each of [`SETUP_STEPS`].
async fn setup_one(env: &Env, i: usize) -> anyhow::Result<(i32, [Duration; 4])> {
    let id = container_id(env, i);
    let netns_path = env.work.join("netns").join(&id);
    let mut lap = Lap(Instant::now());
    netns::create(netns_path.clone(), Vec::new()).await?;
    let netns_time = lap.next();
    env.cni
        .add(&env.list, &runtime_conf(env, i, &netns_path))
        .await?;
    let add_time = lap.next();
    let bundle = env.work.join("bundles").join(&id);
    std::fs::create_dir_all(&bundle)?;
    let cgroups_path = format!("{}/{id}", env.cgroup_parent);
    let args = ["/pause".to_string()];
    let input = PauseSpecInput {
        rootfs: &env.rootfs,
        args: &args,
        network: NetworkMode::Cni,
        netns: Some(&netns_path),
        shm: None,
        cgroups_path: &cgroups_path,
        oom_score_adj: crust::daemon::sandbox_oom_score_adj(),
        sandbox_id: &id,
        runtime: &crust::config::RuntimeConfig::runc(),
    };
    let spec = pause_spec(
        &PodSandboxConfig {
            hostname: format!("floor-{i}"),
            ..Default::default()
        },
        &input,
    );
    std::fs::write(bundle.join("config.json"), spec.to_string())?;
    let pid = env
        .runc
        .create(&id, &bundle, &bundle.join("runc.log"))
        .await?;
    let create_time = lap.next();
    env.runc.start(&id).await?;
    Ok((pid, [netns_time, add_time, create_time, lap.next()]))
}

/// Time since the previous lap.
struct Lap(Instant);

impl Lap {
    fn next(&mut self) -> Duration {
        let now = Instant::now();
        let d = now - self.0;
        self.0 = now;
        d
    }
}

/// Forced teardown of floor pod `i` in whatever state its setup or teardown stopped in, bundle
/// included.
async fn clean_up_one(env: &Env, i: usize) -> anyhow::Result<()> {
    let released = release(env, i, true).await;
    let bundle = env.work.join("bundles").join(container_id(env, i));
    match std::fs::remove_dir_all(&bundle) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => released,
    }
}

async fn teardown_one(env: &Env, i: usize, pid: i32) -> anyhow::Result<()> {
    if let Some(process) = Process::open(pid, None)? {
        process.signal(libc::SIGKILL)?;
        process.exited().await?;
    }
    release(env, i, false).await
}

/// runc delete (`force`: kill it too, and a container runc does not know is fine), CNI DEL and
/// netns removal of floor pod `i`; every step is tried, the first error returned.
async fn release(env: &Env, i: usize, force: bool) -> anyhow::Result<()> {
    let id = container_id(env, i);
    let deleted = match env.runc.delete(&id, force).await {
        Err(e) if force && e.is_not_found() => Ok(()),
        other => other,
    };
    let netns_path = env.work.join("netns").join(&id);
    let del = env
        .cni
        .del(&env.list, &runtime_conf(env, i, &netns_path), None)
        .await;
    let removed = netns::remove(&netns_path);
    deleted?;
    del?;
    Ok(removed?)
}
