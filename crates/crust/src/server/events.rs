//! GetContainerEvents: a stream of the bus; a lagging client loses events (logged), never blocks us.

use std::pin::Pin;

use cri_api::v1::{ContainerEventResponse, GetEventsRequest};
use tokio_stream::{
    wrappers::{errors::BroadcastStreamRecvError, BroadcastStream},
    Stream, StreamExt,
};
use tonic::{Request, Response, Status};

use super::CriService;

/// The response stream type.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<ContainerEventResponse, Status>> + Send>>;

pub(super) async fn handle(
    svc: &CriService,
    _req: Request<GetEventsRequest>,
) -> Result<Response<EventStream>, Status> {
    let stream = BroadcastStream::new(svc.events.subscribe()).filter_map(|item| match item {
        Ok(event) => Some(Ok(event.to_cri())),
        Err(BroadcastStreamRecvError::Lagged(n)) => {
            tracing::warn!(
                lost = n,
                "GetContainerEvents subscriber too slow; events dropped"
            );
            None
        }
    });
    Ok(Response::new(Box::pin(stream)))
}
