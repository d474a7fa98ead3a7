//! Kubernetes CRI v1 (`runtime.v1`) messages and gRPC client/server stubs.
//!
//! Generated at build time from the vendored `proto/api.proto`; no hand-written logic lives here.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}
