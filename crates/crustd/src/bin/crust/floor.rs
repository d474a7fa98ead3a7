//! The floor: the raw cost of what a CRI runtime delegates for one pod, measured with the same
//! conflist, plugins, runc and pause rootfs as crustd, and none of its bookkeeping (no records, no
//! events, no shm, no gRPC). Setup = netns create (with `lo` up) + CNI ADD + runc create + start;
//! teardown = SIGKILL + wait + runc delete + CNI DEL + netns removal.

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

use crate::bench::{BenchArgs, Stats};

/// What the floor measured.
#[derive(Debug, Clone, Serialize)]
pub struct FloorReport {
    pub conflist: PathBuf,
    pub setup: Stats,
    pub teardown: Stats,
    pub setup_wall_s: f64,
    pub teardown_wall_s: f64,
}

struct Env {
    cni: Cni,
    list: NetworkConfigList,
    runc: runc::Runc,
    rootfs: PathBuf,
    work: PathBuf,
    cgroup_parent: String,
    tag: String,
}

/// Runs the floor for `args.pods` pods at `args.concurrency`.
pub async fn measure(args: &BenchArgs) -> anyhow::Result<FloorReport> {
    let env = Arc::new(prepare(args)?);
    let pids = Arc::new(Mutex::new(vec![0i32; args.pods]));
    let setup_samples = Arc::new(Mutex::new(Vec::new()));
    let teardown_samples = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    run_all(args, "floor", {
        let (env, pids, samples) = (env.clone(), pids.clone(), setup_samples.clone());
        move |i| {
            let (env, pids, samples) = (env.clone(), pids.clone(), samples.clone());
            async move {
                let t = Instant::now();
                let pid = setup_one(&env, i).await?;
                samples.lock().await.push(t.elapsed());
                pids.lock().await[i] = pid;
                Ok(())
            }
        }
    })
    .await?;
    let setup_wall = started.elapsed();
    let started = Instant::now();
    run_all(args, "floor rm", {
        let (env, pids, samples) = (env.clone(), pids.clone(), teardown_samples.clone());
        move |i| {
            let (env, pids, samples) = (env.clone(), pids.clone(), samples.clone());
            async move {
                let pid = pids.lock().await[i];
                let t = Instant::now();
                teardown_one(&env, i, pid).await?;
                samples.lock().await.push(t.elapsed());
                Ok(())
            }
        }
    })
    .await?;
    let teardown_wall = started.elapsed();
    let _ = std::fs::remove_dir_all(&env.work);
    let setup = Stats::of(&setup_samples.lock().await);
    let teardown = Stats::of(&teardown_samples.lock().await);
    Ok(FloorReport {
        conflist: env.list.source.clone(),
        setup,
        teardown,
        setup_wall_s: setup_wall.as_secs_f64(),
        teardown_wall_s: teardown_wall.as_secs_f64(),
    })
}

async fn run_all<F, Fut>(args: &BenchArgs, label: &str, work: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    crate::bench::in_parallel(args.pods, args.concurrency, label, work).await
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

async fn setup_one(env: &Env, i: usize) -> anyhow::Result<i32> {
    let id = container_id(env, i);
    let netns_path = env.work.join("netns").join(&id);
    netns::create(netns_path.clone()).await?;
    env.cni
        .add(&env.list, &runtime_conf(env, i, &netns_path))
        .await?;
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
    env.runc.start(&id).await?;
    Ok(pid)
}

async fn teardown_one(env: &Env, i: usize, pid: i32) -> anyhow::Result<()> {
    let id = container_id(env, i);
    if let Some(process) = Process::open(pid, None)? {
        process.signal(libc::SIGKILL)?;
        process.exited().await?;
    }
    env.runc.delete(&id, false).await?;
    let netns_path = env.work.join("netns").join(&id);
    env.cni
        .del(&env.list, &runtime_conf(env, i, &netns_path), None)
        .await?;
    netns::remove(&netns_path)?;
    Ok(())
}
