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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_handler_name_is_the_default_binary() {
        assert_eq!(
            RuntimeConfig::default().binary("runsc"),
            PathBuf::from("runsc")
        );
        assert_eq!(RuntimeConfig::runc().binary("other"), PathBuf::from("runc"));
    }
}
