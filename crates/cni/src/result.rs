//! CNI results (0.3.x, 0.4.0, 1.0.0) and error objects.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One assigned address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// CIDR notation, e.g. `10.88.0.5/16`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

impl IpConfig {
    /// The address without its prefix length.
    pub fn ip(&self) -> &str {
        self.address.split('/').next().unwrap_or(&self.address)
    }

    /// True for IPv4.
    pub fn is_v4(&self) -> bool {
        !self.address.contains(':')
    }
}

/// One interface in the result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default)]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// The parsed parts of a result that crust uses; `raw` keeps the whole object for `prevResult`
/// and the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CniResult {
    pub cni_version: String,
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub raw: Value,
}

#[derive(Deserialize)]
struct Wire {
    #[serde(rename = "cniVersion", default)]
    cni_version: String,
    #[serde(default)]
    interfaces: Vec<Interface>,
    #[serde(default)]
    ips: Vec<IpConfig>,
}

impl CniResult {
    /// Parses a result object of version 0.3.0 to 1.0.0 (0.3/0.4 `version` fields are ignored).
    pub fn parse(value: Value) -> Result<CniResult, String> {
        let version = value["cniVersion"].as_str().unwrap_or("");
        let supported =
            version.starts_with("0.3.") || version == "0.4.0" || version.starts_with("1.");
        if !supported {
            return Err(format!("unsupported result cniVersion {version:?}"));
        }
        let wire: Wire =
            serde_json::from_value(value.clone()).map_err(|e| format!("malformed result: {e}"))?;
        Ok(CniResult {
            cni_version: wire.cni_version,
            interfaces: wire.interfaces,
            ips: wire.ips,
            raw: value,
        })
    }

    /// Addresses assigned on the interface named `ifname` (or unassigned to any interface).
    pub fn ips_on(&self, ifname: &str) -> Vec<&IpConfig> {
        self.ips
            .iter()
            .filter(
                |ip| match ip.interface.and_then(|i| self.interfaces.get(i)) {
                    Some(iface) => iface.name == ifname,
                    None => true,
                },
            )
            .collect()
    }
}

/// A CNI error object printed by a failing plugin.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorObject {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub msg: String,
    #[serde(default)]
    pub details: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_1_0_and_0_3_results() {
        let r = CniResult::parse(json!({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": "cni0", "mac": "aa"}, {"name": "eth0", "mac": "bb", "sandbox": "/n"}],
            "ips": [{"address": "10.1.0.5/24", "gateway": "10.1.0.1", "interface": 1},
                    {"address": "fd00::5/64", "interface": 1}]
        }))
        .unwrap();
        assert_eq!(r.ips_on("eth0").len(), 2);
        assert_eq!(r.ips[0].ip(), "10.1.0.5");
        assert!(r.ips[0].is_v4() && !r.ips[1].is_v4());
        let old = CniResult::parse(
            json!({"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.2.0.2/16"}]}),
        )
        .unwrap();
        assert_eq!(old.ips_on("eth0")[0].ip(), "10.2.0.2");
        assert!(CniResult::parse(json!({"cniVersion": "0.2.0", "ip4": {}})).is_err());
        assert!(CniResult::parse(json!({"cniVersion": "1.0.0", "ips": "x"})).is_err());
    }
}
