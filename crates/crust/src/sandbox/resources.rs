//! UpdatePodSandboxResources (in-place pod resize, KEP-1287): kubelet owns the pod cgroup and
//! resizes it itself; it tells the runtime the pod's new overhead and resources so a runtime
//! that owns something they limit (a VM, a shim-v2 sandbox) can apply them. crust keeps them in
//! the record (verbose PodSandboxStatus shows them, across restarts) and hands them to the
//! sandbox controller.

use cri_api::v1::{LinuxContainerResources, UpdatePodSandboxResourcesRequest};

use super::{manager::SandboxManager, SandboxError};

impl SandboxManager {
    /// Records and applies the pod's new resources; an unknown pod is NotFound.
    pub async fn update_resources(
        &self,
        key: &str,
        overhead: Option<LinuxContainerResources>,
        resources: Option<LinuxContainerResources>,
    ) -> Result<(), SandboxError> {
        let sandbox = self.store().lookup(key)?;
        let _op = sandbox.lock_op().await;
        let pod_resources = UpdatePodSandboxResourcesRequest {
            pod_sandbox_id: String::new(),
            overhead,
            resources,
        };
        self.store()
            .update(&sandbox, |r| r.pod_resources = pod_resources)
            .await?;
        self.controller()
            .update_resources(&sandbox.snapshot())
            .await?;
        tracing::info!(id = %sandbox.id, "pod resources updated");
        Ok(())
    }
}
