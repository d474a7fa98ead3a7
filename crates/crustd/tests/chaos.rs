//! The chaos suite (#14): rounds of concurrent RunPodSandbox (both network orders, host network,
//! host ports, containers that run or exit with a known code) racing Stop/Remove of older pods,
//! with crustd killed by SIGKILL at a random moment and again in the middle of a removal wave,
//! then restarted. After every restart: no acknowledged pod lost, no removed pod back, READY
//! stays READY, running containers run, exited ones keep their exit code, nothing is held for a
//! pod or container that is no longer listed and no temp file of a cut write is left. At the end
//! every pod is removable and the full leak check is clean.
//!
//! `CRUST_CHAOS_SEED` repeats a run (the seed is printed first); `CRUST_CHAOS_ROUNDS` sets how
//! many rounds (CI: 3; a long run: `CRUST_CHAOS_ROUNDS=40 cargo test --test chaos`).

mod common;

use std::{
    collections::{HashMap, HashSet},
    path::Path,
    process::Command,
    time::Duration,
};

use common::{
    ctr::{busybox, create, ctr, status},
    Client, Daemon,
};
use cri_api::v1::{
    ContainerState, PodSandboxState, PortMapping, RemovePodSandboxRequest, RunPodSandboxRequest,
    StartContainerRequest, StopPodSandboxRequest,
};

/// splitmix64: small, seedable, good enough to pick moments and shapes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// What the test knows of a pod from the answers it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Ready,
    NotReady,
    Removed,
    /// A call on it was cut by the kill: any state (or none) is right.
    Unsure,
}

#[derive(Debug, Clone)]
struct PodModel {
    id: Option<String>,
    known: Known,
    /// Started containers: id and the exit code it was told to exit with (None: runs on).
    containers: Vec<(String, Option<i32>)>,
}

/// How a task ended.
enum Outcome {
    Ran {
        name: String,
        id: Option<String>,
        containers: Vec<(String, Option<i32>)>,
    },
    Stopped(String, bool),
    Removed(String, bool),
}

struct Shape {
    name: String,
    network: u64,
    host_port: Option<i32>,
    container: Option<Option<i32>>,
    delay_ms: u64,
}

fn pod_config(d: &Daemon, s: &Shape) -> cri_api::v1::PodSandboxConfig {
    let mut config = match s.network {
        0 => d.pod(&s.name),
        n => d.net_pod(&s.name, n == 2),
    };
    config.log_directory = d
        .dir
        .path()
        .join("logs")
        .join(&s.name)
        .display()
        .to_string();
    if let Some(host_port) = s.host_port {
        config.port_mappings = vec![PortMapping {
            protocol: 0,
            container_port: 80,
            host_port,
            host_ip: "127.0.0.1".into(),
        }];
    }
    config
}

/// Calls fail only because crustd was killed under them (the connection broke or was
/// refused); any other failure is a defect.
fn cut_by_the_kill(e: &tonic::Status) {
    assert!(
        matches!(
            e.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
        ),
        "a call failed for another reason than the kill: {e:?}"
    );
}

/// RunPodSandbox, then maybe one container; what was acknowledged.
async fn run_one(
    mut c: Client,
    d_config: cri_api::v1::PodSandboxConfig,
    s: Shape,
    image: String,
) -> Outcome {
    tokio::time::sleep(Duration::from_millis(s.delay_ms)).await;
    let run = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(d_config),
            runtime_handler: String::new(),
        })
        .await;
    let run = run.inspect_err(cut_by_the_kill);
    let Ok(run) = run else {
        return Outcome::Ran {
            name: s.name,
            id: None,
            containers: vec![],
        };
    };
    let id = run.into_inner().pod_sandbox_id;
    let mut containers = vec![];
    if let Some(exit) = s.container {
        let script = match exit {
            Some(code) => format!("exit {code}"),
            None => "exec sleep 1000".to_string(),
        };
        if let Ok(cid) = create(&mut c, &id, ctr("c", &image, &script))
            .await
            .inspect_err(cut_by_the_kill)
        {
            let started = c
                .start_container(StartContainerRequest {
                    container_id: cid.clone(),
                })
                .await
                .inspect_err(cut_by_the_kill);
            if started.is_ok() {
                containers.push((cid, exit));
            }
        }
    }
    Outcome::Ran {
        name: s.name,
        id: Some(id),
        containers,
    }
}

async fn stop_one(
    mut c: Client,
    name: String,
    id: String,
    remove: bool,
    delay_ms: u64,
) -> Vec<Outcome> {
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let stopped = c
        .stop_pod_sandbox(StopPodSandboxRequest {
            pod_sandbox_id: id.clone(),
        })
        .await
        .inspect_err(cut_by_the_kill)
        .is_ok();
    let mut out = vec![Outcome::Stopped(name.clone(), stopped)];
    if remove && stopped {
        let removed = c
            .remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
            .await
            .inspect_err(cut_by_the_kill)
            .is_ok();
        out.push(Outcome::Removed(name, removed));
    } else if remove {
        out.push(Outcome::Removed(name, false));
    }
    out
}

struct Chaos {
    d: Daemon,
    rng: Rng,
    image: String,
    pods: HashMap<String, PodModel>,
    next_port: i32,
    made: usize,
    /// Container states checked after restarts.
    checked: usize,
    /// The most host-port chains of this daemon's seen after a restart (proof the final
    /// check of none left looks at something).
    most_chains: usize,
}

impl Chaos {
    fn shape(&mut self, round: usize, i: usize) -> Shape {
        let network = self.rng.below(3);
        let host_port = (network != 0 && self.rng.chance(25)).then(|| {
            self.next_port += 1;
            self.next_port
        });
        let container = self
            .rng
            .chance(50)
            .then(|| self.rng.chance(50).then(|| self.rng.below(120) as i32));
        Shape {
            name: format!("chaos-{round}-{i}"),
            network,
            host_port,
            container,
            delay_ms: self.rng.below(300),
        }
    }

    /// Stop (and maybe Remove) tasks for some of the known, live pods.
    fn teardowns(
        &mut self,
        c: &Client,
        percent: u64,
        set: &mut tokio::task::JoinSet<Vec<Outcome>>,
    ) {
        let mut live: Vec<(String, String)> = self
            .pods
            .iter()
            .filter(|(_, p)| matches!(p.known, Known::Ready | Known::NotReady))
            .filter_map(|(n, p)| p.id.clone().map(|id| (n.clone(), id)))
            .collect();
        live.sort();
        for (name, id) in live {
            if self.rng.chance(percent) {
                let remove = self.rng.chance(60);
                let delay = self.rng.below(300);
                self.mark_unsure(&name);
                set.spawn(stop_one(c.clone(), name, id, remove, delay));
            }
        }
    }

    fn mark_unsure(&mut self, name: &str) {
        if let Some(p) = self.pods.get_mut(name) {
            p.known = Known::Unsure;
            p.containers.clear(); // a Stop stops them first
        }
    }

    fn apply(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Ran {
                name,
                id,
                containers,
            } => {
                let known = if id.is_some() {
                    Known::Ready
                } else {
                    Known::Unsure
                };
                self.pods.insert(
                    name,
                    PodModel {
                        id,
                        known,
                        containers,
                    },
                );
            }
            Outcome::Stopped(name, true) => {
                let p = self.pods.get_mut(&name).expect("stopped pod is known");
                p.known = Known::NotReady;
                p.containers.clear(); // stopped with the pod: exit codes are the stop's
            }
            Outcome::Removed(name, true) => {
                self.pods
                    .get_mut(&name)
                    .expect("removed pod is known")
                    .known = Known::Removed;
            }
            // A cut Stop or Remove: it may have happened, wholly or in part.
            Outcome::Stopped(name, false) | Outcome::Removed(name, false) => {
                self.mark_unsure(&name)
            }
        }
    }

    /// One wave: `runs` new pods racing teardown of older ones, crustd killed after `kill_ms`.
    async fn wave(&mut self, round: usize, runs: usize, teardown_percent: u64, kill_ms: u64) {
        let c = self.d.client().await;
        let mut set = tokio::task::JoinSet::new();
        for i in 0..runs {
            let shape = self.shape(round, self.made + i);
            let config = pod_config(&self.d, &shape);
            let (c, image) = (c.clone(), self.image.clone());
            set.spawn(async move { vec![run_one(c, config, shape, image).await] });
        }
        self.made += runs;
        self.teardowns(&c, teardown_percent, &mut set);
        tokio::time::sleep(Duration::from_millis(kill_ms)).await;
        self.d.kill9();
        while let Some(done) = set.join_next().await {
            for outcome in done.expect("chaos task") {
                self.apply(outcome);
            }
        }
        self.d.restart().await;
    }

    /// After a restart: what the answers said still holds, and nothing is held for what is gone.
    async fn verify(&mut self, seed: u64) {
        let mut c = self.d.client().await;
        let listed = common::list(&mut c).await;
        let mut by_name: HashMap<String, (String, i32)> = HashMap::new();
        for p in &listed {
            let name = p.metadata.as_ref().unwrap().name.clone();
            let dup = by_name.insert(name.clone(), (p.id.clone(), p.state));
            assert!(dup.is_none(), "seed {seed}: two pods named {name}");
        }
        for name in by_name.keys() {
            assert!(
                self.pods.contains_key(name),
                "seed {seed}: unknown pod {name} listed"
            );
        }
        for (name, model) in self.pods.iter_mut() {
            let seen = by_name.get(name);
            let ready = PodSandboxState::SandboxReady as i32;
            match (model.known, seen) {
                (Known::Ready, Some((id, state))) => {
                    assert_eq!(Some(id), model.id.as_ref(), "seed {seed}: {name}");
                    assert_eq!(*state, ready, "seed {seed}: {name} was READY");
                }
                (Known::NotReady, Some((_, state))) => {
                    assert_ne!(*state, ready, "seed {seed}: stopped {name} is READY again")
                }
                (Known::Removed, None) => {}
                (Known::Removed, Some(_)) => panic!("seed {seed}: removed pod {name} is back"),
                (Known::Ready | Known::NotReady, None) => panic!("seed {seed}: pod {name} lost"),
                (Known::Unsure, Some((id, state))) => {
                    model.id = Some(id.clone());
                    model.known = if *state == ready {
                        Known::Ready
                    } else {
                        Known::NotReady
                    };
                    if model.known == Known::NotReady {
                        model.containers.clear();
                    }
                }
                (Known::Unsure, None) => model.known = Known::Removed,
            }
        }
        self.verify_containers(&mut c, seed).await;
        self.verify_nothing_held(&mut c, seed).await;
    }

    async fn verify_containers(&mut self, c: &mut Client, seed: u64) {
        let mut checked = 0;
        for (name, model) in &self.pods {
            if model.known != Known::Ready {
                continue;
            }
            for (id, exit) in &model.containers {
                let want = exit.map_or(ContainerState::ContainerRunning, |_| {
                    ContainerState::ContainerExited
                }) as i32;
                let ok = common::eventually(Duration::from_secs(20), || {
                    let (mut c, id) = (c.clone(), id.clone());
                    async move { status(&mut c, &id).await.state == want }
                })
                .await;
                let s = status(c, id).await;
                assert!(ok, "seed {seed}: container {id} of {name}: {s:?}");
                if let Some(code) = exit {
                    assert_eq!(s.exit_code, *code, "seed {seed}: exit code of {id} kept");
                }
                checked += 1;
            }
        }
        self.checked += checked;
    }

    /// Every runc container, IP, CNI result, netns, cgroup, shim, state dir and host-port rule
    /// belongs to something listed; no temp file of a cut write is left.
    async fn verify_nothing_held(&mut self, c: &mut Client, seed: u64) {
        let chains = host_port_chains(&self.d.net.subnet).len();
        if std::env::var_os("CRUST_CHAOS_DEBUG").is_some() {
            eprintln!("chaos: {chains} host-port chains for {}", self.d.net.subnet);
        }
        self.most_chains = self.most_chains.max(chains);
        let mut ids: HashSet<String> = common::list(c).await.into_iter().map(|p| p.id).collect();
        let ctrs = c
            .list_containers(cri_api::v1::ListContainersRequest::default())
            .await
            .unwrap()
            .into_inner()
            .containers;
        ids.extend(ctrs.into_iter().map(|c| c.id));
        let orphans: Vec<String> = held(&self.d)
            .into_iter()
            .filter(|thing| !ids.iter().any(|id| thing.contains(id)))
            .collect();
        assert!(
            orphans.is_empty(),
            "seed {seed}: held for nothing listed: {orphans:#?}\nwhat the log says of them:\n{}",
            log_lines_of(&self.d.log_text(), &orphans)
        );
        let temps = temp_files(&self.d);
        assert!(temps.is_empty(), "seed {seed}: temp files left: {temps:?}");
        // A veth per listed pod-network pod at most (a NOTREADY pod whose Stop was cut keeps
        // its network until Stop runs again, as kubelet's does), and an IP for every READY one.
        let wired = self.pod_network_pods(c).await;
        let veths = veths(&self.d);
        let ready_without_ip: Vec<_> = wired
            .iter()
            .filter(|(_, ready, ip)| *ready && ip.is_empty())
            .collect();
        if veths.len() > wired.len() || !ready_without_ip.is_empty() {
            panic!(
                "seed {seed}: {} veths on the bridge for {} pod-network pods (id, READY, IP):\n{veths:#?}\n{wired:#?}\n{}",
                veths.len(),
                wired.len(),
                self.d.log_text()
            );
        }
    }

    /// Listed pods in the pod network: id, READY, IP.
    async fn pod_network_pods(&self, c: &mut Client) -> Vec<(String, bool, String)> {
        let mut out = vec![];
        for p in common::list(c).await {
            let status = c
                .pod_sandbox_status(cri_api::v1::PodSandboxStatusRequest {
                    pod_sandbox_id: p.id.clone(),
                    verbose: false,
                })
                .await
                .unwrap()
                .into_inner()
                .status
                .unwrap();
            let mode = status
                .linux
                .and_then(|l| l.namespaces)
                .and_then(|n| n.options)
                .map_or(-1, |o| o.network);
            if mode == cri_api::v1::NamespaceMode::Pod as i32 {
                let ready = p.state == PodSandboxState::SandboxReady as i32;
                out.push((
                    p.id,
                    ready,
                    status.network.map(|n| n.ip).unwrap_or_default(),
                ));
            }
        }
        out
    }
}

fn veths(d: &Daemon) -> Vec<String> {
    let links = Command::new("ip")
        .args(["-o", "link", "show", "master", &d.net.bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&links.stdout)
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect()
}

/// The daemon's log lines (all its lives) naming an object that `orphans` mention.
fn log_lines_of(log: &str, orphans: &[String]) -> String {
    let ids: HashSet<&str> = orphans
        .iter()
        .flat_map(|o| o.split(|c: char| !c.is_ascii_hexdigit()))
        .filter(|w| w.len() == 64)
        .collect();
    log.lines()
        .filter(|l| ids.iter().any(|id| l.contains(id)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What crustd holds on the host, one string each, naming the pod or container it is for.
fn held(d: &Daemon) -> Vec<String> {
    let mut out = vec![];
    let runc_root = d.state.join("runtime").join("runc");
    let list = Command::new("/usr/sbin/runc")
        .arg("--root")
        .arg(&runc_root)
        .args(["list", "-q"])
        .output()
        .unwrap();
    out.extend(
        String::from_utf8_lossy(&list.stdout)
            .lines()
            .map(|l| format!("runc container {l}")),
    );
    let ipam = d.net.ipam_dir.join(&d.net.name);
    for e in std::fs::read_dir(&ipam).into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("last_reserved_ip") || name == "lock" {
            continue;
        }
        let owner = std::fs::read_to_string(e.path()).unwrap_or_default();
        out.push(format!(
            "IP {name} of {}",
            owner.lines().next().unwrap_or("")
        ));
    }
    for sub in [
        "root/cni/results",
        "state/netns",
        "root/sandboxes",
        "state/sandboxes",
        "root/containers",
    ] {
        for e in std::fs::read_dir(d.dir.path().join(sub))
            .into_iter()
            .flatten()
            .flatten()
        {
            out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    out.extend(
        common::cgroup_children(&d.cgroup_parent)
            .into_iter()
            .map(|c| format!("cgroup {c}")),
    );
    out.extend(d.shims().into_iter().map(|s| format!("shim {s}")));
    let dir = d.dir.path().display().to_string();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    out.extend(
        mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.contains(&dir))
            .map(|m| format!("mount {m}")),
    );
    if let Ok(rules) = Command::new("iptables-save").output() {
        out.extend(
            String::from_utf8_lossy(&rules.stdout)
                .lines()
                .filter(|l| l.contains(&d.net.name))
                .map(|l| format!("iptables {l}")),
        );
    }
    out
}

/// Temp files of atomic writes under crustd's root and state dirs.
fn temp_files(d: &Daemon) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let Ok(kind) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            if kind.is_dir() && name.ends_with(".removing") {
                out.push(e.path().display().to_string()); // a cut removal recovery did not finish
            } else if kind.is_dir() && !kind.is_symlink() {
                // Snapshots and bundles hold the images' own files; only crustd's writes count.
                if !matches!(name.as_str(), "snapshots" | "rootfs" | "bundle") {
                    walk(&e.path(), out);
                }
            } else if name.ends_with(".tmp") || name.ends_with(".removing") {
                out.push(e.path().display().to_string());
            }
        }
    }
    let mut out = vec![];
    walk(&d.root, &mut out);
    walk(&d.state, &mut out);
    walk(
        &d.root.join("images").join("content").join("ingest"),
        &mut out,
    );
    out
}

/// The per-pod host-port chains (portmap's `CNI-DN-*`) whose rules name an address of
/// `subnet` (`10.x.y.0/24`): this daemon's, whatever other crust tests on the host do.
fn host_port_chains(subnet: &str) -> std::collections::BTreeSet<String> {
    let prefix = subnet.trim_end_matches("0/24");
    let rules = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&rules.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("-A CNI-DN-").map(|rest| (rest, l)))
        .filter(|(_, l)| l.contains(prefix))
        .filter_map(|(rest, _)| rest.split(' ').next().map(|c| format!("CNI-DN-{c}")))
        .collect()
}

#[tokio::test]
async fn pods_and_containers_survive_sigkill_during_churn() {
    let seed = std::env::var("CRUST_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let rounds: usize = std::env::var("CRUST_CHAOS_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    eprintln!("chaos: CRUST_CHAOS_SEED={seed} CRUST_CHAOS_ROUNDS={rounds}");
    let d = Daemon::start().await;
    let env = busybox(&d).await;
    let mut rng = Rng(seed);
    let next_port = 20000 + rng.below(20000) as i32;
    let mut chaos = Chaos {
        d,
        rng,
        image: env.image.clone(),
        pods: HashMap::new(),
        next_port,
        made: 0,
        checked: 0,
        most_chains: 0,
    };
    for round in 0..rounds {
        let runs = 20 + chaos.rng.below(11) as usize;
        let kill_ms = 100 + chaos.rng.below(2000);
        chaos.wave(round, runs, 40, kill_ms).await;
        chaos.verify(seed).await;
        // Again, with crustd killed in the middle of a removal wave.
        let kill_ms = chaos.rng.below(250);
        chaos.wave(round, 0, 70, kill_ms).await;
        chaos.verify(seed).await;
    }
    let count = |k: Known| chaos.pods.values().filter(|p| p.known == k).count();
    eprintln!(
        "chaos: {} pods in {} kills: {} ready, {} stopped, {} removed at the end; {} containers checked; up to {} host-port chains",
        chaos.pods.len(),
        rounds * 2,
        count(Known::Ready),
        count(Known::NotReady),
        count(Known::Removed),
        chaos.checked,
        chaos.most_chains,
    );
    let mut c = chaos.d.client().await;
    for p in common::list(&mut c).await {
        common::stop_remove(&mut c, &p.id).await;
    }
    assert!(common::list(&mut c).await.is_empty());
    chaos.d.assert_no_leaks().await;
    let temps = temp_files(&chaos.d);
    assert!(temps.is_empty(), "seed {seed}: temp files left: {temps:?}");
    let chains = host_port_chains(&chaos.d.net.subnet);
    assert!(
        chains.is_empty(),
        "seed {seed}: host-port chains left: {chains:?}"
    );
}
