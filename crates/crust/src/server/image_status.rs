//! ImageStatus: an unknown image is an empty response (not an error), as CRI says.

use std::collections::HashMap;

use cri_api::v1::{ImageStatusRequest, ImageStatusResponse};
use tonic::{Request, Response, Status};

use super::{image_list::to_cri, CriService};

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ImageStatusRequest>,
) -> Result<Response<ImageStatusResponse>, Status> {
    let req = req.into_inner();
    let key = req.image.map(|s| s.image).unwrap_or_default();
    if key.is_empty() {
        return Err(Status::invalid_argument(
            "invalid image: an image reference is required",
        ));
    }
    let Some(record) = svc.images.find(&key) else {
        return Ok(Response::new(ImageStatusResponse::default()));
    };
    let info = if req.verbose {
        let value = serde_json::json!({ "manifestDigest": record.manifest_digest, "layers": record.layers, "config": record.config });
        HashMap::from([("info".to_string(), value.to_string())])
    } else {
        HashMap::new()
    };
    Ok(Response::new(ImageStatusResponse {
        image: Some(to_cri(
            &record,
            svc.sandboxes.sandbox_image().is(&record.id),
        )),
        info,
    }))
}
