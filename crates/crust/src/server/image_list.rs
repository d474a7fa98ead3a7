//! ListImages (filter by image reference) and the CRI view of an image record.

use cri_api::v1::{
    Image, ImageFilter, ImageSpec, ListImagesRequest, ListImagesResponse, StreamImagesRequest,
    StreamImagesResponse,
};
use tonic::{Request, Response, Status};

use super::{batch, CriService};
use crate::image::store::ImageRecord;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ListImagesRequest>,
) -> Result<Response<ListImagesResponse>, Status> {
    let images = items(svc, req.into_inner().filter);
    Ok(Response::new(ListImagesResponse { images }))
}

/// StreamImages: the same images, in batches.
pub(super) async fn stream(
    svc: &CriService,
    req: Request<StreamImagesRequest>,
) -> Result<Response<batch::BatchStream<StreamImagesResponse>>, Status> {
    let images = items(svc, req.into_inner().filter);
    Ok(Response::new(batch::stream(images, |images| {
        StreamImagesResponse { images }
    })))
}

fn items(svc: &CriService, filter: Option<ImageFilter>) -> Vec<Image> {
    let wanted = filter
        .and_then(|f| f.image)
        .map(|s| s.image)
        .filter(|s| !s.is_empty());
    let images = match wanted {
        Some(key) => svc.images.find(&key).into_iter().collect(),
        None => svc.images.list(),
    };
    images
        .iter()
        .map(|r| to_cri(r, svc.sandboxes.sandbox_image().is(&r.id)))
        .collect()
}

/// The CRI `Image` for a record (uid or username from the config's `User`).
/// The CRI view of an image; `pinned` for the sandbox image (kubelet never GCs those).
pub fn to_cri(record: &ImageRecord, pinned: bool) -> Image {
    let user = record.config["config"]["User"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let name = user.split(':').next().unwrap_or("").to_string();
    let (uid, username) = match name.parse::<i64>() {
        Ok(uid) => (Some(cri_api::v1::Int64Value { value: uid }), String::new()),
        Err(_) => (None, name),
    };
    Image {
        id: record.id.clone(),
        repo_tags: record.repo_tags.clone(),
        repo_digests: record.repo_digests.clone(),
        size: record.size,
        uid,
        username,
        spec: Some(ImageSpec {
            image: record.id.clone(),
            ..Default::default()
        }),
        pinned,
    }
}
