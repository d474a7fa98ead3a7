//! crust, a Kubernetes CRI v1 runtime: the core library behind `crustd`.
//!
//! [`daemon`] wires everything from a [`config::Config`] and serves it; [`server`] is the gRPC
//! surface; [`sandbox`] owns pod sandboxes; [`oci_runtime`] drives runc; [`store`] persists;
//! [`events`] is the event bus; [`rollback`] is the undo stack.

pub mod config;
pub mod container;
pub mod daemon;
pub mod error;
pub mod events;
pub mod failpoint;
pub mod image;
pub mod memory;
pub mod metrics;
pub mod mountinfo;
pub mod network;
pub mod notify;
pub mod oci_runtime;
pub mod rollback;
pub mod safe_fs;
pub mod sandbox;
pub mod server;
pub mod store;
pub mod streaming;
pub mod sysctl;
