//! The CRI view of a container record (ContainerStatus), shared by ContainerStatus and the
//! container events on the bus.

use cri_api::v1::{ContainerStatus, ImageSpec};

use super::record::ContainerRecord;

/// The image spec as the request named it, with the image it resolved to (`image_ref`).
pub fn image_spec(r: &ContainerRecord) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: r.image.clone(),
        user_specified_image: r
            .config
            .image
            .as_ref()
            .map(|i| i.user_specified_image.clone())
            .unwrap_or_default(),
        image_ref: r.image_id.clone(),
        ..Default::default()
    })
}

/// ContainerStatus of `r`.
pub fn to_cri(r: &ContainerRecord) -> ContainerStatus {
    ContainerStatus {
        id: r.id.clone(),
        metadata: r.config.metadata.clone(),
        state: r.state.to_cri() as i32,
        created_at: r.created_at_ns,
        started_at: r.started_at_ns,
        finished_at: r.finished_at_ns,
        exit_code: r.exit_code,
        image: image_spec(r),
        image_ref: r.image_id.clone(),
        reason: r.reason.clone(),
        message: r.message.clone(),
        labels: r.config.labels.clone(),
        annotations: r.config.annotations.clone(),
        mounts: r.config.mounts.clone(),
        log_path: r.log_path.clone(),
        resources: None,
        image_id: r.image_id.clone(),
        user: None,
        stop_signal: super::signal::to_cri(r.stop_signal) as i32,
    }
}
