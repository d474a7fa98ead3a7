//! The result cache: what was attached (config, args, capabilities, result) per container and
//! interface, so DEL can run with the same inputs after a restart. One JSON file per attachment,
//! written atomically; a corrupt file reads as absent.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One cached attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CachedAttachment {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    #[serde(rename = "ifName")]
    pub if_name: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    /// The network config list as JSON text.
    pub config: String,
    #[serde(rename = "cniArgs")]
    pub cni_args: Vec<(String, String)>,
    #[serde(rename = "capabilityArgs")]
    pub capability_args: serde_json::Map<String, Value>,
    /// The ADD result, when ADD succeeded.
    pub result: Option<Value>,
}

/// The cache directory.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Cache {
        Cache { dir: dir.into() }
    }

    fn path(&self, network: &str, container_id: &str, if_name: &str) -> PathBuf {
        self.dir
            .join(format!("{network}-{container_id}-{if_name}.json"))
    }

    /// Writes an attachment atomically (temp file, fsync, rename).
    pub fn write(&self, entry: &CachedAttachment) -> std::io::Result<()> {
        self.write_with(entry, true)
    }

    /// Writes an attachment atomically but without waiting for the disk: visible to a restarted
    /// runtime after a crash of the process, possibly lost (never torn) on a power cut. For the
    /// entry written just before ADD, whose only job is to let DEL use the same config after a
    /// crash mid-ADD; the entry with the result is written with [`Cache::write`].
    pub fn write_unsynced(&self, entry: &CachedAttachment) -> std::io::Result<()> {
        self.write_with(entry, false)
    }

    fn write_with(&self, entry: &CachedAttachment, sync: bool) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(&entry.network_name, &entry.container_id, &entry.if_name);
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec(entry).map_err(std::io::Error::other)?)?;
        if sync {
            file.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
    }

    /// Reads an attachment; missing or corrupt reads as `None` (corruption is logged).
    pub fn read(
        &self,
        network: &str,
        container_id: &str,
        if_name: &str,
    ) -> Option<CachedAttachment> {
        let path = self.path(network, container_id, if_name);
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(entry) => Some(entry),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "corrupt CNI cache entry treated as absent");
                None
            }
        }
    }

    /// Removes an attachment and any temp file of it a crash mid-write left (idempotent).
    pub fn remove(&self, network: &str, container_id: &str, if_name: &str) -> std::io::Result<()> {
        let path = self.path(network, container_id, if_name);
        for file in [path.with_extension("tmp"), path] {
            match std::fs::remove_file(file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes every temp file in the cache (a write cut between create and rename leaves one);
    /// returns how many went. Call at start, before any write.
    pub fn sweep_temp(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "tmp"))
            .filter(|p| std::fs::remove_file(p).is_ok())
            .count()
    }

    /// The readable attachments of `container_id` (corrupt ones are skipped and logged).
    pub fn attachments_for(&self, container_id: &str) -> Vec<CachedAttachment> {
        self.entries_for(container_id)
            .iter()
            .filter_map(|path| match std::fs::read(path).map(|b| serde_json::from_slice(&b)) {
                Ok(Ok(entry)) => Some(entry),
                _ => {
                    tracing::warn!(path = %path.display(), "unreadable CNI cache entry skipped");
                    None
                }
            })
            .collect()
    }

    /// Entries for `container_id` (any network/interface), for leak checks and recovery.
    pub fn entries_for(&self, container_id: &str) -> Vec<PathBuf> {
        let needle = format!("-{container_id}-");
        std::fs::read_dir(&self.dir)
            .map(|it| {
                it.flatten()
                    .map(|e| e.path())
                    .filter(|p| file_name_has(p, &needle))
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn file_name_has(path: &Path, needle: &str) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_corrupt_and_remove() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("c"));
        let entry = CachedAttachment {
            kind: "cniCacheV1".into(),
            container_id: "abc".into(),
            if_name: "eth0".into(),
            network_name: "net".into(),
            config: "{}".into(),
            cni_args: vec![("K8S_POD_NAME".into(), "p".into())],
            capability_args: Default::default(),
            result: None,
        };
        cache.write(&entry).unwrap();
        assert_eq!(cache.read("net", "abc", "eth0"), Some(entry));
        assert_eq!(cache.entries_for("abc").len(), 1);
        std::fs::write(dir.path().join("c/net-abc-eth0.json"), b"{trunc").unwrap();
        assert_eq!(cache.read("net", "abc", "eth0"), None);
        cache.remove("net", "abc", "eth0").unwrap();
        cache.remove("net", "abc", "eth0").unwrap();
        assert!(cache.entries_for("abc").is_empty());
    }

    #[test]
    fn temp_files_of_a_cut_write_go_with_the_entry_and_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path());
        // What a kill between create and rename leaves.
        std::fs::write(dir.path().join("net-abc-eth0.tmp"), b"{\"kind\"").unwrap();
        std::fs::write(dir.path().join("net-def-eth0.tmp"), b"").unwrap();
        std::fs::write(dir.path().join("net-def-eth0.json"), b"{}").unwrap();
        cache.remove("net", "abc", "eth0").unwrap();
        assert!(
            cache.entries_for("abc").is_empty(),
            "the pod's temp entry went with it"
        );
        assert_eq!(cache.sweep_temp(), 1);
        assert_eq!(cache.entries_for("def").len(), 1, "complete entries stay");
    }
}
