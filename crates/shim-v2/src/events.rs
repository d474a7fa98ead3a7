//! Where shims send their events: a ttrpc server for containerd's
//! `containerd.services.events.ttrpc.v1.Events/Forward` on the `TTRPC_ADDRESS` every shim is
//! given. Each forwarded envelope (topic such as `/tasks/exit`, namespace, the event as an Any)
//! arrives on a channel. A shim whose events nobody takes keeps retrying and, at Shutdown, waits
//! for its publisher before it exits.

use std::{path::Path, sync::Arc};

use async_trait::async_trait;
use containerd_shim_protos::{
    shim::{event::Envelope, events::ForwardRequest},
    shim_async::{create_events, Events},
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
