//! The CNI exec protocol (spec 1.0), independent of CRI and pods.
//!
//! [`config`] loads network configurations (`*.conf`, `*.conflist`, `*.json`) in lexical order;
//! [`exec`] calls plugins (environment per child, stdin config with name/cniVersion/prevResult and
//! the `runtimeConfig` for declared capabilities, a timeout per call) and chains them: ADD in order
//! with `prevResult`, DEL in reverse, best effort; [`result`] parses 0.3.x-1.0.0 results and CNI error
//! objects; [`cache`] keeps config + result on disk so DEL works after a restart.

pub mod cache;
pub mod config;
pub mod exec;
pub mod result;

pub use cache::{Cache, CachedAttachment};
pub use config::{load_dir, ConfigError, NetworkConfigList};
pub use exec::{Cni, CniError, RuntimeConf};
pub use result::{CniResult, IpConfig};
