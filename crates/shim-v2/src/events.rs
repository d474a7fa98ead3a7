//! Where shims send their events: a ttrpc server for containerd's
//! `containerd.services.events.ttrpc.v1.Events/Forward` on the `TTRPC_ADDRESS` every shim is
//! given. Each forwarded envelope (topic such as `/tasks/exit`, namespace, the event as an Any)
//! arrives on a channel. A shim whose events nobody takes keeps retrying and, at Shutdown, waits
//! for its publisher before it exits.
//!
//! Shims built on older containerd shim libraries publish by running their `-publish-binary`
//! instead (`BINARY --address ADDRESS publish --topic T --namespace N`, the event as a protobuf
//! `Any` on stdin, as `containerd publish` takes it); [`publish`] is that binary's side, which
//! forwards to the same server.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use containerd_shim_protos::{
    protobuf::{
        well_known_types::{any::Any, timestamp::Timestamp},
        Message as _,
    },
    shim::{event::Envelope, events::ForwardRequest},
    shim_async::{create_events, Client, Events, EventsClient},
    types::empty::Empty,
};
use tokio::sync::mpsc;
use ttrpc::asynchronous::{Server, TtrpcContext};

use crate::ShimError;

struct Forwarder(mpsc::UnboundedSender<Envelope>);

#[async_trait]
impl Events for Forwarder {
    async fn forward(&self, _ctx: &TtrpcContext, req: ForwardRequest) -> ttrpc::Result<Empty> {
        if let Some(envelope) = req.envelope.into_option() {
            let _ = self.0.send(envelope);
        }
        Ok(Empty::new())
    }
}

/// The running events server; dropping it stops serving.
pub struct EventsServer {
    server: Server,
}

impl EventsServer {
    /// Serves at `socket` (a stale socket file is replaced); the envelopes arrive on the
    /// receiver.
    pub async fn serve(
        socket: &Path,
    ) -> Result<(EventsServer, mpsc::UnboundedReceiver<Envelope>), ShimError> {
        let _ = std::fs::remove_file(socket);
        let (tx, rx) = mpsc::unbounded_channel();
        let address = format!("unix://{}", socket.display());
        let err = |source| ShimError::Ttrpc {
            call: "serve events",
            source,
        };
        let mut server = Server::new()
            .bind(&address)
            .map_err(err)?
            .register_service(create_events(Arc::new(Forwarder(tx))));
        server.start().await.map_err(err)?;
        Ok((EventsServer { server }, rx))
    }

    /// Stops serving.
    pub async fn shutdown(mut self) {
        let _ = self.server.shutdown().await;
    }
}

/// How long a publish may take to reach the events server.
const PUBLISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Forwards `event` (a protobuf `Any`, as a shim writes it to its publish binary's stdin) with
/// `topic` and `namespace` to the events server of `address` (the `-address` the shim was
/// started with; the server is at its `.ttrpc` path).
pub async fn publish(
    address: &Path,
    namespace: &str,
    topic: &str,
    event: &[u8],
) -> Result<(), ShimError> {
    if topic.is_empty() {
        return Err(ShimError::Decode("an event needs a topic".into()));
    }
    let event = Any::parse_from_bytes(event)
        .map_err(|e| ShimError::Decode(format!("the event is not a protobuf Any: {e}")))?;
    let socket = crate::bootstrap::ttrpc_address(address);
    let err = |call| move |source| ShimError::Ttrpc { call, source };
    let client = Client::connect(&format!("unix://{}", socket.display()))
        .await
        .map_err(err("connect to the events server"))?;
    let envelope = Envelope {
        timestamp: Some(Timestamp::now()).into(),
        namespace: namespace.to_string(),
        topic: topic.to_string(),
        event: Some(event).into(),
        ..Default::default()
    };
    let request = ForwardRequest {
        envelope: Some(envelope).into(),
        ..Default::default()
    };
    let deadline = ttrpc::context::with_timeout(PUBLISH_TIMEOUT.as_nanos() as i64);
    EventsClient::new(client)
        .forward(deadline, &request)
        .await
        .map_err(err("Forward"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use containerd_shim_protos::events::task::TaskOOM;

    use super::*;

    /// What a shim's publish binary is given reaches the server as the shim's envelope.
    #[tokio::test]
    async fn a_published_event_arrives_at_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let address = dir.path().join("events");
        let (server, mut rx) = EventsServer::serve(&crate::bootstrap::ttrpc_address(&address))
            .await
            .unwrap();
        let oom = TaskOOM {
            container_id: "c1".into(),
            ..Default::default()
        };
        let any = Any {
            type_url: "containerd.events.TaskOOM".into(),
            value: oom.write_to_bytes().unwrap(),
            ..Default::default()
        };
        let stdin = any.write_to_bytes().unwrap();
        publish(&address, "k8s.io", "/tasks/oom", &stdin)
            .await
            .unwrap();
        let got = rx.recv().await.unwrap();
        assert_eq!(
            (got.topic.as_str(), got.namespace.as_str()),
            ("/tasks/oom", "k8s.io")
        );
        let event = got.event.into_option().unwrap();
        assert_eq!(event.type_url, "containerd.events.TaskOOM");
        assert_eq!(
            TaskOOM::parse_from_bytes(&event.value)
                .unwrap()
                .container_id,
            "c1"
        );
        assert!(publish(&address, "k8s.io", "", &stdin).await.is_err());
        assert!(publish(&address, "k8s.io", "/tasks/oom", b"\xff\xff")
            .await
            .is_err());
        server.shutdown().await;
    }
}
