//! A typed client for containerd runtime v2 shims (`containerd-shim-runc-v2`, Kata's
//! `containerd-shim-kata-v2`, gVisor's `containerd-shim-runsc-v1`): the `start` bootstrap that
//! launches a shim for a bundle and returns its ttrpc address, the Task service over ttrpc (the
//! containerd project's own `containerd-shim-protos` and `ttrpc` crates), and `delete`, the
//! cleanup of a shim that is gone. It knows nothing of CRI or of crust.
//!
//! What a shim expects of its caller (containerd's runtime v2 contract, as containerd 1.6's runc
//! shim shows): it runs in the bundle dir, logs into a FIFO named `log` there (which somebody must
//! read, or the shim dies at once), prints `unix://...` on stdout and writes it to
//! `<bundle>/address`, and sends events to `TTRPC_ADDRESS` / its publish binary.

pub mod bootstrap;
pub mod events;
pub mod task;

pub use bootstrap::{ShimBinary, ShimLog};
pub use containerd_shim_protos::{api, protobuf, shim::oci};
pub use events::EventsServer;
pub use task::{linux_resources, process_spec, runc_options, Shim};

/// Errors from a shim.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("shim {binary} {command} failed ({status}): {message}")]
    Command {
        binary: std::path::PathBuf,
        command: &'static str,
        status: std::process::ExitStatus,
        message: String,
    },
    #[error("shim {binary} printed no address: {output:?}")]
    NoAddress {
        binary: std::path::PathBuf,
        output: String,
    },
    #[error("shim {binary} did not answer {command} within {seconds} s")]
    Timeout {
        binary: std::path::PathBuf,
        command: &'static str,
        seconds: u64,
    },
    #[error("ttrpc {call}: {source}")]
    Ttrpc {
        call: &'static str,
        source: ttrpc::Error,
    },
    #[error("shim delete answered junk: {0}")]
    Decode(String),
}

impl ShimError {
    /// The shim answered that the task or process does not exist.
    pub fn is_not_found(&self) -> bool {
        match self {
            ShimError::Ttrpc {
                source: ttrpc::Error::RpcStatus(status),
                ..
            } => status.code() == ttrpc::Code::NOT_FOUND,
            _ => false,
        }
    }
}
