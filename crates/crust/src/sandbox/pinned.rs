//! Pinned-namespace sandboxes (CRI-O's `drop_infra_ctr`): no process runs for the pod. crustd
//! makes the pod's IPC and UTS namespaces itself on a dedicated thread (unshare changes the
//! calling thread for good), sets the hostname and the pod's sysctls in them (the `net.*` ones
//! are written in the netns as it is made), and bind-mounts each onto a file under the pod's
//! state dir; containers join those paths. [`PinnedController`] is the [`SandboxController`] for
//! them and [`ByKind`] picks it or the pause's per record.
//!
//! ```text
//!   create: unshare(IPC|UTS) -> sethostname -> IPC/UTS sysctls -> pin ns/ipc, ns/uts
//!           (after the netns, which is made with the net.* sysctls)
//!   start:  nothing (the namespaces exist and are pinned)
//!   stop:   unpin (the kernel frees the namespaces once no container holds them)
//!   delete: unpin and unlink
//! ```

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use async_trait::async_trait;
use nix::{
    mount::{mount, MsFlags},
    sched::{unshare, CloneFlags},
};

use super::{
    controller::{blocking, ControllerError, SandboxController},
    files::SandboxPaths,
    record::{PauseProcess, SandboxKind, SandboxRecord},
    validate::{sysctl_namespace, SysctlNamespace},
};
use crate::{
    network::netns,
    oci_runtime::monitor::{ExitWatch, Process},
};

/// What one pinned sandbox's creation makes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PinPlan {
    /// Where to pin a new IPC namespace; `None`: the pod shares the node's.
    pub ipc: Option<PathBuf>,
    /// Where to pin a new UTS namespace; `None`: the pod shares the node's (host network).
    pub uts: Option<PathBuf>,
    /// Set in the new UTS namespace.
    pub hostname: Option<String>,
    /// The pod's IPC and UTS sysctls; each must belong to a namespace made here (the `net.*`
    /// ones are written when the netns is made, see [`net_sysctls`]).
    pub sysctls: Vec<(String, String)>,
}

impl PinPlan {
    /// The plan for `record` (a pinned kind).
    pub fn of(record: &SandboxRecord) -> PinPlan {
        let (ipc, uts) = match &record.sandbox {
            SandboxKind::Pinned { ipc, uts } => (ipc.clone(), uts.clone()),
            SandboxKind::Pause => (None, None),
        };
        let config = &record.config;
        let hostname =
            (uts.is_some() && !config.hostname.is_empty()).then(|| config.hostname.clone());
        let sysctls = pod_sysctls(record)
            .into_iter()
            .filter(|(name, _)| sysctl_namespace(name) != Some(SysctlNamespace::Net))
            .collect();
        PinPlan {
            ipc,
            uts,
            hostname,
            sysctls,
        }
    }
}

fn pod_sysctls(record: &SandboxRecord) -> Vec<(String, String)> {
    let mut sysctls: Vec<(String, String)> = record
        .config
        .linux
        .as_ref()
        .map(|l| l.sysctls.clone().into_iter().collect())
        .unwrap_or_default();
    sysctls.sort();
    sysctls
}

/// The `net.*` sysctls of a pinned sandbox, written in its netns when the netns is made (no
/// process enters it for them later).
pub fn net_sysctls(record: &SandboxRecord) -> Vec<(String, String)> {
    if !record.sandbox.is_pinned() {
        return Vec::new(); // the pause's runtime writes them
    }
    pod_sysctls(record)
        .into_iter()
        .filter(|(name, _)| sysctl_namespace(name) == Some(SysctlNamespace::Net))
        .collect()
}

/// Makes and pins the namespaces of `plan` on a dedicated thread. On error some pins may exist:
/// [`remove`] them (the sandbox's undo does).
pub async fn create(plan: PinPlan) -> io::Result<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("crust-pin".into())
        .spawn(move || {
            let _ = tx.send(create_on_this_thread(&plan));
        })?;
    rx.await
        .unwrap_or_else(|_| Err(io::Error::other("namespace thread died")))
}

fn create_on_this_thread(plan: &PinPlan) -> io::Result<()> {
    let mut flags = CloneFlags::empty();
    if plan.ipc.is_some() {
        flags |= CloneFlags::CLONE_NEWIPC;
    }
    if plan.uts.is_some() {
        flags |= CloneFlags::CLONE_NEWUTS;
    }
    if !flags.is_empty() {
        unshare(flags)?;
    }
    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name)?;
    }
    for (name, value) in &plan.sysctls {
        let made = match sysctl_namespace(name) {
            Some(SysctlNamespace::Ipc) => plan.ipc.is_some(),
            Some(SysctlNamespace::Uts) => plan.uts.is_some(),
            _ => false,
        };
        if !made {
            return Err(not_ours(name));
        }
        crate::sysctl::write(name, value)?;
    }
    for (kind, path) in [("ipc", &plan.ipc), ("uts", &plan.uts)] {
        if let Some(path) = path {
            pin(kind, path)?;
        }
    }
    Ok(())
}

fn not_ours(name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("sysctl {name} is not in a namespace of the pod's own"),
    )
}

/// Bind-mounts this thread's `kind` namespace onto `path` (a new file).
fn pin(kind: &str, path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let own = format!("/proc/self/task/{}/ns/{kind}", nix::unistd::gettid());
    let mounted = mount(
        Some(own.as_str()),
        path,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    );
    if mounted.is_err() {
        let _ = std::fs::remove_file(path);
    }
    Ok(mounted?)
}

/// True when every pin of `kind`, and the pod's netns (if it has one), is still an nsfs mount.
pub fn intact(kind: &SandboxKind, netns: Option<&Path>) -> bool {
    let pins = kind.pins();
    pins.iter()
        .map(PathBuf::as_path)
        .chain(netns)
        .all(netns::is_pinned)
}

/// Unpins the pins (the namespaces go once no container holds them); idempotent.
pub fn unpin(pins: &[PathBuf]) -> io::Result<()> {
    pins.iter().try_for_each(|p| netns::unpin(p))
}

/// Unpins and unlinks the pins, then their directory when empty; idempotent.
pub fn remove(pins: &[PathBuf]) -> io::Result<()> {
    for pin in pins {
        netns::remove(pin)?;
    }
    if let Some(dir) = pins.first().and_then(|p| p.parent()) {
        match std::fs::remove_dir(dir) {
            Err(e)
                if e.kind() != io::ErrorKind::NotFound
                    && e.raw_os_error() != Some(libc::ENOTEMPTY) =>
            {
                return Err(e)
            }
            _ => {}
        }
    }
    Ok(())
}

/// Where a pinned sandbox's namespace of `kind` (`ipc`, `uts`) lives.
pub fn pin_path(paths: &SandboxPaths, kind: &str) -> PathBuf {
    paths.state_dir.join("ns").join(kind)
}

/// The [`SandboxController`] of pinned sandboxes.
#[derive(Debug, Default)]
pub struct PinnedController;

#[async_trait]
impl SandboxController for PinnedController {
    async fn create(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
        _netns: Option<&Path>, // its sysctls were written as it was made
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError> {
        let plan = PinPlan::of(record);
        create(plan).await.map_err(|source| ControllerError::Io {
            what: "pin the pod's namespaces under",
            path: paths.state_dir.join("ns"),
            source,
        })?;
        tracing::debug!(id = %record.id, "pod namespaces pinned");
        Ok(None)
    }

    async fn start(&self, _record: &SandboxRecord) -> Result<(), ControllerError> {
        Ok(())
    }

    async fn reattach(
        &self,
        _record: &SandboxRecord,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError> {
        Ok(None)
    }

    fn watch(&self, _record: &SandboxRecord, _process: Option<Process>) -> Option<ExitWatch> {
        None
    }

    async fn stop(
        &self,
        record: &SandboxRecord,
        _watch: Option<&ExitWatch>,
    ) -> Result<(), ControllerError> {
        let pins = record.sandbox.pins();
        let path = pins.first().cloned().unwrap_or_default();
        blocking("unpin", path, move || unpin(&pins)).await
    }

    async fn delete(
        &self,
        record: &SandboxRecord,
        _paths: &SandboxPaths,
    ) -> Result<(), ControllerError> {
        let pins = record.sandbox.pins();
        let path = pins.first().cloned().unwrap_or_default();
        blocking("remove the pinned namespace", path, move || remove(&pins)).await
    }

    async fn force_delete(&self, _id: &str, paths: &SandboxPaths) -> Result<(), ControllerError> {
        let pins = vec![pin_path(paths, "ipc"), pin_path(paths, "uts")];
        let path = paths.state_dir.join("ns");
        blocking("remove the pinned namespace", path, move || remove(&pins)).await
    }
}

/// The controller of each record's kind: the pause's (for pause sandboxes) or the pinned one.
#[derive(Debug)]
pub struct ByKind {
    pause: Arc<dyn SandboxController>,
    pinned: PinnedController,
}

impl ByKind {
    pub fn new(pause: Arc<dyn SandboxController>) -> Self {
        ByKind {
            pause,
            pinned: PinnedController,
        }
    }

    fn of(&self, record: &SandboxRecord) -> &dyn SandboxController {
        match record.sandbox {
            SandboxKind::Pinned { .. } => &self.pinned,
            SandboxKind::Pause => self.pause.as_ref(),
        }
    }
}

#[async_trait]
impl SandboxController for ByKind {
    async fn create(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
        netns: Option<&Path>,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError> {
        self.of(record).create(record, paths, netns).await
    }

    async fn start(&self, record: &SandboxRecord) -> Result<(), ControllerError> {
        self.of(record).start(record).await
    }

    async fn reattach(
        &self,
        record: &SandboxRecord,
    ) -> Result<Option<(PauseProcess, ExitWatch)>, ControllerError> {
        self.of(record).reattach(record).await
    }

    fn watch(&self, record: &SandboxRecord, process: Option<Process>) -> Option<ExitWatch> {
        self.of(record).watch(record, process)
    }

    async fn stop(
        &self,
        record: &SandboxRecord,
        watch: Option<&ExitWatch>,
    ) -> Result<(), ControllerError> {
        self.of(record).stop(record, watch).await
    }

    async fn delete(
        &self,
        record: &SandboxRecord,
        paths: &SandboxPaths,
    ) -> Result<(), ControllerError> {
        self.of(record).delete(record, paths).await
    }

    /// Both kinds: an unreadable record does not say which it was.
    async fn force_delete(&self, id: &str, paths: &SandboxPaths) -> Result<(), ControllerError> {
        self.pinned.force_delete(id, paths).await?;
        self.pause.force_delete(id, paths).await
    }

    async fn update_resources(&self, record: &SandboxRecord) -> Result<(), ControllerError> {
        self.of(record).update_resources(record).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pins_new_ipc_and_uts_namespaces_with_hostname_and_sysctls() {
        let dir = tempfile::tempdir().unwrap();
        let ipc = dir.path().join("ns/ipc");
        let uts = dir.path().join("ns/uts");
        let plan = PinPlan {
            ipc: Some(ipc.clone()),
            uts: Some(uts.clone()),
            hostname: Some("pinned-test".into()),
            sysctls: vec![("kernel.shm_rmid_forced".into(), "1".into())],
        };
        create(plan).await.unwrap();
        assert!(netns::is_pinned(&ipc) && netns::is_pinned(&uts));
        let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
        assert_ne!(ino(&ipc), ino(Path::new("/proc/self/ns/ipc")));
        assert_ne!(ino(&uts), ino(Path::new("/proc/self/ns/uts")));
        let run = |ns: &str, args: &[&str]| {
            let out = std::process::Command::new("nsenter")
                .arg(ns)
                .args(args)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        assert_eq!(
            run(&format!("--uts={}", uts.display()), &["hostname"]),
            "pinned-test"
        );
        assert_eq!(
            run(
                &format!("--ipc={}", ipc.display()),
                &["cat", "/proc/sys/kernel/shm_rmid_forced"]
            ),
            "1"
        );
        let kind = SandboxKind::Pinned {
            ipc: Some(ipc.clone()),
            uts: Some(uts.clone()),
        };
        assert!(intact(&kind, None));
        let pins = [ipc.clone(), uts.clone()];
        unpin(&pins).unwrap();
        assert!(!intact(&kind, None) && ipc.exists());
        remove(&pins).unwrap();
        remove(&pins).unwrap();
        assert!(!ipc.exists() && !dir.path().join("ns").exists());
    }

    #[tokio::test]
    async fn a_sysctl_of_a_namespace_not_made_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let plan = PinPlan {
            uts: Some(dir.path().join("ns/uts")),
            sysctls: vec![("kernel.shmmni".into(), "1024".into())],
            ..Default::default()
        };
        let err = create(plan).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let plan = PinPlan {
            sysctls: vec![("net.ipv4.ip_forward".into(), "1".into())],
            ..Default::default()
        };
        assert!(
            create(plan).await.is_err(),
            "no netns: the node's is never written"
        );
    }
}
