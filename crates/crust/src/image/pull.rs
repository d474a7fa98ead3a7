//! PullImage: resolve a reference on the registry's endpoints (mirrors first), pick this host's
//! platform from an index, fetch config and layers into the content store (each blob once, even
//! across concurrent pulls), unpack each layer into its chain-id snapshot with its diffID checked
//! against the config, then record the image. Concurrent pulls of one reference (with the same
//! credentials) share one pull, which runs on its own task so a caller that gives up does not
//! leave half an image behind.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use futures_util::{
    future::{BoxFuture, Shared},
    FutureExt as _, StreamExt as _,
};
use sha2::{Digest as _, Sha256};

use super::{
    content::ContentError,
    content::Writer,
    manifest::{self, Descriptor, Document, ManifestError},
    reference::{Reference, ReferenceError},
    registry::{auth::Credentials, Endpoint, Fetched, Registries, RegistryError, Session},
    store::{chain_ids, ImageRecord, ImageStore, ImageStoreError, Layer, Lease},
    unpack::{unpack_layer, Compression, UnpackError},
};

/// How many blobs of one image download at once.
const PARALLEL_BLOBS: usize = 3;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("pulling {reference}: {}", attempts_text(.attempts))]
    Endpoints {
        reference: String,
        attempts: Vec<(String, RegistryError)>,
    },
    #[error("pulling {reference} from {endpoint}: {source}")]
    Registry {
        reference: String,
        endpoint: String,
        source: RegistryError,
    },
    #[error("pulling {reference}: {source}")]
    Manifest {
        reference: String,
        source: ManifestError,
    },
    #[error("layer {digest}: unsupported media type {media_type:?}")]
    LayerType { digest: String, media_type: String },
    #[error("layer {digest}: {source}")]
    Unpack { digest: String, source: UnpackError },
    #[error("image config {digest} is {size} bytes, over limits.max_manifest_size ({limit})")]
    ConfigTooLarge {
        digest: String,
        size: u64,
        limit: u64,
    },
    #[error("layer {digest}: uncompressed content is {actual}, the image config says {expected}")]
    DiffId {
        digest: String,
        expected: String,
        actual: String,
    },
    #[error("content store: {0}")]
    Content(#[from] ContentError),
    #[error(transparent)]
    Store(#[from] ImageStoreError),
    #[error("image {reference} was removed while it was being prepared")]
    Vanished { reference: String },
    #[error("pull task failed: {0}")]
    Task(String),
}

fn attempts_text(attempts: &[(String, RegistryError)]) -> String {
    attempts
        .iter()
        .map(|(endpoint, e)| format!("{endpoint}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a pull produced.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The image id (config digest), which CRI returns as the image ref.
    pub id: String,
    pub manifest_digest: String,
}

type SharedPull = Shared<BoxFuture<'static, Result<Pulled, Arc<PullError>>>>;

/// The pull machinery; one per daemon.
#[derive(Debug)]
pub struct Puller {
    store: Arc<ImageStore>,
    registries: Registries,
    inflight: Mutex<HashMap<String, SharedPull>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Puller {
    /// A puller writing into `store`.
    pub fn new(store: Arc<ImageStore>, registries: Registries) -> Puller {
        Puller {
            store,
            registries,
            inflight: Mutex::default(),
            locks: Mutex::default(),
        }
    }

    /// The image store pulls write into.
    pub fn store(&self) -> &Arc<ImageStore> {
        &self.store
    }

    /// Pulls `reference` (joining a pull of the same reference and credentials in flight).
    pub async fn pull(
        self: &Arc<Self>,
        reference: &str,
        creds: Option<Credentials>,
    ) -> Result<Pulled, Arc<PullError>> {
        let reference = Reference::parse(reference).map_err(|e| Arc::new(e.into()))?;
        let key = inflight_key(&reference, creds.as_ref());
        let shared = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
            inflight
                .entry(key.clone())
                .or_insert_with(|| self.start(reference, creds, key))
                .clone()
        };
        shared.await
    }

    fn start(
        self: &Arc<Self>,
        reference: Reference,
        creds: Option<Credentials>,
        key: String,
    ) -> SharedPull {
        let me = Arc::clone(self);
        let task = tokio::spawn(async move {
            let result = me.pull_now(&reference, creds).await.map_err(Arc::new);
            me.inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key);
            result
        });
        async move {
            task.await
                .unwrap_or_else(|e| Err(Arc::new(PullError::Task(e.to_string()))))
        }
        .boxed()
        .shared()
    }

    async fn pull_now(
        &self,
        reference: &Reference,
        creds: Option<Credentials>,
    ) -> Result<Pulled, PullError> {
        let started = std::time::Instant::now();
        let mut lease = self.store.lease();
        let pulled = async {
            let (session, top) = self.resolve(reference, creds).await?;
            self.install(&session, &mut lease, Some(reference), top)
                .await
        }
        .await;
        crate::metrics::global().pull(pulled.is_ok(), started.elapsed());
        let pulled = pulled?;
        drop(lease);
        tracing::info!(image = %reference, id = %pulled.id, elapsed_ms = started.elapsed().as_millis() as u64, "image pulled");
        Ok(pulled)
    }

    /// From a fetched manifest or index (`top`) to a recorded image: picks this host's platform,
    /// stores manifests, config and layers from `source`, unpacks, writes the record.
    pub(super) async fn install(
        &self,
        source: &dyn BlobSource,
        lease: &mut Lease,
        reference: Option<&Reference>,
        top: Fetched,
    ) -> Result<Pulled, PullError> {
        let label = reference.map_or_else(|| top.digest.clone(), |r| r.to_string());
        let bad_manifest = |source| PullError::Manifest {
            reference: label.clone(),
            source,
        };
        let mut fetched = top;
        let index_digest =
            match manifest::parse(&fetched.bytes, &fetched.media_type).map_err(bad_manifest)? {
                Document::Manifest(_) => None,
                Document::Index(index) => {
                    let chosen = manifest::select(&index, &manifest::host_platform())
                        .map_err(bad_manifest)?;
                    let next = source
                        .manifest(&chosen.digest)
                        .await
                        .map_err(|e| source.error(&label, e))?;
                    let index_fetched = std::mem::replace(&mut fetched, next);
                    self.store_bytes(lease, &index_fetched.digest, &index_fetched.bytes)
                        .await?;
                    Some(index_fetched.digest)
                }
            };
        let Document::Manifest(image) =
            manifest::parse(&fetched.bytes, &fetched.media_type).map_err(bad_manifest)?
        else {
            return Err(bad_manifest(ManifestError::MediaType(
                "nested index".into(),
            )));
        };
        self.store_bytes(lease, &fetched.digest, &fetched.bytes)
            .await?;
        let names = Names {
            label: &label,
            reference,
            manifest_digest: &fetched.digest,
            index_digest: index_digest.as_deref(),
        };
        let record = self.fetch_image(source, lease, &names, &image).await?;
        let id = record.id.clone();
        self.store.put(record)?;
        Ok(Pulled {
            id,
            manifest_digest: fetched.digest,
        })
    }

    /// Finds the first endpoint that serves the reference's manifest.
    async fn resolve(
        &self,
        reference: &Reference,
        creds: Option<Credentials>,
    ) -> Result<(Session, super::registry::Fetched), PullError> {
        let wanted = reference
            .digest
            .clone()
            .or_else(|| reference.tag.clone())
            .unwrap_or_else(|| "latest".to_string());
        let mut attempts = Vec::new();
        for endpoint in self.registries.endpoints(&reference.registry) {
            let session = match self.session(endpoint.clone(), reference, creds.clone()) {
                Ok(s) => s,
                Err(e) => {
                    attempts.push((endpoint.base, e));
                    continue;
                }
            };
            match session.manifest(&wanted).await {
                Ok(fetched) => return Ok((session, fetched)),
                Err(e) if e.try_next() => {
                    tracing::debug!(endpoint = %endpoint.base, error = %e, "endpoint failed, trying the next");
                    attempts.push((endpoint.base, e));
                }
                Err(e) => {
                    return Err(PullError::Registry {
                        reference: reference.to_string(),
                        endpoint: endpoint.base,
                        source: e,
                    })
                }
            }
        }
        Err(PullError::Endpoints {
            reference: reference.to_string(),
            attempts,
        })
    }

    fn session(
        &self,
        endpoint: Endpoint,
        reference: &Reference,
        creds: Option<Credentials>,
    ) -> Result<Session, RegistryError> {
        let client = self.registries.client(&endpoint)?;
        // Request credentials are for the registry named in the reference; a mirror uses its own.
        let creds = if endpoint.mirror {
            self.registries.configured_credentials(&endpoint.host)
        } else {
            creds.or_else(|| self.registries.configured_credentials(&endpoint.host))
        };
        let limit = self.registries.limits().max_manifest_bytes;
        Ok(Session::new(endpoint, &reference.repository, client, creds).with_manifest_limit(limit))
    }

    async fn store_bytes(
        &self,
        lease: &mut Lease,
        digest: &str,
        bytes: &[u8],
    ) -> Result<(), PullError> {
        lease.add(digest);
        if self.store.content().exists(digest) {
            return Ok(());
        }
        let mut writer = self
            .store
            .content()
            .writer(digest, Some(bytes.len() as u64))
            .await?;
        writer.write(bytes).await?;
        writer.commit().await?;
        Ok(())
    }

    /// Config, layers (downloaded concurrently, unpacked as each arrives) and the record.
    async fn fetch_image(
        &self,
        source: &dyn BlobSource,
        lease: &mut Lease,
        names: &Names<'_>,
        image: &manifest::Manifest,
    ) -> Result<ImageRecord, PullError> {
        lease.add(&image.config.digest);
        for layer in &image.layers {
            lease.add(&layer.digest);
        }
        let limits = *self.registries.limits();
        if image.config.size > limits.max_manifest_bytes {
            return Err(PullError::ConfigTooLarge {
                digest: image.config.digest.clone(),
                size: image.config.size,
                limit: limits.max_manifest_bytes,
            });
        }
        self.ensure_blob(source, &image.config).await?;
        let config_path = self.store.content().path(&image.config.digest)?;
        let config_bytes = read_small(&config_path).await?;
        let config =
            manifest::parse_config(&config_bytes, image.layers.len()).map_err(|source| {
                PullError::Manifest {
                    reference: names.label.to_string(),
                    source,
                }
            })?;
        let chains = chain_ids(&config.rootfs.diff_ids);
        for chain in &chains {
            lease.add(chain);
        }
        let layers: Vec<Layer> = image
            .layers
            .iter()
            .zip(config.rootfs.diff_ids.iter().zip(&chains))
            .map(|(d, (diff_id, chain_id))| Layer {
                digest: d.digest.clone(),
                media_type: d.media_type.clone(),
                size: d.size,
                diff_id: diff_id.clone(),
                chain_id: chain_id.clone(),
            })
            .collect();
        for layer in &layers {
            if Compression::from_media_type(&layer.media_type).is_none() {
                return Err(PullError::LayerType {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
        }
        let work: Vec<_> = image
            .layers
            .iter()
            .zip(&layers)
            .map(|(d, l)| self.layer(source, d, l))
            .collect();
        futures_util::stream::iter(work)
            .buffer_unordered(PARALLEL_BLOBS)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>, PullError>>()?;
        let size = image.config.size + layers.iter().map(|l| l.size).sum::<u64>();
        let config_json = serde_json::from_slice(&config_bytes).unwrap_or(serde_json::Value::Null);
        let (repo_tags, repo_digests) = names.repo_names();
        Ok(ImageRecord {
            id: image.config.digest.clone(),
            repo_tags,
            repo_digests,
            manifest_digest: names.manifest_digest.to_string(),
            layers,
            size,
            config: config_json,
        })
    }

    async fn layer(
        &self,
        source: &dyn BlobSource,
        desc: &Descriptor,
        layer: &Layer,
    ) -> Result<(), PullError> {
        if !self.store.has_snapshot(&layer.chain_id) {
            self.ensure_blob(source, desc).await?;
        }
        self.ensure_snapshot(layer).await
    }

    fn lock_for(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        Arc::clone(locks.entry(key.to_string()).or_default())
    }

    /// Downloads a blob unless present (one download per digest at a time).
    async fn ensure_blob(
        &self,
        source: &dyn BlobSource,
        desc: &Descriptor,
    ) -> Result<(), PullError> {
        let lock = self.lock_for(&desc.digest);
        let _held = lock.lock().await;
        if self.store.content().exists(&desc.digest) {
            return Ok(());
        }
        let mut writer = self
            .store
            .content()
            .writer(&desc.digest, Some(desc.size))
            .await?;
        source
            .blob_into(&desc.digest, &mut writer)
            .await
            .map_err(|e| source.error(&desc.digest, e))?;
        writer.commit().await?;
        crate::metrics::global().pulled_bytes(desc.size);
        Ok(())
    }

    /// Unpacks a layer into its snapshot unless complete; the diffID must match the config's.
    async fn ensure_snapshot(&self, layer: &Layer) -> Result<(), PullError> {
        let lock = self.lock_for(&layer.chain_id);
        let _held = lock.lock().await;
        if self.store.has_snapshot(&layer.chain_id) {
            return Ok(());
        }
        let blob = self.store.content().path(&layer.digest)?;
        let dir = self.store.snapshot_dir(&layer.chain_id);
        let layer_owned = layer.clone();
        let max = self.registries.limits().max_layer_unpacked_bytes;
        let unpacked =
            tokio::task::spawn_blocking(move || unpack_into(&blob, &dir, &layer_owned, max))
                .await
                .map_err(|e| PullError::Task(e.to_string()))?;
        unpacked?;
        self.store.complete_snapshot(&layer.chain_id)?;
        Ok(())
    }
}

/// Unpacks `blob` into `dir/fs` (cleared first); on any failure nothing stays behind.
fn unpack_into(
    blob: &std::path::Path,
    dir: &std::path::Path,
    layer: &Layer,
    max_bytes: u64,
) -> Result<(), PullError> {
    let unpack_err = |source| PullError::Unpack {
        digest: layer.digest.clone(),
        source,
    };
    let io_err = |path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source| unpack_err(UnpackError::Io { path, source })
    };
    let _ = std::fs::remove_dir_all(dir);
    let fs_dir = dir.join("fs");
    std::fs::create_dir_all(&fs_dir).map_err(io_err(&fs_dir))?;
    let result = (|| {
        let file = std::fs::File::open(blob).map_err(io_err(blob))?;
        let compression =
            Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        let diff_id = unpack_layer(reader, compression, &fs_dir, max_bytes).map_err(unpack_err)?;
        if diff_id != layer.diff_id {
            return Err(PullError::DiffId {
                digest: layer.digest.clone(),
                expected: layer.diff_id.clone(),
                actual: diff_id,
            });
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

async fn read_small(path: &std::path::Path) -> Result<Vec<u8>, ContentError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| ContentError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// How a pulled or imported image is named.
struct Names<'a> {
    /// For messages: the reference, or the manifest digest of an unnamed import.
    label: &'a str,
    reference: Option<&'a Reference>,
    manifest_digest: &'a str,
    index_digest: Option<&'a str>,
}

impl Names<'_> {
    /// Repo tags (the reference when it has a tag) and repo digests (index first, then manifest).
    fn repo_names(&self) -> (Vec<String>, Vec<String>) {
        let Some(reference) = self.reference else {
            return (Vec::new(), Vec::new());
        };
        let tags = reference
            .tag
            .as_ref()
            .map(|_| reference.to_string())
            .into_iter()
            .collect();
        let digests = self
            .index_digest
            .into_iter()
            .chain([self.manifest_digest])
            .map(|d| reference.with_digest(d))
            .collect();
        (tags, digests)
    }
}

/// Where manifests and blobs come from: a registry session, or an unpacked image layout.
#[async_trait::async_trait]
pub trait BlobSource: Send + Sync {
    /// The manifest or index with `digest` (verified).
    async fn manifest(&self, digest: &str) -> Result<Fetched, RegistryError>;
    /// Streams blob `digest` into `writer` (which verifies it on commit).
    async fn blob_into(&self, digest: &str, writer: &mut Writer) -> Result<u64, RegistryError>;
    /// The error for a failure of this source while getting `what`.
    fn error(&self, what: &str, source: RegistryError) -> PullError;
}

#[async_trait::async_trait]
impl BlobSource for Session {
    async fn manifest(&self, digest: &str) -> Result<Fetched, RegistryError> {
        Session::manifest(self, digest).await
    }

    async fn blob_into(&self, digest: &str, writer: &mut Writer) -> Result<u64, RegistryError> {
        Session::blob_into(self, digest, writer).await
    }

    fn error(&self, what: &str, source: RegistryError) -> PullError {
        PullError::Registry {
            reference: what.to_string(),
            endpoint: self.endpoint.base.clone(),
            source,
        }
    }
}

/// Pulls of the same reference and credentials merge; other credentials pull on their own.
fn inflight_key(reference: &Reference, creds: Option<&Credentials>) -> String {
    let mut hasher = Sha256::new();
    match creds {
        None => hasher.update(b"anonymous"),
        Some(Credentials::Basic { username, password }) => {
            hasher.update(format!("basic\0{username}\0{password}"))
        }
        Some(Credentials::IdentityToken { username, token }) => {
            hasher.update(format!("identity\0{username}\0{token}"))
        }
        Some(Credentials::RegistryToken(t)) => hasher.update(format!("token\0{t}")),
    }
    format!("{reference}\0{}", hex::encode(hasher.finalize()))
}
