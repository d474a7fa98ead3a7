//! RemoveImage (by id, tag or digest; idempotent), then garbage collection of what nothing uses.

use cri_api::v1::{RemoveImageRequest, RemoveImageResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<RemoveImageRequest>,
) -> Result<Response<RemoveImageResponse>, Status> {
    let key = req.into_inner().image.map(|s| s.image).unwrap_or_default();
    if key.is_empty() {
        return Err(Status::invalid_argument(
            "invalid image: an image reference is required",
        ));
    }
    // Dropping one of several tags only removes a name; anything else removes the image, which
    // is refused while pods or containers run from it.
    let only_a_name = |image: &crate::image::store::ImageRecord| {
        image.repo_tags.len() > 1
            && crate::image::reference::Reference::parse(&key)
                .is_ok_and(|r| image.repo_tags.contains(&r.to_string()))
    };
    if let Some(image) = svc.images.find(&key).filter(|i| !only_a_name(i)) {
        let mut users = svc.sandboxes.image_users(&image.id);
        users.extend(
            svc.containers
                .list(None)
                .into_iter()
                .filter(|c| c.image_id == image.id || c.image_volumes.contains(&image.id))
                .map(|c| format!("container {}", c.id)),
        );
        if !users.is_empty() {
            return Err(Status::failed_precondition(format!(
                "image {} is in use by {}",
                image.id,
                users.join(", ")
            )));
        }
    }
    let images = svc.images.clone();
    tokio::task::spawn_blocking(move || {
        if images.remove(&key)? {
            images.gc()?;
        }
        Ok::<(), crate::image::store::ImageStoreError>(())
    })
    .await
    .map_err(|e| Status::internal(format!("RemoveImage task: {e}")))??;
    Ok(Response::new(RemoveImageResponse {}))
}
