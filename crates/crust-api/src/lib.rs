//! crust's administration API (`crust.admin.v1`): what the operator CLI needs beyond CRI.
//!
//! Generated at build time from `proto/admin.proto`; no hand-written logic lives here.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("crust.admin.v1");
}
