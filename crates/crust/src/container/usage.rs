//! Resource usage samples of containers and pods (cgroups, writable layer) with the CPU rate
//! between successive samples, for the stats and metrics RPCs. Blocking reads.

use super::{manager::ContainerManager, record::ContainerRecord, stats};
use crate::{events::now_ns, sandbox::record::SandboxRecord};

/// A usage sample of a container or pod.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    pub timestamp_ns: i64,
    pub cgroup: stats::CgroupUsage,
    /// CPU use since the previous sample, in nanocores.
    pub nano_cores: Option<u64>,
    /// Bytes and inodes of the writable layer (containers).
    pub writable: Option<(u64, u64)>,
}

impl ContainerManager {
    /// CPU rate since the last sample of `key` (none on the first one).
    fn nano_cores(&self, key: &str, now: i64, cpu_ns: Option<u64>) -> Option<u64> {
        let cpu = cpu_ns?;
        let mut samples = self.cpu_samples.lock().unwrap_or_else(|p| p.into_inner());
        let previous = samples.insert(key.to_string(), (now, cpu));
        let (then, before) = previous?;
        let elapsed = u64::try_from(now - then).ok().filter(|e| *e > 0)?;
        Some((cpu.saturating_sub(before) as u128 * 1_000_000_000 / elapsed as u128) as u64)
    }

    pub(super) fn forget_cpu_sample(&self, key: &str) {
        self.cpu_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// The usage of container `record` (cgroup, writable layer); blocking reads.
    pub fn container_usage(&self, record: &ContainerRecord) -> Usage {
        let timestamp_ns = now_ns();
        let cgroup = stats::cgroup_usage(&record.cgroups_path);
        let upper = self.dir(&record.id).join("upper");
        Usage {
            timestamp_ns,
            cgroup,
            nano_cores: self.nano_cores(&record.id, timestamp_ns, cgroup.cpu_ns),
            writable: upper.is_dir().then(|| crate::image::store::usage(&upper)),
        }
    }

    /// The usage of pod `pod`: its pause plus its containers; blocking reads.
    pub fn pod_usage(&self, pod: &SandboxRecord) -> Usage {
        let timestamp_ns = now_ns();
        let mut cgroup = self
            .of_pod(&pod.id)
            .iter()
            .map(|c| stats::cgroup_usage(&c.snapshot().cgroups_path))
            .fold(
                stats::cgroup_usage(&pod.cgroups_path),
                stats::CgroupUsage::plus,
            );
        // The pod's stall times are its own cgroup's (the parent of the pause's and containers').
        let parent = pod.cgroups_path.rsplit_once('/').map_or("", |(p, _)| p);
        cgroup.pressure = stats::pressure(parent);
        Usage {
            timestamp_ns,
            cgroup,
            nano_cores: self.nano_cores(&pod.id, timestamp_ns, cgroup.cpu_ns),
            writable: None,
        }
    }
}
