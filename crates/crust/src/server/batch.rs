//! The streaming list RPCs (`StreamPodSandboxes`, `StreamContainers`, `StreamContainerStats`,
//! `StreamPodSandboxStats`, `StreamPodSandboxMetrics`, `StreamImages`) answer with the same items
//! as their List counterparts, in batches of at most [`BATCH_BYTES`] encoded bytes each, so a
//! node with 10,000 pods never needs a message near gRPC's 4 MiB default limit.

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::Status;

/// The most encoded bytes of items in one streamed message (a single larger item goes alone).
pub const BATCH_BYTES: usize = 1 << 20;

/// A stream of batch responses.
pub type BatchStream<R> = Pin<Box<dyn Stream<Item = Result<R, Status>> + Send>>;

/// Splits `items` into consecutive batches of at most `limit` encoded bytes.
pub fn split<T: prost::Message>(items: Vec<T>, limit: usize) -> Vec<Vec<T>> {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut size = 0;
    for item in items {
        // Each repeated item costs its length plus a tag and a length prefix.
        let len = item.encoded_len();
        let cost = len + 1 + prost::length_delimiter_len(len);
        match out.last_mut() {
            Some(batch) if size + cost <= limit => batch.push(item),
            _ => {
                out.push(vec![item]);
                size = 0;
            }
        }
        size += cost;
    }
    out
}

/// The response stream: one message per batch (none for an empty list).
pub fn stream<T, R>(items: Vec<T>, wrap: fn(Vec<T>) -> R) -> BatchStream<R>
where
    T: prost::Message + 'static,
    R: Send + 'static,
{
    let batches = split(items, BATCH_BYTES);
    Box::pin(tokio_stream::iter(
        batches.into_iter().map(move |b| Ok(wrap(b))),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::{PodSandbox, StreamPodSandboxesResponse};
    use prost::Message as _;

    #[test]
    fn batches_stay_under_the_limit_and_keep_order() {
        let pods: Vec<PodSandbox> = (0..10_000)
            .map(|i| PodSandbox {
                id: format!("{i:064}"),
                labels: [("app".to_string(), "x".repeat(200))].into(),
                ..Default::default()
            })
            .collect();
        let batches = split(pods.clone(), BATCH_BYTES);
        assert!(batches.len() > 1);
        for b in &batches {
            let msg = StreamPodSandboxesResponse {
                pod_sandboxes: b.clone(),
            };
            assert!(msg.encoded_len() <= BATCH_BYTES, "{}", msg.encoded_len());
        }
        let flat: Vec<PodSandbox> = batches.into_iter().flatten().collect();
        assert_eq!(flat, pods);
        assert!(split(Vec::<PodSandbox>::new(), 10).is_empty());
        let huge = PodSandbox {
            id: "x".repeat(100),
            ..Default::default()
        };
        assert_eq!(
            split(vec![huge.clone(), huge], 10).len(),
            2,
            "oversized items go alone"
        );
    }
}
