//! Pod networking: pinned network namespaces ([`netns`]) and the CNI-backed pod network ([`cni`]).

pub mod cni;
pub mod netns;
