//! CRI views of a sandbox record: `PodSandboxStatus`, `PodSandbox` (for List) and the verbose info.

use std::collections::HashMap;

use cri_api::v1::{
    LinuxPodSandboxStatus, Namespace, NamespaceOption, PodIp, PodSandbox, PodSandboxMetadata,
    PodSandboxNetworkStatus, PodSandboxState, PodSandboxStatus,
};

use super::record::SandboxRecord;
use crate::network::cni::DEFAULT_IFNAME;

fn cri_state(record: &SandboxRecord) -> i32 {
    if record.state.is_ready() {
        PodSandboxState::SandboxReady as i32
    } else {
        PodSandboxState::SandboxNotready as i32
    }
}

fn metadata(record: &SandboxRecord) -> PodSandboxMetadata {
    record
        .config
        .metadata
        .clone()
        .unwrap_or_else(|| PodSandboxMetadata {
            name: format!("unknown-{}", record.id),
            uid: record.id.clone(),
            ..Default::default()
        })
}

fn namespace_options(record: &SandboxRecord) -> Option<NamespaceOption> {
    record
        .config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|s| s.namespace_options.clone())
}

/// Primary IP: the default network's (eth0) IPv4, else its IPv6; every other address (dual-stack,
/// extra networks) in `additional_ips`.
fn network_status(record: &SandboxRecord) -> PodSandboxNetworkStatus {
    let Some(settings) = &record.network else {
        return PodSandboxNetworkStatus::default();
    };
    let mut ips: Vec<&String> = Vec::new();
    let eth0 = settings
        .attachments
        .iter()
        .filter(|a| a.ifname == DEFAULT_IFNAME);
    let others = settings
        .attachments
        .iter()
        .filter(|a| a.ifname != DEFAULT_IFNAME);
    for a in eth0.chain(others) {
        ips.extend(a.ips.iter());
    }
    let primary = ips
        .iter()
        .position(|ip| !ip.contains(':'))
        .or(if ips.is_empty() { None } else { Some(0) });
    let Some(primary) = primary else {
        return PodSandboxNetworkStatus::default();
    };
    let ip = ips.remove(primary).clone();
    PodSandboxNetworkStatus {
        ip,
        additional_ips: ips.into_iter().map(|ip| PodIp { ip: ip.clone() }).collect(),
    }
}

/// PodSandboxStatus for a record (IPs come with pod networking; host-network pods report none).
pub fn pod_status(record: &SandboxRecord) -> PodSandboxStatus {
    PodSandboxStatus {
        id: record.id.clone(),
        metadata: Some(metadata(record)),
        state: cri_state(record),
        created_at: record.created_at_ns,
        network: Some(network_status(record)),
        linux: Some(LinuxPodSandboxStatus {
            namespaces: Some(Namespace {
                options: namespace_options(record),
            }),
        }),
        labels: record.config.labels.clone(),
        annotations: record.config.annotations.clone(),
        runtime_handler: record.runtime_handler.clone(),
    }
}

/// The List entry for a record.
pub fn pod(record: &SandboxRecord) -> PodSandbox {
    PodSandbox {
        id: record.id.clone(),
        metadata: Some(metadata(record)),
        state: cri_state(record),
        created_at: record.created_at_ns,
        labels: record.config.labels.clone(),
        annotations: record.config.annotations.clone(),
        runtime_handler: record.runtime_handler.clone(),
    }
}

/// The verbose `info` map: `{"info": <JSON of the internal record>}`.
pub fn verbose_info(record: &SandboxRecord, load_error: Option<&str>) -> HashMap<String, String> {
    let mut value = serde_json::json!({
        "id": record.id,
        "name": record.name,
        "state": record.state,
        "runtimeHandler": record.runtime_handler,
        "networkMode": record.network_mode,
        "networkSetup": record.network_order(),
        "held": record.held,
        "sandbox": record.sandbox,
        "pause": record.pause,
        "netns": record.netns,
        "attachments": record.attachments,
        "network": record.network,
        "cgroupsPath": record.cgroups_path,
        "checkpoint": record.checkpoint,
        "reason": record.reason,
        "podResources": {
            "overhead": record.pod_resources.overhead,
            "resources": record.pod_resources.resources,
        },
    });
    if let Some(err) = load_error {
        value["loadError"] = serde_json::json!(err);
    }
    HashMap::from([("info".to_string(), value.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        network::cni::AttachmentStatus,
        sandbox::record::{Held, NetworkMode, NetworkSettings},
        sandbox::state::SandboxState,
    };

    fn record(attachments: Vec<AttachmentStatus>) -> SandboxRecord {
        SandboxRecord {
            id: "x".into(),
            name: "n".into(),
            config: Default::default(),
            requested: Default::default(),
            runtime_handler: "runc".into(),
            network_mode: NetworkMode::Cni,
            state: SandboxState::Ready,
            created_at_ns: 1,
            held: Held::default(),
            sandbox: Default::default(),
            pause: None,
            cgroups_path: String::new(),
            checkpoint: String::new(),
            attachments: Vec::new(),
            network: Some(NetworkSettings {
                sandbox_key: "/k".into(),
                attachments,
            }),
            netns: None,
            reason: None,
            rootfs: None,
            pod_resources: Default::default(),
            network_order: None,
        }
    }

    fn att(network: &str, ifname: &str, ips: &[&str]) -> AttachmentStatus {
        AttachmentStatus {
            network: network.into(),
            ifname: ifname.into(),
            ips: ips.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn primary_is_eth0_ipv4_and_the_rest_are_additional() {
        let r = record(vec![
            att("extra", "net1", &["10.2.0.5"]),
            att("default", "eth0", &["fd00::5", "10.1.0.5"]),
        ]);
        let n = network_status(&r);
        assert_eq!(n.ip, "10.1.0.5");
        let extra: Vec<_> = n.additional_ips.iter().map(|p| p.ip.as_str()).collect();
        assert_eq!(
            extra,
            ["fd00::5", "10.2.0.5"],
            "dual-stack kept, extra networks after eth0"
        );
        let v6 = network_status(&record(vec![att("default", "eth0", &["fd00::7"])]));
        assert_eq!(v6.ip, "fd00::7");
        assert!(network_status(&record(vec![])).ip.is_empty());
    }
}
