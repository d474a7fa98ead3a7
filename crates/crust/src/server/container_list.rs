//! ListContainers (filters: id prefix, state, pod, labels) and the CRI view of a container.

use cri_api::v1::{
    Container, ContainerFilter, ListContainersRequest, ListContainersResponse,
    StreamContainersRequest, StreamContainersResponse,
};
use tonic::{Request, Response, Status};

use super::{batch, CriService};
use crate::container::{record::ContainerRecord, status::image_spec};

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ListContainersRequest>,
) -> Result<Response<ListContainersResponse>, Status> {
    let containers = items(svc, req.into_inner().filter.as_ref());
    Ok(Response::new(ListContainersResponse { containers }))
}

/// StreamContainers: the same containers, in batches.
pub(super) async fn stream(
    svc: &CriService,
    req: Request<StreamContainersRequest>,
) -> Result<Response<batch::BatchStream<StreamContainersResponse>>, Status> {
    let containers = items(svc, req.into_inner().filter.as_ref());
    Ok(Response::new(batch::stream(containers, |containers| {
        StreamContainersResponse { containers }
    })))
}

fn items(svc: &CriService, filter: Option<&ContainerFilter>) -> Vec<Container> {
    svc.containers.list(filter).iter().map(to_cri).collect()
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
