//! The content store: blobs by digest under `<root>/images/content/blobs/sha256/<hex>`.
//!
//! Blobs are written through a [`Writer`] into `ingest/`, hashed while streaming (never held whole in
//! memory), and only renamed into place when size and digest match, so an interrupted or corrupted
//! download never leaves a blob behind; an abandoned writer removes its temp file.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::reference::check_digest;

/// Content store failures.
#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("invalid digest {digest:?}: {reason}")]
    InvalidDigest {
        digest: String,
        reason: &'static str,
    },
    #[error("digest algorithm of {0:?} is not supported (sha256 only)")]
    Unsupported(String),
    #[error("content does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("content of {digest} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContentError + '_ {
    move |source| ContentError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Blobs by digest.
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
}

impl ContentStore {
    /// A store under `root` (created if missing); stale ingest files from a crash are removed.
    pub fn open(root: &Path) -> Result<ContentStore, ContentError> {
        let store = ContentStore {
            root: root.to_path_buf(),
        };
        for dir in [store.blobs_dir(), store.ingest_dir()] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let ingest = store.ingest_dir();
        for entry in std::fs::read_dir(&ingest).map_err(io(&ingest))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(store)
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs").join("sha256")
    }

    fn ingest_dir(&self) -> PathBuf {
        self.root.join("ingest")
    }

    /// Where the blob `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &str) -> Result<PathBuf, ContentError> {
        let digest = check_digest(digest).map_err(|reason| ContentError::InvalidDigest {
            digest: digest.to_string(),
            reason,
        })?;
        match digest.split_once(':') {
            Some(("sha256", hex)) => Ok(self.blobs_dir().join(hex)),
            _ => Err(ContentError::Unsupported(digest)),
        }
    }

    /// True when the blob is present.
    pub fn exists(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// A writer for a blob that must hash to `digest` (and have `size` bytes, when known).
    pub async fn writer(&self, digest: &str, size: Option<u64>) -> Result<Writer, ContentError> {
        let dest = self.path(digest)?;
        let tmp =
            self.ingest_dir()
                .join(format!("{}-{}", &digest[7..], crate::store::id::new_id()));
        let file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        Ok(Writer {
            file: Some(file),
            hasher: Sha256::new(),
            written: 0,
            tmp,
            dest,
            digest: digest.to_string(),
            size,
        })
    }

    /// Deletes a blob; a missing one is fine.
    pub fn delete(&self, digest: &str) -> Result<(), ContentError> {
        let path = self.path(digest)?;
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&path)(e)),
            _ => Ok(()),
        }
    }

    /// Digests of every blob present.
    pub fn list(&self) -> Vec<String> {
        std::fs::read_dir(self.blobs_dir())
            .map(|it| {
                it.flatten()
                    .map(|e| format!("sha256:{}", e.file_name().to_string_lossy()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A blob being written. Dropping it without [`Writer::commit`] discards the data.
#[derive(Debug)]
pub struct Writer {
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    written: u64,
    tmp: PathBuf,
    dest: PathBuf,
    digest: String,
    size: Option<u64>,
}

impl Writer {
    /// Appends a chunk (refused once more than the expected size arrived).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ContentError> {
        self.written += chunk.len() as u64;
        if let Some(expected) = self.size.filter(|s| self.written > *s) {
            return Err(ContentError::SizeMismatch {
                digest: self.digest.clone(),
                expected,
                actual: self.written,
            });
        }
        self.hasher.update(chunk);
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io(&self.tmp)(std::io::Error::other("writer closed")))?;
        file.write_all(chunk).await.map_err(io(&self.tmp))
    }

    /// Verifies size and digest, syncs, and moves the blob into place; returns its path.
    pub async fn commit(mut self) -> Result<PathBuf, ContentError> {
        if let Some(expected) = self.size.filter(|s| *s != self.written) {
            return Err(ContentError::SizeMismatch {
                digest: self.digest.clone(),
                expected,
                actual: self.written,
            });
        }
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if actual != self.digest {
            return Err(ContentError::DigestMismatch {
                expected: self.digest.clone(),
                actual,
            });
        }
        if let Some(mut file) = self.file.take() {
            file.flush().await.map_err(io(&self.tmp))?;
            file.sync_all().await.map_err(io(&self.tmp))?;
        }
        tokio::fs::rename(&self.tmp, &self.dest)
            .await
            .map_err(io(&self.dest))?;
        Ok(self.dest.clone())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // After a successful commit the temp path no longer exists; otherwise discard the data.
        let _ = std::fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    #[tokio::test]
    async fn streams_verifies_and_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let data = b"hello layer".repeat(1000);
        let digest = digest_of(&data);
        let mut w = store
            .writer(&digest, Some(data.len() as u64))
            .await
            .unwrap();
        for chunk in data.chunks(777) {
            w.write(chunk).await.unwrap();
        }
        let path = w.commit().await.unwrap();
        assert_eq!(std::fs::read(path).unwrap(), data);
        assert!(store.exists(&digest));
        assert_eq!(store.list(), vec![digest.clone()]);
        store.delete(&digest).unwrap();
        store.delete(&digest).unwrap();
        assert!(!store.exists(&digest));
    }

    #[tokio::test]
    async fn corrupt_short_long_or_abandoned_content_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ContentStore::open(tmp.path()).unwrap();
        let digest = digest_of(b"good");
        let mut w = store.writer(&digest, None).await.unwrap();
        w.write(b"evil").await.unwrap();
        assert!(matches!(
            w.commit().await,
            Err(ContentError::DigestMismatch { .. })
        ));
        let mut w = store.writer(&digest, Some(4)).await.unwrap();
        w.write(b"goo").await.unwrap();
        assert!(matches!(
            w.commit().await,
            Err(ContentError::SizeMismatch { .. })
        ));
        let mut w = store.writer(&digest, Some(4)).await.unwrap();
        assert!(matches!(
            w.write(b"goodbye").await,
            Err(ContentError::SizeMismatch { .. })
        ));
        drop(w);
        let mut w = store.writer(&digest, Some(4)).await.unwrap();
        w.write(b"go").await.unwrap();
        drop(w); // interrupted download
        assert!(!store.exists(&digest));
        assert_eq!(
            std::fs::read_dir(tmp.path().join("ingest"))
                .unwrap()
                .count(),
            0,
            "no ingest leftovers"
        );
        assert!(matches!(
            store.path("sha256:xyz"),
            Err(ContentError::InvalidDigest { .. })
        ));
        assert!(matches!(
            store.path(&format!("sha512:{}", "a".repeat(128))),
            Err(ContentError::Unsupported(_))
        ));
    }
}
