//! Which RunPodSandbox order a pod gets, and why: its handler's `network_setup` default
//! (`after-start` unless the handler says otherwise, as the seed has it), overridden per pod both
//! ways by the annotation `cri.sandbox.network.setup.v2` (`"true"` = network first, `"false"` =
//! start first). The choice is made once, stored in the pod's record and shown by verbose
//! PodSandboxStatus (`crust inspectp`).

use cri_api::v1::PodSandboxConfig;
use serde::{Deserialize, Serialize};

use super::SandboxError;
use crate::config::{NetworkSetup, RuntimeConfig};

/// The pod annotation choosing the order.
pub const ANNOTATION_NETWORK_SETUP_V2: &str = "cri.sandbox.network.setup.v2";

/// A pod's order and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOrder {
    pub order: NetworkSetup,
    /// Why: the annotation, the handler's default, or host networking.
    pub reason: String,
}

impl NetworkOrder {
    /// Network set up before the sandbox is created.
    pub fn network_first(&self) -> bool {
        self.order == NetworkSetup::BeforeStart
    }

    /// The order of a record written before the choice was stored: only the annotation
    /// chose, and only `"true"` meant network first.
    pub fn legacy(config: &PodSandboxConfig) -> NetworkOrder {
        let first = config
            .annotations
            .get(ANNOTATION_NETWORK_SETUP_V2)
            .is_some_and(|v| v == "true");
        NetworkOrder {
            order: if first {
                NetworkSetup::BeforeStart
            } else {
                NetworkSetup::AfterStart
            },
            reason: "recorded before crust stored the choice".into(),
        }
    }
}

/// The order for a pod of `handler` (configured as `runtime`); `cni` false for host-network pods,
/// which have no CNI step in either order. A value of the annotation other than `"true"` or
/// `"false"` is InvalidArgument.
pub fn choose(
    config: &PodSandboxConfig,
    handler: &str,
    runtime: &RuntimeConfig,
    cni: bool,
) -> Result<NetworkOrder, SandboxError> {
    let annotated = match config.annotations.get(ANNOTATION_NETWORK_SETUP_V2) {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(NetworkSetup::BeforeStart),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(NetworkSetup::AfterStart),
        Some(v) => {
            return Err(SandboxError::InvalidArgument {
                field: "annotations",
                reason: format!(
                    "{ANNOTATION_NETWORK_SETUP_V2} is {v:?}; it takes \"true\" (network before \
                     the sandbox starts) or \"false\" (after)"
                ),
            })
        }
    };
    let (order, why) = match annotated {
        Some(order) => (
            order,
            format!("pod annotation {ANNOTATION_NETWORK_SETUP_V2}"),
        ),
        None => (
            runtime.network_setup,
            format!("runtime handler {handler:?} default (network_setup)"),
        ),
    };
    let reason = if cni {
        why
    } else {
        format!("{why}; host network: no CNI step in either order")
    };
    Ok(NetworkOrder { order, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(annotation: Option<&str>) -> PodSandboxConfig {
        let mut config = PodSandboxConfig::default();
        if let Some(v) = annotation {
            config
                .annotations
                .insert(ANNOTATION_NETWORK_SETUP_V2.into(), v.into());
        }
        config
    }

    fn handler(network_setup: NetworkSetup) -> RuntimeConfig {
        RuntimeConfig {
            network_setup,
            ..Default::default()
        }
    }

    #[test]
    fn the_handler_default_and_the_annotation_both_ways() {
        let after = handler(NetworkSetup::AfterStart);
        let before = handler(NetworkSetup::BeforeStart);
        let order = |a, h: &RuntimeConfig| choose(&pod(a), "h", h, true).unwrap().order;
        assert_eq!(order(None, &after), NetworkSetup::AfterStart);
        assert_eq!(order(None, &before), NetworkSetup::BeforeStart);
        assert_eq!(order(Some("true"), &after), NetworkSetup::BeforeStart);
        assert_eq!(order(Some("false"), &before), NetworkSetup::AfterStart);
        assert_eq!(order(Some("TRUE"), &after), NetworkSetup::BeforeStart);
        let chosen = choose(&pod(None), "runsc", &before, true).unwrap();
        assert!(chosen.reason.contains("\"runsc\""), "{}", chosen.reason);
        let chosen = choose(&pod(Some("false")), "runsc", &before, true).unwrap();
        assert!(chosen.reason.contains("annotation"), "{}", chosen.reason);
    }

    #[test]
    fn other_annotation_values_are_refused() {
        let err = choose(&pod(Some("yes")), "h", &RuntimeConfig::default(), true).unwrap_err();
        assert!(matches!(err, SandboxError::InvalidArgument { .. }), "{err}");
    }

    #[test]
    fn legacy_records_keep_the_old_reading() {
        assert!(NetworkOrder::legacy(&pod(Some("true"))).network_first());
        assert!(!NetworkOrder::legacy(&pod(Some("TRUE"))).network_first());
        assert!(!NetworkOrder::legacy(&pod(None)).network_first());
    }
}
