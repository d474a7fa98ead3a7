//! The sandbox checkpoint: the port mappings and host-network flag CNI needs again on teardown,
//! with a sha256 checksum over the JSON without it (iSulad's format, keeping SCTP and host_ip).

use cri_api::v1::{PodSandboxConfig, Protocol};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One port mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    pub protocol: String,
    pub container_port: i32,
    pub host_port: i32,
    pub host_ip: String,
}

/// Checkpoint payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointData {
    pub port_mappings: Vec<PortMapping>,
    pub host_network: bool,
}

/// The checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: String,
    pub name: String,
    pub ns: String,
    pub data: CheckpointData,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub checksum: String,
}

impl Checkpoint {
    /// Builds the checkpoint for a pod config.
    pub fn from_config(config: &PodSandboxConfig, host_network: bool) -> Checkpoint {
        let meta = config.metadata.clone().unwrap_or_default();
        let port_mappings = config
            .port_mappings
            .iter()
            .map(|p| PortMapping {
                protocol: protocol_name(p.protocol).to_string(),
                container_port: p.container_port,
                host_port: p.host_port,
                host_ip: p.host_ip.clone(),
            })
            .collect();
        let mut cp = Checkpoint {
            version: "v1".to_string(),
            name: meta.name,
            ns: meta.namespace,
            data: CheckpointData {
                port_mappings,
                host_network,
            },
            checksum: String::new(),
        };
        cp.checksum = cp.compute_checksum();
        cp
    }

    fn compute_checksum(&self) -> String {
        let unsummed = Checkpoint {
            checksum: String::new(),
            ..self.clone()
        };
        let json = serde_json::to_vec(&unsummed).unwrap_or_default();
        hex::encode(Sha256::digest(json))
    }

    /// The checkpoint as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Parses and verifies a checkpoint; `None` when corrupt.
    pub fn parse(json: &str) -> Option<Checkpoint> {
        let cp: Checkpoint = serde_json::from_str(json).ok()?;
        (cp.checksum == cp.compute_checksum()).then_some(cp)
    }
}

fn protocol_name(p: i32) -> &'static str {
    match Protocol::try_from(p) {
        Ok(Protocol::Udp) => "udp",
        Ok(Protocol::Sctp) => "sctp",
        _ => "tcp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::{PodSandboxMetadata, PortMapping as CriPort};

    #[test]
    fn keeps_sctp_and_host_ip_and_verifies_checksum() {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: "p".into(),
                namespace: "n".into(),
                ..Default::default()
            }),
            port_mappings: vec![CriPort {
                protocol: Protocol::Sctp as i32,
                container_port: 80,
                host_port: 8080,
                host_ip: "127.0.0.1".into(),
            }],
            ..Default::default()
        };
        let cp = Checkpoint::from_config(&config, false);
        assert_eq!(cp.data.port_mappings[0].protocol, "sctp");
        assert_eq!(cp.data.port_mappings[0].host_ip, "127.0.0.1");
        let parsed = Checkpoint::parse(&cp.to_json()).unwrap();
        assert_eq!(parsed, cp);
        let tampered = cp.to_json().replace("8080", "8081");
        assert!(Checkpoint::parse(&tampered).is_none());
    }
}
