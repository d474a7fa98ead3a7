//! ListContainers (filters: id prefix, state, pod, labels) and the CRI view of a container.

use cri_api::v1::{Container, ImageSpec, ListContainersRequest, ListContainersResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::container::record::ContainerRecord;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ListContainersRequest>,
) -> Result<Response<ListContainersResponse>, Status> {
    let filter = req.into_inner().filter;
    let containers = svc
        .containers
        .list(filter.as_ref())
        .iter()
        .map(to_cri)
        .collect();
    Ok(Response::new(ListContainersResponse { containers }))
}

/// The image spec as the request named it.
pub fn image_spec(r: &ContainerRecord) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: r.image.clone(),
        ..Default::default()
    })
}

fn to_cri(r: &ContainerRecord) -> Container {
    Container {
        id: r.id.clone(),
        pod_sandbox_id: r.sandbox_id.clone(),
        metadata: r.config.metadata.clone(),
        image: image_spec(r),
        image_ref: r.image_id.clone(),
        state: r.state.to_cri() as i32,
        created_at: r.created_at_ns,
        labels: r.config.labels.clone(),
        annotations: r.config.annotations.clone(),
        image_id: r.image_id.clone(),
    }
}
