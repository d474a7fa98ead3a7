//! `crust import`: images from an OCI image layout archive (a tar holding `oci-layout`,
//! `index.json` and `blobs/sha256/<hex>`), for nodes without a registry. The archive is extracted
//! (path-safe: nothing but those names) into a scratch dir, then each image of `index.json` goes
//! through the same install path as a pull, with the layout as its blob source.

use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use tokio::io::AsyncReadExt as _;

use super::{
    content::Writer,
    manifest::{self, Descriptor},
    pull::{BlobSource, PullError, Pulled, Puller},
    reference::Reference,
    registry::{Fetched, RegistryError},
};

/// Annotation containerd writes with the full image name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI annotation: a tag, or (as skopeo writes it) a full reference.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Why an archive cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("not an OCI image layout archive: {0}")]
    Layout(String),
    #[error("archive entry {0:?} is not part of an OCI image layout")]
    Entry(String),
    #[error("reading the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Pull(#[from] PullError),
}

/// Extracts the layout entries of `archive` into `dir` (which must exist).
pub fn extract(archive: &Path, dir: &Path) -> Result<(), ImportError> {
    let mut tar = tar::Archive::new(std::io::BufReader::new(std::fs::File::open(archive)?));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let name = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        match entry.header().entry_type() {
            tar::EntryType::Directory
                if matches!(name.as_str(), "" | "." | "blobs" | "blobs/sha256") =>
            {
                continue
            }
            tar::EntryType::Regular => {}
            _ => return Err(ImportError::Entry(name)),
        }
        let allowed = matches!(name.as_str(), "oci-layout" | "index.json")
            || name
                .strip_prefix("blobs/sha256/")
                .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()));
        if !allowed {
            return Err(ImportError::Entry(name));
        }
        let target = dir.join(&name);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        entry.unpack(&target)?;
    }
    if !dir.join("index.json").is_file() {
        return Err(ImportError::Layout("no index.json".into()));
    }
    Ok(())
}

/// An extracted image layout as a blob source.
#[derive(Debug)]
pub struct LayoutSource {
    dir: PathBuf,
}

impl LayoutSource {
    fn blob_path(&self, digest: &str) -> Result<PathBuf, RegistryError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| RegistryError::NotFound {
                url: format!("archive blob {digest}"),
            })?;
        let path = self.dir.join("blobs/sha256").join(hex);
        if !path.is_file() {
            return Err(RegistryError::NotFound {
                url: format!("archive blob {digest}"),
            });
        }
        Ok(path)
    }
}

#[async_trait::async_trait]
impl BlobSource for LayoutSource {
    async fn manifest(&self, digest: &str) -> Result<Fetched, RegistryError> {
        let path = self.blob_path(digest)?;
        let bytes = read_limited(&path).await?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(RegistryError::Digest {
                url: format!("archive blob {digest}"),
                expected: digest.to_string(),
                actual,
            });
        }
        Ok(Fetched {
            bytes,
            media_type: String::new(),
            digest: actual,
        })
    }

    async fn blob_into(&self, digest: &str, writer: &mut Writer) -> Result<u64, RegistryError> {
        let path = self.blob_path(digest)?;
        let io = |source| super::content::ContentError::Io {
            path: path.clone(),
            source,
        };
        let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(io)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
            writer.write(&buf[..n]).await?;
        }
    }

    fn error(&self, what: &str, source: RegistryError) -> PullError {
        PullError::Registry {
            reference: what.to_string(),
            endpoint: "the imported archive".to_string(),
            source,
        }
    }
}

async fn read_limited(path: &Path) -> Result<Vec<u8>, RegistryError> {
    let io = |source| super::content::ContentError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = tokio::fs::File::open(path).await.map_err(io)?;
    let mut bytes = Vec::new();
    file.take(manifest::MAX_MANIFEST_BYTES + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(io)?;
    if bytes.len() as u64 > manifest::MAX_MANIFEST_BYTES {
        return Err(RegistryError::TooLarge {
            url: path.display().to_string(),
            limit: manifest::MAX_MANIFEST_BYTES,
        });
    }
    Ok(bytes)
}

/// The name an index entry carries, when it is a full reference.
fn entry_name(desc: &serde_json::Value) -> Option<Reference> {
    let annotations = desc.get("annotations")?;
    [CONTAINERD_NAME, OCI_REF_NAME]
        .iter()
        .filter_map(|k| annotations.get(*k)?.as_str())
        .filter(|n| n.contains('/') || n.contains(':') || n.contains('@'))
        .find_map(|n| Reference::parse(n).ok())
}

impl Puller {
    /// Imports every image listed in the layout's `index.json` (extracted at `dir`).
    pub async fn import(&self, dir: &Path) -> Result<Vec<Pulled>, ImportError> {
        let source = LayoutSource {
            dir: dir.to_path_buf(),
        };
        let index: serde_json::Value = serde_json::from_slice(
            &read_limited(&dir.join("index.json"))
                .await
                .map_err(|e| ImportError::Layout(e.to_string()))?,
        )
        .map_err(|e| ImportError::Layout(format!("index.json: {e}")))?;
        let entries = index["manifests"]
            .as_array()
            .filter(|m| !m.is_empty())
            .ok_or_else(|| ImportError::Layout("index.json lists no manifests".into()))?;
        let mut imported = Vec::new();
        for entry in entries {
            let desc: Descriptor = serde_json::from_value(entry.clone())
                .map_err(|e| ImportError::Layout(format!("index.json entry: {e}")))?;
            let reference = entry_name(entry);
            let top = source
                .manifest(&desc.digest)
                .await
                .map_err(|e| source.error(&desc.digest, e))?;
            let mut lease = self.store().lease();
            let pulled = self
                .install(&source, &mut lease, reference.as_ref(), top)
                .await?;
            tracing::info!(id = %pulled.id, name = ?reference.map(|r| r.to_string()), "image imported");
            imported.push(pulled);
        }
        Ok(imported)
    }
}
