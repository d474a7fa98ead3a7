//! `[runtimes.<handler>]`: what one runtime handler (a Kubernetes RuntimeClass `handler`) runs
//! pods with, and how: its type and binary, the default RunPodSandbox order for its pods, the pod
//! annotations it may see, and how privileged containers get host devices.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the handler's runtime is driven.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuntimeType {
    /// A runc-compatible CLI (runc, runsc, crun): `create`/`start`/`kill`/`delete` on a bundle.
    #[default]
    Oci,
    /// A containerd runtime v2 shim (`containerd-shim-runc-v2`, Kata's, gVisor's): one shim
    /// per pod, driven over ttrpc.
    ShimV2,
}

impl RuntimeType {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeType::Oci => "oci",
            RuntimeType::ShimV2 => "shim-v2",
        }
    }
}

/// The runtime options a `shim-v2` handler passes to its shim with every task it creates, as
/// containerd's `[...runtimes.NAME.options]`: the runc shim's `containerd.runc.v1.Options`
/// (containerd's key spelling). Unknown keys are an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShimOptions {
    /// The OCI runtime binary the shim runs (its default: `runc`).
    #[serde(rename = "BinaryName", skip_serializing_if = "String::is_empty")]
    pub binary_name: String,
    /// The runtime's `--root`; unset: `<state>/runtime/<handler>/runc`.
    #[serde(rename = "Root", skip_serializing_if = "String::is_empty")]
    pub root: String,
    #[serde(rename = "SystemdCgroup")]
    pub systemd_cgroup: bool,
    #[serde(rename = "NoPivotRoot")]
    pub no_pivot_root: bool,
    #[serde(rename = "NoNewKeyring")]
    pub no_new_keyring: bool,
    /// The cgroup the shim moves itself into.
    #[serde(rename = "ShimCgroup", skip_serializing_if = "String::is_empty")]
    pub shim_cgroup: String,
    #[serde(rename = "IoUid")]
    pub io_uid: u32,
    #[serde(rename = "IoGid")]
    pub io_gid: u32,
    #[serde(rename = "CriuImagePath", skip_serializing_if = "String::is_empty")]
    pub criu_image_path: String,
    #[serde(rename = "CriuWorkPath", skip_serializing_if = "String::is_empty")]
    pub criu_work_path: String,
}

/// When a pod's CNI ADD runs relative to the start of its sandbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NetworkSetup {
    /// Start the sandbox, then set up its network (the seed's default: VM and passthrough
    /// runtimes whose network plugins need a running pod).
    #[default]
    AfterStart,
    /// Set up the network, then create and start the sandbox (runtimes that copy the netns
    /// configuration when their sandbox starts, such as gVisor).
    BeforeStart,
}

impl NetworkSetup {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkSetup::AfterStart => "after-start",
            NetworkSetup::BeforeStart => "before-start",
        }
    }
}

/// What holds a pod's namespaces (`sandbox = ...`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// crustd creates and pins the pod's network, IPC and UTS namespaces itself (bind mounts
    /// under the pod's state dir); no process runs for the pod (CRI-O's `drop_infra_ctr`). Pods
    /// whose containers share a PID namespace still get a pause, which that namespace needs.
    Pinned,
    /// A pause container holds the pod's namespaces (containerd's and iSulad's sandbox).
    Pause,
}

/// One runtime handler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    #[serde(rename = "type")]
    pub kind: RuntimeType,
    /// The OCI runtime binary, looked up on PATH when not absolute; unset: the handler's name
    /// (as CRI-O does), so `[runtimes.runsc]` alone runs `runsc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// The runtime's `--root` (its state dir); unset: `<state>/runtime/<handler>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root: Option<PathBuf>,
    /// Global arguments put before every command, e.g. `["--platform=ptrace"]` for runsc.
    pub runtime_args: Vec<String>,
    /// The default RunPodSandbox order of this handler's pods; the pod annotation
    /// `cri.sandbox.network.setup.v2` overrides it per pod.
    pub network_setup: NetworkSetup,
    /// Prefixes of the pod annotations passed to the runtime in the OCI specs (a trailing `*` is
    /// allowed, as containerd writes them); crust's own `io.kubernetes.cri.*` annotations always
    /// are. Empty: none of the pod's own.
    pub pod_annotations: Vec<String>,
    /// Privileged containers get the device cgroup opened but none of the host's device nodes
    /// (for VM runtimes, where host devices mean nothing inside the guest).
    pub privileged_without_host_devices: bool,
    /// What holds the pods' namespaces. Unset: `pinned` for `oci` handlers, except runsc (gVisor
    /// builds its sandbox from the pause container) and `shim-v2` ones (the shim's sandbox task
    /// is the pause).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxMode>,
    /// `shim-v2` only: the shim binary (`containerd-shim-runc-v2`, looked up on PATH, or a path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shim: Option<PathBuf>,
    /// `shim-v2` only: the runtime options given to the shim.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub options: Option<ShimOptions>,
}

impl RuntimeConfig {
    /// The built-in `runc` handler.
    pub fn runc() -> Self {
        RuntimeConfig {
            path: Some(PathBuf::from("runc")),
            ..Default::default()
        }
    }

    /// The binary to run for `handler` (not yet looked up on PATH).
    pub fn binary(&self, handler: &str) -> PathBuf {
        self.path.clone().unwrap_or_else(|| PathBuf::from(handler))
    }

    /// What holds the namespaces of this handler's pods (see [`RuntimeConfig::sandbox`]).
    pub fn sandbox_mode(&self, handler: &str) -> SandboxMode {
        if let Some(mode) = self.sandbox {
            return mode;
        }
        let runsc = self.binary(handler).file_name() == Some(std::ffi::OsStr::new("runsc"));
        match self.kind {
            RuntimeType::Oci if !runsc => SandboxMode::Pinned,
            _ => SandboxMode::Pause,
        }
    }

    /// Whether the pod annotation `key` may be passed to this handler's runtime.
    pub fn passes_annotation(&self, key: &str) -> bool {
        self.pod_annotations
            .iter()
            .any(|prefix| key.starts_with(prefix.strip_suffix('*').unwrap_or(prefix)))
    }

    /// Problems a handler's table can have that the parser does not see.
    pub fn check(&self, handler: &str) -> Result<(), String> {
        if handler.is_empty() || handler.contains(['/', '\0']) || handler.starts_with('.') {
            return Err("a handler name must be a plain, non-empty name".into());
        }
        if self.path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            return Err("path is empty (leave it out to run the handler's name)".into());
        }
        if self.root.as_ref().is_some_and(|p| !p.is_absolute()) {
            return Err("root must be an absolute path".into());
        }
        self.check_type()?;
        if let Some(bad) = self.pod_annotations.iter().find(|p| {
            let p = p.strip_suffix('*').unwrap_or(p);
            p.is_empty() || p.contains('*')
        }) {
            return Err(format!(
                "pod_annotations entry {bad:?}: a non-empty prefix, optionally ending in *"
            ));
        }
        Ok(())
    }
}

impl RuntimeConfig {
    /// The keys that belong to one type only.
    fn check_type(&self) -> Result<(), String> {
        match self.kind {
            RuntimeType::Oci if self.shim.is_some() || self.options.is_some() => {
                Err("shim and options belong to type = \"shim-v2\"".into())
            }
            RuntimeType::ShimV2 if self.sandbox == Some(SandboxMode::Pinned) => Err(
                "sandbox = \"pinned\" needs type = \"oci\": a shim-v2 sandbox is the shim's task"
                    .into(),
            ),
            RuntimeType::ShimV2 if self.path.is_some() || !self.runtime_args.is_empty() => Err(
                "a shim-v2 handler runs its shim: use shim and options, not path or runtime_args"
                    .into(),
            ),
            RuntimeType::ShimV2 => match &self.shim {
                None => {
                    Err("type = \"shim-v2\" needs shim (e.g. \"containerd-shim-runc-v2\")".into())
                }
                Some(p) if p.as_os_str().is_empty() => Err("shim is empty".into()),
                Some(_) => Ok(()),
            },
            RuntimeType::Oci => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_mode_defaults_to_pinned_for_oci_but_not_runsc_or_shims() {
        assert_eq!(
            RuntimeConfig::runc().sandbox_mode("runc"),
            SandboxMode::Pinned
        );
        let runsc = RuntimeConfig::default();
        assert_eq!(runsc.sandbox_mode("runsc"), SandboxMode::Pause);
        let runsc_path = RuntimeConfig {
            path: Some("/usr/bin/runsc".into()),
            ..Default::default()
        };
        assert_eq!(runsc_path.sandbox_mode("gvisor"), SandboxMode::Pause);
        let pause = RuntimeConfig {
            sandbox: Some(SandboxMode::Pause),
            ..RuntimeConfig::runc()
        };
        assert_eq!(pause.sandbox_mode("runc"), SandboxMode::Pause);
        let shim = RuntimeConfig {
            kind: RuntimeType::ShimV2,
            shim: Some("containerd-shim-runc-v2".into()),
            ..Default::default()
        };
        assert_eq!(shim.sandbox_mode("runc-shim"), SandboxMode::Pause);
        let pinned_shim = RuntimeConfig {
            sandbox: Some(SandboxMode::Pinned),
            ..shim
        };
        assert!(pinned_shim.check("runc-shim").is_err());
    }

    #[test]
    fn annotation_prefixes_match_with_or_without_a_star() {
        let rt = RuntimeConfig {
            pod_annotations: vec!["io.katacontainers.*".into(), "dev.gvisor.".into()],
            ..Default::default()
        };
        assert!(rt.passes_annotation("io.katacontainers.config.hypervisor.kernel"));
        assert!(rt.passes_annotation("dev.gvisor.spec.mount.x"));
        assert!(!rt.passes_annotation("example.com/other"));
        assert!(!RuntimeConfig::runc().passes_annotation("anything"));
    }

    #[test]
    fn checks_catch_what_the_parser_cannot() {
        let ok = RuntimeConfig::default();
        assert!(ok.check("runsc").is_ok());
        assert!(ok.check("../x").is_err());
        assert!(ok.check("").is_err());
        let star = RuntimeConfig {
            pod_annotations: vec!["*".into()],
            ..Default::default()
        };
        assert!(star.check("k").is_err());
        let relative = RuntimeConfig {
            root: Some(PathBuf::from("runsc-root")),
            ..Default::default()
        };
        assert!(relative.check("k").is_err());
    }

    #[test]
    fn shim_v2_tables_need_a_shim_and_no_cli_keys() {
        let table = |text: &str| toml::from_str::<RuntimeConfig>(text);
        let ok = table("type = \"shim-v2\"\nshim = \"containerd-shim-runc-v2\"\n[options]\nSystemdCgroup = false\nBinaryName = \"runc\"\n").unwrap();
        assert_eq!(ok.kind, RuntimeType::ShimV2);
        assert_eq!(ok.options.as_ref().unwrap().binary_name, "runc");
        assert!(ok.check("runc-shim").is_ok());
        assert!(table("type = \"shim-v2\"\n").unwrap().check("s").is_err());
        let with_path = table("type = \"shim-v2\"\nshim = \"x\"\npath = \"runc\"\n").unwrap();
        assert!(with_path.check("s").is_err());
        assert!(table("shim = \"x\"\n").unwrap().check("s").is_err());
        assert!(table("type = \"shim-v2\"\nshim = \"x\"\n[options]\nBogus = 1\n").is_err());
        assert!(table("type = \"kata\"\n").is_err());
    }

    #[test]
    fn the_handler_name_is_the_default_binary() {
        assert_eq!(
            RuntimeConfig::default().binary("runsc"),
            PathBuf::from("runsc")
        );
        assert_eq!(RuntimeConfig::runc().binary("other"), PathBuf::from("runc"));
    }
}
