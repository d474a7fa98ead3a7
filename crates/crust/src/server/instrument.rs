//! Per-call span, timing and error logging for every CRI verb, and the count of the calls that
//! change state (pods, containers, images) still running, which a graceful shutdown waits for.

use std::{
    future::Future,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use tonic::Status;
use tracing::Instrument;

/// The RPCs a shutdown lets finish (cutting them would look like a crash to recovery).
const MUTATING: [&str; 9] = [
    "RunPodSandbox",
    "StopPodSandbox",
    "RemovePodSandbox",
    "CreateContainer",
    "StartContainer",
    "StopContainer",
    "RemoveContainer",
    "PullImage",
    "RemoveImage",
];

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static DRAINED: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Counts one mutating call while it lives.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if IN_FLIGHT.fetch_sub(1, Ordering::SeqCst) == 1 {
            DRAINED.notify_waiters();
        }
    }
}

/// Mutating calls running now.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::SeqCst)
}

/// Waits until no mutating call runs, or `grace` passed; true when they all finished.
pub async fn drain(grace: Duration) -> bool {
    let wait = async {
        loop {
            let notified = DRAINED.notified();
            if in_flight() == 0 {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(grace, wait).await.is_ok()
}

/// Runs `fut` inside a span named after the RPC and logs its outcome.
pub async fn call<T, F>(rpc: &'static str, fut: F) -> Result<T, Status>
where
    F: Future<Output = Result<T, Status>>,
{
    let _counted = MUTATING.contains(&rpc).then(InFlight::enter);
    let started = Instant::now();
    let result = fut.instrument(tracing::debug_span!("cri", rpc)).await;
    let elapsed = started.elapsed();
    let elapsed_us = elapsed.as_micros() as u64;
    crate::memory::note_activity();
    let code = result
        .as_ref()
        .map_or_else(|s| s.code(), |_| tonic::Code::Ok);
    crate::metrics::global().rpc(rpc, code, elapsed);
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
