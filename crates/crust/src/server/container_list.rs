//! ListContainers (filters: id prefix, state, pod, labels) and the CRI view of a container.

use cri_api::v1::{Container, ListContainersRequest, ListContainersResponse};
use tonic::{Request, Response, Status};

use super::CriService;
use crate::container::{record::ContainerRecord, status::image_spec};

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
