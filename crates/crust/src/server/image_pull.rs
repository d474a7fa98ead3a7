//! PullImage: the request's credentials (username/password, base64 `auth`, identity or registry
//! token) plus crustd's registry config; answers with the image id that ImageStatus and
//! ListImages report.

use cri_api::v1::{PullImageRequest, PullImageResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::{error::pull_status, image::registry::auth::Credentials};

pub(super) async fn handle(
    svc: &CriService,
    req: Request<PullImageRequest>,
) -> Result<Response<PullImageResponse>, Status> {
    let req = req.into_inner();
    let image = req.image.map(|s| s.image).unwrap_or_default();
    if image.trim().is_empty() {
        return Err(Status::invalid_argument(
            "invalid image: an image reference is required",
        ));
    }
    let creds = match req.auth {
        Some(a) => Credentials::from_cri(
            &a.username,
            &a.password,
            &a.auth,
            &a.identity_token,
            &a.registry_token,
        )
        .map_err(|e| Status::invalid_argument(format!("invalid auth: {e}")))?,
        None => None,
    };
    let pulled = svc
        .puller
        .pull(&image, creds)
        .await
        .map_err(|e| pull_status(&e))?;
    Ok(Response::new(PullImageResponse {
        image_ref: pulled.id,
    }))
}
