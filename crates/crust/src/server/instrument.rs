//! Per-call span, timing and error logging for every CRI verb.

use std::{future::Future, time::Instant};

use tonic::Status;
use tracing::Instrument;

/// Runs `fut` inside a span named after the RPC and logs its outcome.
pub async fn call<T, F>(rpc: &'static str, fut: F) -> Result<T, Status>
where
    F: Future<Output = Result<T, Status>>,
{
    let started = Instant::now();
    let result = fut.instrument(tracing::debug_span!("cri", rpc)).await;
    let elapsed_us = started.elapsed().as_micros() as u64;
    crate::memory::note_activity();
    match &result {
        Ok(_) => tracing::debug!(rpc, elapsed_us, "ok"),
        Err(status) => {
            tracing::warn!(rpc, elapsed_us, code = ?status.code(), message = status.message(), "failed")
        }
    }
    result
}

/// UNIMPLEMENTED naming the RPC.
pub fn unimplemented<T>(rpc: &'static str) -> Result<T, Status> {
    Err(Status::unimplemented(format!(
        "crust does not implement {rpc} yet"
    )))
}
