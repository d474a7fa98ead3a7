//! The event bus behind `GetContainerEvents`.
//!
//! One broadcast channel; publishing never blocks. A subscriber that falls more than the channel's
//! capacity behind loses the oldest events and is told so (the server logs it), so a slow client can
//! never stall the runtime.

use cri_api::v1::{ContainerEventResponse, ContainerEventType, ContainerStatus, PodSandboxStatus};
use tokio::sync::broadcast;

/// How many events a subscriber may lag before it starts losing them.
pub const CAPACITY: usize = 1024;

/// The kinds of lifecycle event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Created,
    Started,
    Stopped,
    Deleted,
}

impl EventKind {
    fn to_cri(self) -> ContainerEventType {
        match self {
            EventKind::Created => ContainerEventType::ContainerCreatedEvent,
            EventKind::Started => ContainerEventType::ContainerStartedEvent,
            EventKind::Stopped => ContainerEventType::ContainerStoppedEvent,
            EventKind::Deleted => ContainerEventType::ContainerDeletedEvent,
        }
    }
}

/// One published event: which object, what happened, and the pod status at that moment.
#[derive(Debug, Clone)]
pub struct Event {
    pub container_id: String,
    pub kind: EventKind,
    pub created_at_ns: i64,
    pub pod_status: Option<PodSandboxStatus>,
    /// For container events: the container's status.
    pub containers_statuses: Vec<ContainerStatus>,
}

impl Event {
    /// The CRI message for this event.
    pub fn to_cri(&self) -> ContainerEventResponse {
        ContainerEventResponse {
            container_id: self.container_id.clone(),
            container_event_type: self.kind.to_cri() as i32,
            created_at: self.created_at_ns,
            pod_sandbox_status: self.pod_status.clone(),
            containers_statuses: self.containers_statuses.clone(),
        }
    }
}

/// The bus. Cheap to clone.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl EventBus {
    /// Publishes without waiting; with no subscriber the event is dropped.
    pub fn publish(&self, event: Event) {
        tracing::debug!(id = %event.container_id, kind = ?event.kind, "event");
        let _ = self.tx.send(event);
    }

    /// A new subscription that sees events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

/// Nanoseconds since the Unix epoch.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: usize) -> Event {
        Event {
            container_id: i.to_string(),
            kind: EventKind::Created,
            created_at_ns: now_ns(),
            pod_status: None,
            containers_statuses: Vec::new(),
        }
    }

    #[tokio::test]
    async fn slow_subscriber_lags_but_publisher_never_blocks() {
        let bus = EventBus::default();
        let mut rx = bus.subscribe();
        for i in 0..CAPACITY + 10 {
            bus.publish(ev(i));
        }
        assert!(matches!(
            rx.recv().await,
            Err(broadcast::error::RecvError::Lagged(10))
        ));
        assert_eq!(rx.recv().await.unwrap().container_id, "10");
    }

    #[test]
    fn maps_kinds_to_cri() {
        let e = Event {
            kind: EventKind::Stopped,
            ..ev(1)
        };
        assert_eq!(
            e.to_cri().container_event_type,
            ContainerEventType::ContainerStoppedEvent as i32
        );
    }
}
