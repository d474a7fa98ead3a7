//! Image metadata and snapshots under `<root>/images`:
//! `metadata/<config hex>.json` (one versioned record per image: names, digests, layers, config),
//! `snapshots/<chain id hex>/fs` (one unpacked layer each, shared by every image whose layer chain
//! has that prefix), beside the content store's `content/`. Removing an image drops its names; once
//! an image has none its record goes, and [`ImageStore::gc`] deletes blobs and snapshots nothing
//! references.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{
    content::{ContentError, ContentStore},
    reference::Reference,
};
use crate::store::{load_record, write_record, RecordError};

/// Image record format version.
pub const IMAGE_RECORD_VERSION: u32 = 1;

/// Image store failures.
#[derive(Debug, thiserror::Error)]
pub enum ImageStoreError {
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ImageStoreError + '_ {
    move |source| ImageStoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One layer of an image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Digest of the (compressed) blob.
    pub digest: String,
    pub media_type: String,
    pub size: u64,
    /// Digest of the uncompressed tar.
    pub diff_id: String,
    /// Identity of the layer stack up to and including this layer.
    pub chain_id: String,
}

/// One image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The config digest (what CRI calls the image id).
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub manifest_digest: String,
    pub layers: Vec<Layer>,
    /// Compressed layers plus config, in bytes.
    pub size: u64,
    /// The image config (entrypoint, env, user, ...).
    pub config: serde_json::Value,
}

/// The chain ids of a list of diff ids (OCI image spec: ChainID(n) = sha256(ChainID(n-1) + " " + DiffID(n))).
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {diff_id}")))
            ),
        };
        out.push(next);
    }
    out
}

/// Images by id.
#[derive(Debug)]
pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    images: RwLock<BTreeMap<String, ImageRecord>>,
    leases: Arc<Mutex<BTreeMap<String, usize>>>,
}

/// Blobs and snapshots an unfinished pull is writing: [`ImageStore::gc`] leaves them alone until
/// the lease is dropped (after the image record is written, or on failure).
#[derive(Debug)]
pub struct Lease {
    held: Vec<String>,
    table: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl Lease {
    /// Protects `key` (a digest or chain id) from GC from now on.
    pub fn add(&mut self, key: &str) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        *table.entry(key.to_string()).or_default() += 1;
        self.held.push(key.to_string());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for key in self.held.drain(..) {
            if let Some(n) = table.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    table.remove(&key);
                }
            }
        }
    }
}

impl ImageStore {
    /// Opens (and loads) the store under `root`; unreadable records are reported and kept on disk.
    pub fn open(root: &Path) -> Result<ImageStore, ImageStoreError> {
        let content = ContentStore::open(&root.join("content"))?;
        for dir in [root.join("metadata"), root.join("snapshots")] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let store = ImageStore {
            root: root.to_path_buf(),
            content,
            images: RwLock::default(),
            leases: Arc::default(),
        };
        store.load()?;
        Ok(store)
    }

    fn load(&self) -> Result<(), ImageStoreError> {
        let dir = self.root.join("metadata");
        crate::store::sweep_temp(&dir);
        let mut images = self.images.write().unwrap_or_else(|p| p.into_inner());
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            match load_record::<ImageRecord>(&entry.path(), IMAGE_RECORD_VERSION) {
                Ok(record) => {
                    images.insert(record.id.clone(), record);
                }
                Err(e) => tracing::error!(error = %e, "unreadable image record kept on disk"),
            }
        }
        Ok(())
    }

    /// A new, empty lease.
    pub fn lease(&self) -> Lease {
        Lease {
            held: Vec::new(),
            table: Arc::clone(&self.leases),
        }
    }

    /// The content store.
    pub fn content(&self) -> &ContentStore {
        &self.content
    }

    /// Where the unpacked layer with `chain_id` lives (`.../fs`), and whether it is complete.
    pub fn snapshot_dir(&self, chain_id: &str) -> PathBuf {
        self.root
            .join("snapshots")
            .join(chain_id.trim_start_matches("sha256:"))
    }

    /// True when the snapshot for `chain_id` was fully unpacked.
    pub fn has_snapshot(&self, chain_id: &str) -> bool {
        self.snapshot_dir(chain_id).join(".complete").is_file()
    }

    /// Marks a snapshot complete (after its layer was unpacked into `fs/`).
    pub fn complete_snapshot(&self, chain_id: &str) -> Result<(), ImageStoreError> {
        let marker = self.snapshot_dir(chain_id).join(".complete");
        std::fs::write(&marker, b"").map_err(io(&marker))
    }

    /// Adds or updates an image; a name moves from any image that held it before.
    pub fn put(&self, record: ImageRecord) -> Result<(), ImageStoreError> {
        let mut images = self.images.write().unwrap_or_else(|p| p.into_inner());
        let mut changed = Vec::new();
        for other in images.values_mut().filter(|o| o.id != record.id) {
            let before = other.repo_tags.len();
            other.repo_tags.retain(|t| !record.repo_tags.contains(t));
            if other.repo_tags.len() != before {
                changed.push(other.clone());
            }
        }
        let merged = match images.get(&record.id) {
            Some(existing) => merge(existing, record),
            None => record,
        };
        for r in changed.iter().chain(std::iter::once(&merged)) {
            write_record(&self.record_path(&r.id), IMAGE_RECORD_VERSION, r)?;
        }
        images.insert(merged.id.clone(), merged);
        Ok(())
    }

    fn record_path(&self, id: &str) -> PathBuf {
        self.root
            .join("metadata")
            .join(format!("{}.json", id.trim_start_matches("sha256:")))
    }

    /// All images.
    pub fn list(&self) -> Vec<ImageRecord> {
        self.images
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// By id (full or `sha256:`-less, or a unique prefix of 12+ hex), tag or digest reference.
    pub fn find(&self, key: &str) -> Option<ImageRecord> {
        let images = self.images.read().unwrap_or_else(|p| p.into_inner());
        let hex = key.trim_start_matches("sha256:");
        let by_id: Vec<&ImageRecord> =
            if hex.len() >= 12 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                images
                    .values()
                    .filter(|i| i.id.trim_start_matches("sha256:").starts_with(hex))
                    .collect()
            } else {
                Vec::new()
            };
        if let [one] = by_id.as_slice() {
            return Some((*one).clone());
        }
        let normal = Reference::parse(key).ok()?.to_string();
        images
            .values()
            .find(|i| i.repo_tags.contains(&normal) || i.repo_digests.contains(&normal))
            .cloned()
    }

    /// RemoveImage: a tag removes that name (the image goes when it has none left); an id or digest
    /// removes the image. Unknown references are fine. Returns whether an image record went.
    pub fn remove(&self, key: &str) -> Result<bool, ImageStoreError> {
        let Some(image) = self.find(key) else {
            return Ok(false);
        };
        let tag = Reference::parse(key)
            .ok()
            .map(|r| r.to_string())
            .filter(|t| image.repo_tags.contains(t));
        let mut images = self.images.write().unwrap_or_else(|p| p.into_inner());
        if let Some(tag) = tag.filter(|_| image.repo_tags.len() > 1) {
            let mut kept = image.clone();
            kept.repo_tags.retain(|t| *t != tag);
            write_record(&self.record_path(&kept.id), IMAGE_RECORD_VERSION, &kept)?;
            images.insert(kept.id.clone(), kept);
            return Ok(false);
        }
        let path = self.record_path(&image.id);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&path)(e)),
            _ => {}
        }
        images.remove(&image.id);
        Ok(true)
    }

    /// Deletes blobs and snapshots that no image references (also half-unpacked snapshots).
    pub fn gc(&self) -> Result<(usize, usize), ImageStoreError> {
        // Held throughout: a pull either recorded its image before this point or still leases
        // what it wrote.
        let leased = self.leases.lock().unwrap_or_else(|p| p.into_inner());
        let images = self.list();
        let mut blobs: BTreeSet<String> = BTreeSet::new();
        let mut chains: BTreeSet<String> = BTreeSet::new();
        for image in &images {
            blobs.insert(image.manifest_digest.clone());
            blobs.insert(image.id.clone());
            for repo_digest in &image.repo_digests {
                if let Some((_, digest)) = repo_digest.rsplit_once('@') {
                    blobs.insert(digest.to_string());
                }
            }
            for layer in &image.layers {
                blobs.insert(layer.digest.clone());
                chains.insert(layer.chain_id.trim_start_matches("sha256:").to_string());
            }
        }
        let mut removed_blobs = 0;
        for digest in self
            .content
            .list()
            .into_iter()
            .filter(|d| !blobs.contains(d))
        {
            if !leased.contains_key(&digest) {
                self.content.delete(&digest)?;
                removed_blobs += 1;
            }
        }
        let mut removed_snapshots = 0;
        let dir = self.root.join("snapshots");
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let unused = !chains.contains(&name) || !path.join(".complete").is_file();
            if unused && !leased.contains_key(&format!("sha256:{name}")) {
                std::fs::remove_dir_all(&path).map_err(io(&path))?;
                removed_snapshots += 1;
            }
        }
        Ok((removed_blobs, removed_snapshots))
    }

    /// Bytes and inodes used by the image store (for ImageFsInfo).
    pub fn usage(&self) -> (u64, u64) {
        usage(&self.root)
    }

    /// The directory ImageFsInfo reports as the image filesystem.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

fn merge(existing: &ImageRecord, mut new: ImageRecord) -> ImageRecord {
    for tag in &existing.repo_tags {
        if !new.repo_tags.contains(tag) {
            new.repo_tags.push(tag.clone());
        }
    }
    for digest in &existing.repo_digests {
        if !new.repo_digests.contains(digest) {
            new.repo_digests.push(digest.clone());
        }
    }
    new
}

/// Bytes (allocated blocks) and inodes under `dir`, not following symlinks.
pub fn usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut bytes = 0;
    let mut inodes = 0;
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue; // a hard link counts once
        }
        bytes += meta.blocks() * 512;
        inodes += 1;
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(&path) {
                stack.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    (bytes, inodes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(id: &str, tags: &[&str], layers: &[(&str, &str)]) -> ImageRecord {
        let diff_ids: Vec<String> = layers.iter().map(|(_, d)| d.to_string()).collect();
        let chains = chain_ids(&diff_ids);
        ImageRecord {
            id: id.to_string(),
            repo_tags: tags.iter().map(|t| t.to_string()).collect(),
            repo_digests: Vec::new(),
            manifest_digest: format!("sha256:{}", "f".repeat(64)),
            layers: layers
                .iter()
                .zip(chains)
                .map(|((digest, diff_id), chain_id)| Layer {
                    digest: digest.to_string(),
                    media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                    size: 1,
                    diff_id: diff_id.to_string(),
                    chain_id,
                })
                .collect(),
            size: 2,
            config: serde_json::json!({}),
        }
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let ids = chain_ids(&[d('a'), d('b')]);
        assert_eq!(ids[0], d('a'));
        let expected = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{} {}", d('a'), d('b'))))
        );
        assert_eq!(ids[1], expected);
    }

    #[test]
    fn tags_move_remove_untags_and_gc_keeps_only_referenced_things() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path()).unwrap();
        let a = image(
            &d('1'),
            &["docker.io/library/a:1", "docker.io/library/a:latest"],
            &[(&d('a'), &d('b'))],
        );
        store.put(a.clone()).unwrap();
        let b = image(
            &d('2'),
            &["docker.io/library/a:latest"],
            &[(&d('a'), &d('b'))],
        );
        store.put(b).unwrap();
        assert_eq!(
            store.find("a:1").unwrap().repo_tags,
            vec!["docker.io/library/a:1"],
            "latest moved to b"
        );
        assert_eq!(store.find("a").unwrap().id, d('2'));
        assert_eq!(store.find(&d('1')[7..19]).unwrap().id, d('1'), "id prefix");
        std::fs::create_dir_all(store.snapshot_dir(&a.layers[0].chain_id).join("fs")).unwrap();
        store.complete_snapshot(&a.layers[0].chain_id).unwrap();
        std::fs::create_dir_all(store.snapshot_dir(&d('9'))).unwrap(); // orphan
        assert_eq!(
            store.gc().unwrap().1,
            1,
            "the orphan snapshot goes, the shared one stays"
        );
        assert!(store.remove("a:1").unwrap());
        assert!(!store.remove("a:1").unwrap(), "idempotent");
        assert!(store.has_snapshot(&a.layers[0].chain_id), "still used by b");
        assert!(store.remove(&d('2')).unwrap());
        store.gc().unwrap();
        assert_eq!(
            std::fs::read_dir(tmp.path().join("snapshots"))
                .unwrap()
                .count(),
            0
        );
        let reopened = ImageStore::open(tmp.path()).unwrap();
        assert!(reopened.list().is_empty());
        let (bytes, inodes) = reopened.usage();
        assert!(bytes > 0 && inodes > 0);
    }

    #[test]
    fn records_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path()).unwrap();
        store
            .put(image(
                &d('3'),
                &["127.0.0.1:5000/x:v1"],
                &[(&d('c'), &d('e'))],
            ))
            .unwrap();
        std::fs::write(tmp.path().join("metadata/broken.json"), b"{").unwrap();
        let reopened = ImageStore::open(tmp.path()).unwrap();
        assert_eq!(reopened.list().len(), 1);
        assert!(
            tmp.path().join("metadata/broken.json").exists(),
            "unreadable records are kept"
        );
    }
}
