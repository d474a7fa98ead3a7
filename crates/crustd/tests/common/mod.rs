//! End-to-end harness: starts the real `crustd` binary on private directories, talks to it with the
//! generated tonic CRI client over the unix socket, and checks that nothing of a test is left behind.
#![allow(dead_code)]

pub mod ctr;
pub mod registry;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use cri_api::v1::{
    runtime_service_client::RuntimeServiceClient, LinuxPodSandboxConfig,
    LinuxSandboxSecurityContext, NamespaceMode, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, RunPodSandboxRequest,
};
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

pub type Client = RuntimeServiceClient<Channel>;

/// A running crustd with its own socket, root, state dir and cgroup parent.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub config: PathBuf,
    pub cgroup_parent: String,
    pub failpoints: PathBuf,
    pub log: PathBuf,
    pub net: TestNetwork,
    env: Vec<(String, String)>,
}
/// This daemon's own CNI network: bridge, /24 subnet, IPAM dir, and failpoint-wrapped plugins.
pub struct TestNetwork {
    pub name: String,
    pub bridge: String,
    pub subnet: String,
    pub conf_dir: PathBuf,
    pub bin_dir: PathBuf,
    pub ipam_dir: PathBuf,
    /// Control dirs of the failpoint wrappers: `fp/bridge` and `fp/portmap`.
    pub fp_dir: PathBuf,
}

impl TestNetwork {
    fn new(dir: &Path, tag: &str) -> TestNetwork {
        let suffix: String = tag.chars().rev().take(6).collect::<String>().to_lowercase();
        let net = TestNetwork {
            name: format!("crusttest-{suffix}"),
            bridge: format!("crust-{suffix}"),
            subnet: free_subnet(),
            conf_dir: dir.join("net.d"),
            bin_dir: dir.join("cni-bin"),
            ipam_dir: dir.join("ipam"),
            fp_dir: dir.join("fp"),
        };
        std::fs::create_dir_all(&net.conf_dir).unwrap();
        std::fs::create_dir_all(&net.bin_dir).unwrap();
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/cni-failpoint");
        std::os::unix::fs::symlink(
            fixture.canonicalize().unwrap(),
            net.bin_dir.join("failpoint"),
        )
        .unwrap();
        std::fs::write(net.conf_dir.join("10-test.conflist"), net.conflist()).unwrap();
        net
    }

    /// The conflist: bridge + host-local and portmap, each wrapped by the failpoint plugin.
    pub fn conflist(&self) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": self.name,
            "plugins": [
                { "type": "failpoint", "controlDir": self.fp_dir.join("bridge"),
                  "delegate": { "type": "bridge", "bridge": self.bridge, "isGateway": true,
                                "ipMasq": false, "hairpinMode": true,
                                "ipam": { "type": "host-local", "ranges": [[{ "subnet": self.subnet }]],
                                          "dataDir": self.ipam_dir } } },
                { "type": "failpoint", "controlDir": self.fp_dir.join("portmap"),
                  "capabilities": { "portMappings": true, "bandwidth": true, "ipRanges": true },
                  "delegate": { "type": "portmap", "capabilities": { "portMappings": true } } }
            ]
        })
        .to_string()
    }

    /// Arms a CNI failpoint on `plugin` ("bridge" or "portmap"): `ADD`, `DEL.once`, `ADD.sleep`...
    pub fn fail(&self, plugin: &str, what: &str, content: &str) {
        let dir = self.fp_dir.join(plugin);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(what), content).unwrap();
    }

    pub fn clear_failpoints(&self) {
        for plugin in ["bridge", "portmap"] {
            if let Ok(entries) = std::fs::read_dir(self.fp_dir.join(plugin)) {
                for e in entries.flatten().filter(|e| e.file_name() != "calls") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }

    /// The calls the failpoint plugin recorded for `plugin`.
    pub fn calls(&self, plugin: &str) -> Vec<String> {
        std::fs::read_to_string(self.fp_dir.join(plugin).join("calls"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// What `plugin`'s wrapper saw in the netns at the end of an armed `<CMD>.sleep`.
    pub fn observed(&self, plugin: &str) -> Vec<String> {
        std::fs::read_to_string(self.fp_dir.join(plugin).join("observed"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// The stdin config `plugin`'s wrapper got for `command` on container `id`.
    pub fn stdin_of(&self, plugin: &str, command: &str, id: &str) -> serde_json::Value {
        let path = self
            .fp_dir
            .join(plugin)
            .join(format!("{command}-{id}.json"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    /// IPs host-local still holds.
    pub fn allocated_ips(&self) -> Vec<String> {
        std::fs::read_dir(self.ipam_dir.join(&self.name))
            .map(|it| {
                it.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "lock" && !n.starts_with("last_reserved_ip"))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn leaks(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .allocated_ips()
            .into_iter()
            .map(|ip| format!("host-local IP: {ip}"))
            .collect();
        let links = Command::new("ip")
            .args(["-o", "link", "show", "master", &self.bridge])
            .output()
            .unwrap();
        out.extend(
            String::from_utf8_lossy(&links.stdout)
                .lines()
                .map(|l| format!("veth on {}: {l}", self.bridge)),
        );
        if let Ok(rules) = Command::new("iptables-save").output() {
            let text = String::from_utf8_lossy(&rules.stdout);
            out.extend(
                text.lines()
                    .filter(|l| l.contains(&self.name))
                    .map(|l| format!("iptables: {l}")),
            );
        }
        out
    }
}

/// A /24 in 10.200.0.0/13 that no route on this host touches.
fn free_subnet() -> String {
    let out = Command::new("ip")
        .args(["-4", "route", "show", "table", "all"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&out.stdout).into_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let mut seed = now.subsec_nanos() ^ std::process::id().rotate_left(16);
    loop {
        seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let (b, c) = (200 + (seed >> 8) % 8, (seed >> 16) % 256);
        let prefix = format!("10.{b}.{c}.");
        if !routes.contains(&prefix) {
            return format!("{prefix}0/24");
        }
    }
}

/// The real runc, and the fault-injecting wrapper around it.
pub fn failpoint_runc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/runc-failpoint")
}

impl Daemon {
    /// Starts crustd with the default config plus a `failing` runtime handler (the runc wrapper).
    pub async fn start() -> Daemon {
        Daemon::start_with("", &[]).await
    }

    /// Starts crustd with `extra` appended to its config and `env` set.
    pub async fn start_with(extra: &str, env: &[(&str, &str)]) -> Daemon {
        let mut d = Daemon::prepare(extra, env);
        d.spawn().await;
        d
    }

    /// Directories, network and config of a daemon, not started yet ([`Daemon::restart`]
    /// starts it), for tests that prepare its root first.
    pub fn prepare(extra: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("crust-test-")
            .tempdir()
            .unwrap();
        let tag = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let failpoints = dir.path().join("failpoints");
        std::fs::create_dir_all(&failpoints).unwrap();
        let net = TestNetwork::new(dir.path(), &tag);
        let config = dir.path().join("config.toml");
        let cni = format!(
            "[cni]\nconf_dir = \"{}\"\nbin_dirs = [\"{}\", \"/usr/lib/cni\"]\ndefault_network = false\nplugin_timeout_s = 10\n",
            net.conf_dir.display(),
            net.bin_dir.display()
        );
        let runtimes = format!(
            // Its faults are injected into runc, so its pods run a pause through it.
            "[runtimes.failing]\npath = \"{}\"\nsandbox = \"pause\"\n",
            failpoint_runc().display()
        );
        // Top-level keys of `extra` (before its first table) must precede the harness's tables.
        let split = extra
            .match_indices('[')
            .find(|(i, _)| *i == 0 || extra.as_bytes()[i - 1] == b'\n')
            .map_or(extra.len(), |(i, _)| i);
        let (top, tables) = extra.split_at(split);
        std::fs::write(&config, format!("{top}\n{runtimes}{cni}{tables}\n")).unwrap();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push((
            "CRUST_RUNC_FAILPOINTS".into(),
            failpoints.display().to_string(),
        ));
        Daemon {
            child: None,
            socket: dir.path().join("run").join("crust.sock"),
            root: dir.path().join("root"),
            state: dir.path().join("state"),
            log: dir.path().join("crustd.log"),
            config,
            cgroup_parent: format!("/{tag}"),
            failpoints,
            env,
            net,
            dir,
        }
    }

    async fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_crustd"));
        cmd.arg("--socket")
            .arg(&self.socket)
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .arg("--config")
            .arg(&self.config)
            .arg("--log")
            .arg("debug,h2=info,tower=info,hyper=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn crustd"));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("crustd exited early with {status}: {}", self.log_text());
            }
            if self.socket.exists() {
                if let Ok(mut c) = self.try_client().await {
                    if c.version(cri_api::v1::VersionRequest::default())
                        .await
                        .is_ok()
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("crustd did not come up: {}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    async fn try_client(&self) -> Result<Client, tonic::transport::Error> {
        Ok(RuntimeServiceClient::new(self.channel().await?))
    }

    /// An ImageService client on a fresh connection.
    pub async fn image_client(
        &self,
    ) -> cri_api::v1::image_service_client::ImageServiceClient<Channel> {
        cri_api::v1::image_service_client::ImageServiceClient::new(
            self.channel().await.expect("connect"),
        )
    }

    /// A fresh connection to the socket.
    pub async fn channel(&self) -> Result<Channel, tonic::transport::Error> {
        let path = self.socket.clone();
        let channel = Endpoint::try_from("http://[::]:50051")?
            .connect_with_connector(tower::service_fn(move |_| {
                let path = path.clone();
                async move {
                    Ok::<_, std::io::Error>(TokioIo::new(
                        tokio::net::UnixStream::connect(path).await?,
                    ))
                }
            }))
            .await?;
        Ok(channel)
    }

    /// The `crust` CLI pointed at this daemon's socket.
    pub fn crust_cli(&self) -> Command {
        let mut cmd = Command::new(crust_cli_binary());
        cmd.arg("--socket").arg(&self.socket);
        cmd
    }

    /// A fresh client connection.
    pub async fn client(&self) -> Client {
        self.try_client().await.expect("connect to crustd")
    }

    /// SIGTERM and wait (graceful stop; pods keep running).
    pub fn stop_graceful(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let status = child.wait().unwrap();
            assert!(
                status.success(),
                "crustd exit after SIGTERM: {status}: {}",
                self.log_text()
            );
        }
    }

    /// SIGKILL (a crash).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Drops environment variable `key` for the next (re)start.
    pub fn unset_env(&mut self, key: &str) {
        self.env.retain(|(k, _)| k != key);
    }

    /// Starts crustd again on the same directories.
    pub async fn restart(&mut self) {
        self.spawn().await;
    }

    /// A host-network pod config named `name` under this daemon's cgroup parent.
    pub fn pod(&self, name: &str) -> PodSandboxConfig {
        host_pod(name, &self.cgroup_parent)
    }

    /// A pod-network (CNI) pod config; `network_first` sets the v2 annotation.
    pub fn net_pod(&self, name: &str, network_first: bool) -> PodSandboxConfig {
        let mut config = host_pod(name, &self.cgroup_parent);
        ns_options(&mut config).network = NamespaceMode::Pod as i32;
        if network_first {
            config
                .annotations
                .insert("cri.sandbox.network.setup.v2".into(), "true".into());
        }
        config
    }

    /// RunPodSandbox with `config`; panics on failure.
    pub async fn run_config(&self, c: &mut Client, config: PodSandboxConfig) -> String {
        c.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{}", self.log_text()))
        .into_inner()
        .pod_sandbox_id
    }

    /// RunPodSandbox for a host-network pod; returns the id.
    pub async fn run_pod(&self, c: &mut Client, name: &str) -> String {
        c.run_pod_sandbox(RunPodSandboxRequest {
            config: Some(self.pod(name)),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}\n{}", self.log_text()))
        .into_inner()
        .pod_sandbox_id
    }

    /// Arms a runc failpoint (`op` or `op.once`).
    pub fn fail_runc(&self, what: &str) {
        std::fs::write(self.failpoints.join(what), b"").unwrap();
    }

    pub fn clear_runc_failpoints(&self) {
        for e in std::fs::read_dir(&self.failpoints).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
    }

    /// The leak check (RELIABILITY.md): nothing of this daemon's pods is left.
    pub async fn assert_no_leaks(&self) {
        let leaks = self.leaks().await;
        assert!(
            leaks.is_empty(),
            "leaked: {leaks:#?}\n--- crustd log ---\n{}",
            self.log_text()
        );
    }

    pub async fn leaks(&self) -> Vec<String> {
        let mut leaks = Vec::new();
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        // Pinned namespaces (a pod's netns, IPC and UTS) are nsfs mounts under the directory.
        leaks.extend(mountinfo.lines().filter(|l| l.contains(&dir)).map(|l| {
            match l.contains(" - nsfs ") {
                true => format!("pinned namespace: {l}"),
                false => format!("mount: {l}"),
            }
        }));
        for root in runtime_roots(&self.state) {
            if let Some(tasks) = &root.tasks {
                let handler = &root.handler;
                leaks.extend(
                    tasks
                        .iter()
                        .map(|t| format!("shim-v2 task ({handler}): {t:?}")),
                );
            }
            leaks.extend(
                root.list()
                    .into_iter()
                    .map(|l| format!("{} container ({}): {l}", root.binary, root.handler)),
            );
        }
        leaks.extend(self.shims().into_iter().map(|p| format!("crust-shim: {p}")));
        leaks.extend(
            self.processes("containerd-shim")
                .into_iter()
                .map(|p| format!("containerd shim: {p}")),
        );
        leaks.extend(
            self.processes("runsc")
                .into_iter()
                .map(|p| format!("runsc process: {p}")),
        );
        for sub in ["root/sandboxes", "state/sandboxes", "root/containers"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.path().join(sub)) {
                leaks.extend(entries.map(|e| format!("{sub}: {:?}", e.unwrap().file_name())));
            }
        }
        leaks.extend(
            cgroup_children(&self.cgroup_parent)
                .into_iter()
                .map(|c| format!("cgroup: {c}")),
        );
        leaks.extend(self.net.leaks());
        for sub in ["root/cni/results", "state/netns"] {
            if let Ok(entries) = std::fs::read_dir(self.dir.path().join(sub)) {
                leaks.extend(entries.map(|e| format!("{sub}: {:?}", e.unwrap().file_name())));
            }
        }
        leaks
    }

    /// Live crust-shim processes of this daemon (zombies do not count).
    pub fn shims(&self) -> Vec<String> {
        self.processes("crust-shim")
    }

    /// Live processes whose command line holds `name` and this daemon's directory.
    pub fn processes(&self, name: &str) -> Vec<String> {
        let dir = self.dir.path().display().to_string();
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z'));
            if cmdline.contains(name) && cmdline.contains(&dir) && !zombie {
                out.push(format!("{pid} {cmdline}"));
            }
        }
        out
    }

    /// The pinned namespaces (nsfs mounts) of this daemon's pods, as `<id>/<ns>`.
    pub fn pinned_namespaces(&self) -> Vec<String> {
        let base = format!("{}/", self.state.join("sandboxes").display());
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(" - nsfs "))
            .filter_map(|l| l.split(' ').nth(4))
            .filter_map(|m| m.strip_prefix(&base))
            .map(|m| m.replace("/ns/", "/"))
            .collect()
    }

    /// Pids of the pause processes in this daemon's cgroups.
    pub fn pause_pids(&self) -> Vec<i32> {
        let base =
            Path::new("/sys/fs/cgroup/pids").join(self.cgroup_parent.trim_start_matches('/'));
        let mut pids = Vec::new();
        if let Ok(entries) = std::fs::read_dir(base) {
            for e in entries.flatten() {
                if let Ok(text) = std::fs::read_to_string(e.path().join("cgroup.procs")) {
                    pids.extend(text.lines().filter_map(|l| l.parse::<i32>().ok()));
                }
            }
        }
        pids
    }
}

/// One handler's runtime state under `<state>/runtime/<handler>`: the binary and root its
/// containers are listed with (a shim-v2 handler's runc keeps them under `runc/k8s.io`, the
/// shim's namespace; runsc needs runsc), and a shim-v2 handler's task bundles.
struct RuntimeRoot {
    handler: String,
    binary: &'static str,
    root: PathBuf,
    tasks: Option<Vec<std::ffi::OsString>>,
}

impl RuntimeRoot {
    /// The ids of the containers the runtime lists under this root.
    fn list(&self) -> Vec<String> {
        let quiet = if self.binary == "runsc" {
            "-quiet"
        } else {
            "-q"
        };
        let out = Command::new(self.binary)
            .arg("--root")
            .arg(&self.root)
            .args(["list", quiet])
            .output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
    }
}

fn runtime_roots(state: &Path) -> Vec<RuntimeRoot> {
    let dirs = std::fs::read_dir(state.join("runtime"))
        .map(|e| e.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .filter(|d| d.is_dir())
        .map(|dir| {
            let handler = dir.file_name().unwrap().to_string_lossy().into_owned();
            let tasks = std::fs::read_dir(dir.join("tasks"))
                .ok()
                .map(|t| t.flatten().map(|e| e.file_name()).collect());
            let binary = match handler.starts_with("runsc") {
                true => "runsc",
                false => "/usr/sbin/runc",
            };
            let root = match tasks.is_some() {
                true => dir.join("runc").join("k8s.io"),
                false => dir,
            };
            RuntimeRoot {
                handler,
                binary,
                root,
                tasks,
            }
        })
        .collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        // Best-effort cleanup so one failing test does not leave pods behind for the next: the
        // containerd shims and task-io processes of shim-v2 pods first, then every runtime root
        // (runc's, a shim-v2 handler's runc/k8s.io, runsc's: see `runtime_roots`).
        for name in ["containerd-shim", "crust-shim"] {
            for p in self.processes(name) {
                if let Some(pid) = p.split(' ').next().and_then(|p| p.parse::<i32>().ok()) {
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for root in runtime_roots(&self.state) {
            for id in root.list() {
                let _ = Command::new(root.binary)
                    .arg("--root")
                    .arg(&root.root)
                    .args(["delete", "--force", &id])
                    .status();
            }
        }
        let dir = self.dir.path().to_string_lossy().into_owned();
        if let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") {
            for mp in info
                .lines()
                .filter_map(|l| l.split(' ').nth(4))
                .filter(|m| m.contains(&dir))
            {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
        remove_cgroups(&self.cgroup_parent);
        remove_host_port_rules(&self.net.name);
        // CRUST_TEST_KEEP_LOGS=DIR keeps each daemon's log (all its lives) for a look afterwards.
        if let Some(keep) = std::env::var_os("CRUST_TEST_KEEP_LOGS") {
            let name = self.dir.path().file_name().unwrap_or_default().to_owned();
            let _ = std::fs::create_dir_all(&keep);
            let _ = std::fs::copy(&self.log, Path::new(&keep).join(name).with_extension("log"));
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.net.bridge])
            .output();
    }
}

/// The portmap rules and chains of network `name` (a failed test never ran CNI DEL): each
/// `CNI-HOSTPORT-DNAT` rule whose comment names the network goes, with the `CNI-DN-*` chain it
/// jumps to.
pub fn remove_host_port_rules(name: &str) {
    let Ok(out) = Command::new("iptables-save").args(["-t", "nat"]).output() else {
        return;
    };
    let marker = format!("dnat name: \\\"{name}\\\"");
    let marker_plain = format!("dnat name: \"{name}\"");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(rule) = line.strip_prefix("-A CNI-HOSTPORT-DNAT ") else {
            continue;
        };
        if !line.contains(&marker) && !line.contains(&marker_plain) {
            continue;
        }
        let chain = rule.rsplit(" -j ").next().unwrap_or("").to_string();
        // iptables-save quotes the comment; hand iptables the words through sh to keep them.
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("iptables -t nat -D CNI-HOSTPORT-DNAT {rule}"))
            .output();
        if chain.starts_with("CNI-DN-") {
            for flag in ["-F", "-X"] {
                let _ = Command::new("iptables")
                    .args(["-t", "nat", flag, &chain])
                    .output();
            }
        }
    }
}

/// Names in `dir` (none when it does not exist).
pub fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The image store holds nothing half-written: no ingest file, every snapshot complete.
pub fn assert_store_clean(d: &Daemon) {
    let ingest = entries(&d.root.join("images/content/ingest"));
    assert!(ingest.is_empty(), "ingest left: {ingest:?}");
    let snaps = d.root.join("images/snapshots");
    for s in entries(&snaps) {
        assert!(
            snaps.join(&s).join(".complete").is_file(),
            "incomplete snapshot {s} left"
        );
    }
}

/// crustd's peak resident memory (VmHWM) in KiB.
pub fn peak_rss_kib(d: &Daemon) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Cgroup directories left under `parent` in any v1 controller.
pub fn cgroup_children(parent: &str) -> Vec<String> {
    let mut out = Vec::new();
    for controller in cgroup_controllers() {
        let base = controller.join(parent.trim_start_matches('/'));
        if let Ok(entries) = std::fs::read_dir(&base) {
            out.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path().display().to_string()),
            );
        }
    }
    out
}

fn cgroup_controllers() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|it| {
            it.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_cgroups(parent: &str) {
    for controller in cgroup_controllers() {
        let base = controller.join(parent.trim_start_matches('/'));
        if let Ok(entries) = std::fs::read_dir(&base) {
            for e in entries.flatten().filter(|e| e.path().is_dir()) {
                let _ = std::fs::remove_dir(e.path());
            }
        }
        let _ = std::fs::remove_dir(&base);
    }
}

/// A host-network PodSandboxConfig.
pub fn host_pod(name: &str, cgroup_parent: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            namespace: "crust-test".to_string(),
            uid: format!("uid-{name}"),
            attempt: 0,
        }),
        hostname: name.to_string(),
        labels: HashMap::from([("app".to_string(), name.to_string())]),
        annotations: HashMap::from([("test/annotation".to_string(), "yes".to_string())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.to_string(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    // kubelet's default (no shareProcessNamespace): a pinned sandbox.
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// StopPodSandbox then RemovePodSandbox; both must succeed.
pub async fn stop_remove(c: &mut Client, id: &str) {
    let stop = cri_api::v1::StopPodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    };
    c.stop_pod_sandbox(stop).await.unwrap();
    let remove = cri_api::v1::RemovePodSandboxRequest {
        pod_sandbox_id: id.to_string(),
    };
    c.remove_pod_sandbox(remove).await.unwrap();
}

/// The pod's state and its verbose status `info` (crustd's record as JSON).
#[allow(dead_code)]
pub async fn pod_info(c: &mut Client, id: &str) -> (i32, serde_json::Value) {
    let st = c
        .pod_sandbox_status(cri_api::v1::PodSandboxStatusRequest {
            pod_sandbox_id: id.into(),
            verbose: true,
        })
        .await
        .unwrap()
        .into_inner();
    let info = serde_json::from_str(&st.info["info"]).unwrap();
    (st.status.unwrap().state, info)
}

/// The namespace options of a harness pod config, to change them.
#[allow(dead_code)]
pub fn ns_options(config: &mut PodSandboxConfig) -> &mut NamespaceOption {
    config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options
        .as_mut()
        .unwrap()
}

/// ListPodSandbox without a filter.
/// The default `runc` handler with a pause container per pod (pods get pinned namespaces and
/// no process by default, #16), for `Daemon::start_with` in tests of the pause itself.
#[allow(dead_code)]
pub const PAUSE_SANDBOX: &str = "[runtimes.runc]\nsandbox = \"pause\"\n";

/// A handler `runc-shim` running Debian's containerd-shim-runc-v2 (#13), for `Daemon::start_with`.
#[allow(dead_code)] // not every test binary runs shim pods
pub const RUNC_SHIM_HANDLER: &str =
    "[runtimes.runc-shim]\ntype = \"shim-v2\"\nshim = \"containerd-shim-runc-v2\"\n";

/// RunPodSandbox of `config` on the `runc-shim` handler; the pod's id.
#[allow(dead_code)]
pub async fn run_on_runc_shim(d: &Daemon, c: &mut Client, config: PodSandboxConfig) -> String {
    c.run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: "runc-shim".into(),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", d.log_text()))
    .into_inner()
    .pod_sandbox_id
}

pub async fn list(c: &mut Client) -> Vec<cri_api::v1::PodSandbox> {
    let req = cri_api::v1::ListPodSandboxRequest::default();
    c.list_pod_sandbox(req).await.unwrap().into_inner().items
}

/// RELIABILITY.md C3: starts RunPodSandbox for `config` and, as soon as the sandbox is listed, fires
/// 10 Stops and a Remove at it. None may fail; afterwards the sandbox is gone (a Run that finished
/// after the Remove is removed once more).
pub async fn race_teardown_against_run(c: &Client, config: PodSandboxConfig) {
    let name = config.metadata.as_ref().unwrap().name.clone();
    let mut runner = c.clone();
    let run = tokio::spawn(async move {
        let req = RunPodSandboxRequest {
            config: Some(config),
            runtime_handler: String::new(),
        };
        runner.run_pod_sandbox(req).await
    });
    let mut lister = c.clone();
    let id = loop {
        let pods = list(&mut lister).await;
        if let Some(p) = pods
            .iter()
            .find(|p| p.metadata.as_ref().unwrap().name == name)
        {
            break p.id.clone();
        }
        tokio::task::yield_now().await;
    };
    let mut calls = Vec::new();
    for i in 0..11 {
        let (mut c, id) = (c.clone(), id.clone());
        calls.push(tokio::spawn(async move {
            if i < 10 {
                let req = cri_api::v1::StopPodSandboxRequest { pod_sandbox_id: id };
                c.stop_pod_sandbox(req).await.map(drop)
            } else {
                let req = cri_api::v1::RemovePodSandboxRequest { pod_sandbox_id: id };
                c.remove_pod_sandbox(req).await.map(drop)
            }
        }));
    }
    for call in calls {
        call.await.unwrap().expect("Stop/Remove never fail");
    }
    let _ = run.await.unwrap(); // either outcome is fine; the end state is what matters
    let mut c = c.clone();
    let remove = cri_api::v1::RemovePodSandboxRequest {
        pod_sandbox_id: id.clone(),
    };
    c.remove_pod_sandbox(remove).await.unwrap();
    let status = cri_api::v1::PodSandboxStatusRequest {
        pod_sandbox_id: id,
        verbose: false,
    };
    assert_eq!(
        c.pod_sandbox_status(status).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
}

/// The pod's primary IP from PodSandboxStatus.
pub async fn pod_ip(c: &mut Client, id: &str) -> String {
    let req = cri_api::v1::PodSandboxStatusRequest {
        pod_sandbox_id: id.to_string(),
        verbose: false,
    };
    let status = c
        .pod_sandbox_status(req)
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    status.network.unwrap().ip
}

/// One ICMP echo to `ip` (a pod address inside a netns this test created).
pub fn ping(ip: &str) -> bool {
    Command::new("ping")
        .args(["-c", "1", "-W", "2", ip])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Waits up to `timeout` for `f` to hold.
pub async fn eventually<F, Fut>(timeout: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The `crust` binary of the crust-cli crate, beside crustd in the same target directory. Cargo
/// hands a test only its own package's binaries; `cargo test --workspace` (scripts/test.sh) builds
/// crust-cli's too, as that crate has integration tests. Run alone (`cargo test -p crustd`), build
/// it first with `cargo build -p crust-cli`.
pub fn crust_cli_binary() -> PathBuf {
    let crustd = Path::new(env!("CARGO_BIN_EXE_crustd"));
    let crust = crustd.with_file_name("crust");
    assert!(
        crust.exists(),
        "{} is missing: build it with `cargo build -p crust-cli` (cargo test --workspace does)",
        crust.display()
    );
    crust
}
