//! What a CreateContainer names besides its image: the container whose pid namespace it joins
//! (`namespace_options.pid = TARGET`, which must be a running container of the same pod) and the
//! images it mounts as image volumes.

use cri_api::v1::ContainerConfig;

use super::{
    host_facts::ImageVolume, manager::ContainerManager, state::ContainerState, validate::invalid,
    ContainerError,
};
use crate::{image::rootfs, sandbox::record::SandboxRecord};

impl ContainerManager {
    /// The image volumes of `config` (its mounts naming an image): their snapshots, and the
    /// image ids (kept in the record so RemoveImage refuses them). A missing image is NotFound.
    pub(super) fn image_volumes(
        &self,
        config: &ContainerConfig,
    ) -> Result<(Vec<ImageVolume>, Vec<String>), ContainerError> {
        let mut volumes = Vec::new();
        let mut ids = Vec::new();
        for (mount, m) in config.mounts.iter().enumerate() {
            let Some(name) = m
                .image
                .as_ref()
                .map(|i| i.image.as_str())
                .filter(|i| !i.is_empty())
            else {
                continue;
            };
            let missing = || ContainerError::ImageNotFound(name.to_string());
            let image = self.images.find(name).ok_or_else(missing)?;
            let lowers = rootfs::ImageRootfs::of(&self.images, &image)
                .ok_or_else(missing)?
                .lowers;
            volumes.push(ImageVolume { mount, lowers });
            ids.push(image.id);
        }
        Ok((volumes, ids))
    }

    /// For `namespace_options.pid = TARGET`: the target, which must be a running container of
    /// the same pod (an unknown one is NotFound, another pod's InvalidArgument, a stopped one
    /// FailedPrecondition).
    pub(super) fn pid_target(
        &self,
        pod: &SandboxRecord,
        config: &ContainerConfig,
    ) -> Result<Option<String>, ContainerError> {
        let field = "config.linux.security_context.namespace_options.target_id";
        let Some(ns) = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .filter(|ns| ns.pid == cri_api::v1::NamespaceMode::Target as i32)
        else {
            return Ok(None);
        };
        let target = match self.containers.lookup(&ns.target_id) {
            Ok(c) => c.snapshot(),
            Err(crate::store::LookupError::NotFound(_)) => {
                return Err(ContainerError::NotFound {
                    what: "pid namespace target container",
                    id: ns.target_id.clone(),
                })
            }
            Err(e) => return Err(invalid(field, e.to_string())),
        };
        if target.sandbox_id != pod.id {
            return Err(invalid(
                field,
                format!(
                    "container {} belongs to pod {}, not to pod {}: a pid namespace is shared only within a pod",
                    target.id, target.sandbox_id, pod.id
                ),
            ));
        }
        if target.state != ContainerState::Running {
            return Err(ContainerError::Precondition {
                field,
                reason: format!(
                    "container {} is {:?}; only a running container's pid namespace can be joined",
                    target.id, target.state
                ),
            });
        }
        Ok(Some(target.id))
    }

    /// The init pid of container `id` (from runc's pid file).
    pub(super) fn init_pid(&self, id: &str) -> Result<i32, ContainerError> {
        std::fs::read_to_string(self.dir(id).join("init.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ContainerError::Precondition {
                field: "config.linux.security_context.namespace_options.target_id",
                reason: format!("container {id} has no running init process"),
            })
    }
}
