//! crust's admin API (`crust.admin.v1.Admin`), served beside CRI: ImportImage receives an OCI
//! image layout archive in chunks into a scratch file, extracts it and installs its images like
//! a pull. The scratch file and dir go away whatever happens.

use std::{path::PathBuf, sync::Arc};

use crust_api::v1::{admin_server::Admin, ImportImageChunk, ImportImageResponse, ImportedImage};
use tokio::io::AsyncWriteExt as _;
use tonic::{Request, Response, Status, Streaming};

use crate::{
    error::import_status,
    image::{import::extract, pull::Puller},
    store::id::new_id,
};

/// The admin service.
#[derive(Debug)]
pub struct AdminService {
    puller: Arc<Puller>,
    /// `<root>/images/import`: scratch space for archives being imported.
    scratch: PathBuf,
}

impl AdminService {
    /// Imports into `puller`'s store, using `scratch` for archives in flight.
    pub fn new(puller: Arc<Puller>, scratch: PathBuf) -> AdminService {
        // Leftovers of an import cut short by a crash.
        let _ = std::fs::remove_dir_all(&scratch);
        AdminService { puller, scratch }
    }

    async fn receive(
        &self,
        mut stream: Streaming<ImportImageChunk>,
        file: &PathBuf,
    ) -> Result<(), Status> {
        let io =
            |e: std::io::Error| Status::internal(format!("import scratch {}: {e}", file.display()));
        tokio::fs::create_dir_all(&self.scratch).await.map_err(io)?;
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::create(file).await.map_err(io)?);
        while let Some(chunk) = stream.message().await? {
            out.write_all(&chunk.data).await.map_err(io)?;
        }
        out.flush().await.map_err(io)
    }

    async fn import(&self, archive: PathBuf, dir: PathBuf) -> Result<Vec<ImportedImage>, Status> {
        let target = dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&target)?;
            extract(&archive, &target)
        })
        .await
        .map_err(|e| Status::internal(format!("import task: {e}")))?
        .map_err(|e| import_status(&e))?;
        let pulled = self
            .puller
            .import(&dir)
            .await
            .map_err(|e| import_status(&e))?;
        Ok(pulled
            .into_iter()
            .filter_map(|p| self.puller.store().find(&p.id))
            .map(|r| ImportedImage {
                id: r.id,
                repo_tags: r.repo_tags,
                repo_digests: r.repo_digests,
            })
            .collect())
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn import_image(
        &self,
        req: Request<Streaming<ImportImageChunk>>,
    ) -> Result<Response<ImportImageResponse>, Status> {
        let id = new_id();
        let (file, dir) = (
            self.scratch.join(format!("{id}.tar")),
            self.scratch.join(&id),
        );
        let result = match self.receive(req.into_inner(), &file).await {
            Ok(()) => self.import(file.clone(), dir.clone()).await,
            Err(e) => Err(e),
        };
        let _ = tokio::fs::remove_file(&file).await;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e.message(), "ImportImage failed");
        }
        Ok(Response::new(ImportImageResponse { images: result? }))
    }
}
