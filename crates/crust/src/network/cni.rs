//! The CNI pod network (SANDBOX.md §4): which networks a pod attaches to, the CNI_ARGS and
//! capability arguments it gets, ADD/DEL through crates/cni with the result cache, and the
//! NetworkReady condition. Configs are reloaded when the conf dir changes; when it holds none,
//! crust's embedded bridge network is used (unless disabled).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, SystemTime},
};

use cni::{Cache, CachedAttachment, Cni, CniError, CniResult, NetworkConfigList, RuntimeConf};
use cri_api::v1::DnsConfig;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::sandbox::checkpoint::PortMapping;

/// Annotation naming extra networks: JSON `[{"name": "...", "interface": "..."}]`.
pub const ANNOTATION_EXTRA_NETWORKS: &str = "network.alpha.kubernetes.io/network";
/// Prefix of annotations that become CNI_ARGS.
pub const ANNOTATION_CNI_ARGS_PREFIX: &str = "extension.network.kubernetes.io/cniargs/";
/// Bandwidth annotations.
pub const ANNOTATION_INGRESS: &str = "kubernetes.io/ingress-bandwidth";
pub const ANNOTATION_EGRESS: &str = "kubernetes.io/egress-bandwidth";
/// The interface of the default network.
pub const DEFAULT_IFNAME: &str = "eth0";

/// Pod networking failures.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("no CNI network config in {0}")]
    NoConfig(PathBuf),
    #[error("annotation {ANNOTATION_EXTRA_NETWORKS} names network {0:?}, which has no config")]
    UnknownNetwork(String),
    #[error("invalid annotation {key}: {reason}")]
    BadAnnotation { key: String, reason: String },
    #[error(transparent)]
    Cni(#[from] Box<CniError>),
    #[error("CNI cache: {0}")]
    Cache(std::io::Error),
    #[error("CNI network {network} on {ifname}: {source}")]
    Attach {
        network: String,
        ifname: String,
        #[source]
        source: Box<CniError>,
    },
}

/// One network attachment of a pod, planned before ADD (write-ahead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub network: String,
    pub ifname: String,
}

/// What the pod got from one attachment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentStatus {
    pub network: String,
    pub ifname: String,
    /// Addresses without prefix length.
    pub ips: Vec<String>,
}

/// Everything the network needs to know about a pod.
#[derive(Debug, Clone, Default)]
pub struct PodNetworkRequest {
    pub id: String,
    /// Netns path; empty when it is gone (DEL still runs).
    pub netns: String,
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub annotations: HashMap<String, String>,
    pub port_mappings: Vec<PortMapping>,
    pub dns: Option<DnsConfig>,
}

/// Settings of the CNI network.
#[derive(Debug, Clone)]
pub struct CniOptions {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    pub timeout: Duration,
    pub cache_dir: PathBuf,
    /// Where to write the embedded default network when the conf dir is empty; `None` disables it.
    pub embedded: Option<EmbeddedNetwork>,
}

/// crust's own bridge network, used when the conf dir holds no config.
#[derive(Debug, Clone)]
pub struct EmbeddedNetwork {
    pub dir: PathBuf,
    pub bridge: String,
    pub subnet: String,
}

impl EmbeddedNetwork {
    fn conflist(&self) -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "crust",
            "plugins": [
                { "type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": true,
                  "hairpinMode": true,
                  "ipam": { "type": "host-local", "ranges": [[{ "subnet": self.subnet }]],
                            "routes": [{ "dst": "0.0.0.0/0" }] } },
                { "type": "portmap", "capabilities": { "portMappings": true } }
            ]
        })
    }
}

type Stamp = Vec<(PathBuf, Option<SystemTime>, u64)>;

#[derive(Debug, Default)]
struct Loaded {
    /// The conf dir's listing when `lists` was loaded; `None` before the first load.
    stamp: Option<Stamp>,
    lists: Arc<Vec<NetworkConfigList>>,
}

/// The CNI-backed pod network.
#[derive(Debug)]
pub struct CniNetwork {
    opts: CniOptions,
    cni: Cni,
    cache: Cache,
    loaded: RwLock<Loaded>,
    pod_cidr: RwLock<String>,
}

impl CniNetwork {
    /// A network over `opts`.
    pub fn new(opts: CniOptions) -> CniNetwork {
        CniNetwork {
            cni: Cni::new(opts.bin_dirs.clone(), opts.timeout).with_observer(std::sync::Arc::new(
                |plugin, command, ok, took| crate::metrics::global().cni(plugin, command, ok, took),
            )),
            cache: Cache::new(opts.cache_dir.clone()),
            opts,
            loaded: RwLock::new(Loaded::default()),
            pod_cidr: RwLock::new(String::new()),
        }
    }

    /// Sets the pod CIDR (from UpdateRuntimeConfig) passed as the `ipRanges` capability.
    pub fn set_pod_cidr(&self, cidr: String) {
        *self.pod_cidr.write().unwrap_or_else(|p| p.into_inner()) = cidr;
    }

    /// The CNI result cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The current networks, reloaded when the conf dir changed; the first is the default. When the
    /// conf dir holds no valid config, the embedded default network (if enabled).
    pub fn networks(&self) -> Arc<Vec<NetworkConfigList>> {
        let stamp = dir_stamp(&self.opts.conf_dir);
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.stamp.as_ref() == Some(&stamp) {
                return loaded.lists.clone();
            }
        }
        let lists = Arc::new(self.load());
        tracing::info!(dir = %self.opts.conf_dir.display(), networks = ?lists.iter().map(|l| &l.name).collect::<Vec<_>>(), "CNI config loaded");
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Loaded {
            stamp: Some(stamp),
            lists: lists.clone(),
        };
        lists
    }

    fn load(&self) -> Vec<NetworkConfigList> {
        let (lists, errors) = cni::load_dir(&self.opts.conf_dir);
        for e in &errors {
            tracing::warn!(error = %e, "invalid CNI config skipped");
        }
        match &self.opts.embedded {
            Some(embedded) if lists.is_empty() => match write_embedded(embedded) {
                Ok(()) => cni::load_dir(&embedded.dir).0,
                Err(e) => {
                    tracing::error!(error = %e, "cannot write the embedded CNI network");
                    Vec::new()
                }
            },
            _ => lists,
        }
    }

    /// NetworkReady: `Err(message)` when no network config is usable.
    pub fn ready(&self) -> Result<(), String> {
        if self.networks().is_empty() {
            return Err(NetworkError::NoConfig(self.opts.conf_dir.clone()).to_string());
        }
        Ok(())
    }

    /// The attachments a pod gets: extra networks from its annotation, then the default on eth0.
    pub fn plan(
        &self,
        annotations: &HashMap<String, String>,
    ) -> Result<Vec<Attachment>, NetworkError> {
        let networks = self.networks();
        let default = networks
            .first()
            .ok_or_else(|| NetworkError::NoConfig(self.opts.conf_dir.clone()))?;
        let mut plan = extra_networks(annotations)?;
        for a in &plan {
            if !networks.iter().any(|n| n.name == a.network) {
                return Err(NetworkError::UnknownNetwork(a.network.clone()));
            }
        }
        plan.push(Attachment {
            network: default.name.clone(),
            ifname: DEFAULT_IFNAME.to_string(),
        });
        Ok(plan)
    }

    /// ADD for every planned attachment, in order. Each cache entry is written before its ADD so
    /// DEL can follow even a crash in the middle.
    pub async fn setup(
        &self,
        pod: &PodNetworkRequest,
        plan: &[Attachment],
    ) -> Result<Vec<AttachmentStatus>, NetworkError> {
        let networks = self.networks();
        let mut statuses = Vec::new();
        for a in plan {
            let list = networks
                .iter()
                .find(|n| n.name == a.network)
                .ok_or_else(|| NetworkError::UnknownNetwork(a.network.clone()))?;
            let rt = self.runtime_conf(pod, &a.ifname);
            let mut entry = cache_entry(list, &rt, &a.network)?;
            entry = self.write_cache(entry, false).await?;
            let result = self
                .cni
                .add(list, &rt)
                .await
                .map_err(|source| attach_error(a, source))?;
            entry.result = Some(result.raw.clone());
            self.write_cache(entry, true).await?;
            statuses.push(status_of(a, &result));
        }
        Ok(statuses)
    }

    /// Writes a cache entry on a blocking thread (`sync`: wait for the disk); hands it back.
    async fn write_cache(
        &self,
        entry: CachedAttachment,
        sync: bool,
    ) -> Result<CachedAttachment, NetworkError> {
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            let written = if sync {
                cache.write(&entry)
            } else {
                cache.write_unsynced(&entry)
            };
            written.map(|()| entry)
        })
        .await
        .map_err(|e| NetworkError::Cache(std::io::Error::other(e.to_string())))?
        .map_err(NetworkError::Cache)
    }

    /// DEL for every attachment with the cached config, args and result (or, when the cache is
    /// missing or corrupt, the current config of that network). Every attachment is tried.
    pub async fn teardown(
        &self,
        pod: &PodNetworkRequest,
        attachments: &[Attachment],
    ) -> Result<(), NetworkError> {
        let mut first_error = None;
        for a in attachments.iter().rev() {
            if let Err(e) = self.teardown_one(pod, a).await {
                tracing::warn!(id = %pod.id, network = %a.network, error = %e, "CNI teardown failed");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// DEL for whatever the cache holds for `id` (the sandbox record itself is unreadable).
    pub async fn teardown_cached(&self, id: &str, netns: &str) -> Result<(), NetworkError> {
        let pod = PodNetworkRequest {
            id: id.to_string(),
            netns: netns.to_string(),
            ..Default::default()
        };
        let attachments: Vec<Attachment> = self
            .cache
            .attachments_for(id)
            .into_iter()
            .map(|c| Attachment {
                network: c.network_name,
                ifname: c.if_name,
            })
            .collect();
        self.teardown(&pod, &attachments).await
    }

    async fn teardown_one(
        &self,
        pod: &PodNetworkRequest,
        a: &Attachment,
    ) -> Result<(), NetworkError> {
        let cached = self.cache.read(&a.network, &pod.id, &a.ifname);
        let from_cache = cached
            .as_ref()
            .and_then(|c| NetworkConfigList::parse(&c.config, Path::new("cache")).ok());
        let list = match from_cache {
            Some(list) => list,
            None => match self.networks().iter().find(|n| n.name == a.network) {
                Some(list) => list.clone(),
                None => {
                    tracing::warn!(id = %pod.id, network = %a.network, "no config left for this network; DEL skipped");
                    return Ok(());
                }
            },
        };
        let mut rt = self.runtime_conf(pod, &a.ifname);
        if let Some(c) = &cached {
            rt.args = c.cni_args.clone();
            rt.capability_args = c.capability_args.clone();
        }
        let prev = cached.as_ref().and_then(|c| c.result.clone());
        self.cni
            .del(&list, &rt, prev.as_ref())
            .await
            .map_err(|source| attach_error(a, source))?;
        self.cache
            .remove(&a.network, &pod.id, &a.ifname)
            .map_err(NetworkError::Cache)
    }

    fn runtime_conf(&self, pod: &PodNetworkRequest, ifname: &str) -> RuntimeConf {
        RuntimeConf {
            container_id: pod.id.clone(),
            netns: pod.netns.clone(),
            if_name: ifname.to_string(),
            args: cni_args(pod),
            capability_args: self.capability_args(pod),
        }
    }

    fn capability_args(&self, pod: &PodNetworkRequest) -> Map<String, Value> {
        let mut caps = Map::new();
        let ports: Vec<Value> = pod
            .port_mappings
            .iter()
            .filter(|p| p.host_port > 0)
            .map(|p| {
                json!({ "hostPort": p.host_port, "containerPort": p.container_port,
                             "protocol": p.protocol, "hostIP": p.host_ip })
            })
            .collect();
        if !ports.is_empty() {
            caps.insert("portMappings".into(), Value::Array(ports));
        }
        if let Some(bw) = bandwidth(&pod.annotations) {
            caps.insert("bandwidth".into(), bw);
        }
        let cidr = self
            .pod_cidr
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if !cidr.is_empty() {
            caps.insert("ipRanges".into(), json!([[{ "subnet": cidr }]]));
        }
        if let Some(dns) = &pod.dns {
            caps.insert(
                "dns".into(),
                json!({ "servers": dns.servers, "searches": dns.searches, "options": dns.options }),
            );
        }
        caps
    }
}

fn attach_error(a: &Attachment, source: CniError) -> NetworkError {
    NetworkError::Attach {
        network: a.network.clone(),
        ifname: a.ifname.clone(),
        source: Box::new(source),
    }
}

fn cache_entry(
    list: &NetworkConfigList,
    rt: &RuntimeConf,
    network: &str,
) -> Result<CachedAttachment, NetworkError> {
    let text = std::fs::read_to_string(&list.source).map_err(NetworkError::Cache)?;
    Ok(CachedAttachment {
        kind: "cniCacheV1".into(),
        container_id: rt.container_id.clone(),
        if_name: rt.if_name.clone(),
        network_name: network.to_string(),
        config: text,
        cni_args: rt.args.clone(),
        capability_args: rt.capability_args.clone(),
        result: None,
    })
}

fn status_of(a: &Attachment, result: &CniResult) -> AttachmentStatus {
    AttachmentStatus {
        network: a.network.clone(),
        ifname: a.ifname.clone(),
        ips: result
            .ips_on(&a.ifname)
            .iter()
            .map(|ip| ip.ip().to_string())
            .collect(),
    }
}

fn cni_args(pod: &PodNetworkRequest) -> Vec<(String, String)> {
    let mut args = vec![
        ("IgnoreUnknown".to_string(), "1".to_string()),
        ("K8S_POD_NAMESPACE".to_string(), pod.namespace.clone()),
        ("K8S_POD_NAME".to_string(), pod.name.clone()),
        ("K8S_POD_INFRA_CONTAINER_ID".to_string(), pod.id.clone()),
        ("K8S_POD_UID".to_string(), pod.uid.clone()),
    ];
    let mut extra: Vec<(String, String)> = pod
        .annotations
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix(ANNOTATION_CNI_ARGS_PREFIX)
                .map(|k| (k.to_string(), v.clone()))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect();
    extra.sort();
    args.extend(extra);
    args
}

#[derive(Deserialize)]
struct ExtraNetwork {
    name: String,
    #[serde(default)]
    interface: String,
}

fn extra_networks(annotations: &HashMap<String, String>) -> Result<Vec<Attachment>, NetworkError> {
    let Some(text) = annotations
        .get(ANNOTATION_EXTRA_NETWORKS)
        .filter(|t| !t.trim().is_empty())
    else {
        return Ok(Vec::new());
    };
    let bad = |reason: String| NetworkError::BadAnnotation {
        key: ANNOTATION_EXTRA_NETWORKS.into(),
        reason,
    };
    let list: Vec<ExtraNetwork> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let mut out: Vec<Attachment> = Vec::new();
    for (i, n) in list.into_iter().enumerate() {
        let ifname = if n.interface.is_empty() {
            format!("net{}", i + 1)
        } else {
            n.interface
        };
        if ifname == DEFAULT_IFNAME || out.iter().any(|a| a.ifname == ifname) {
            return Err(bad(format!(
                "interface {ifname:?} is used twice or is {DEFAULT_IFNAME}"
            )));
        }
        out.push(Attachment {
            network: n.name,
            ifname,
        });
    }
    Ok(out)
}

/// `kubernetes.io/{ingress,egress}-bandwidth` as the bandwidth capability (bits per second).
fn bandwidth(annotations: &HashMap<String, String>) -> Option<Value> {
    const BURST: u64 = i32::MAX as u64;
    let rate = |key: &str| annotations.get(key).and_then(|v| parse_quantity(v));
    let (ingress, egress) = (rate(ANNOTATION_INGRESS), rate(ANNOTATION_EGRESS));
    if ingress.is_none() && egress.is_none() {
        return None;
    }
    let mut bw = Map::new();
    if let Some(r) = ingress {
        bw.insert("ingressRate".into(), json!(r));
        bw.insert("ingressBurst".into(), json!(BURST));
    }
    if let Some(r) = egress {
        bw.insert("egressRate".into(), json!(r));
        bw.insert("egressBurst".into(), json!(BURST));
    }
    Some(Value::Object(bw))
}

/// A Kubernetes quantity such as `10M`, `1Gi`, `500k` as an integer.
pub fn parse_quantity(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        _ => return None,
    };
    Some((value * factor) as u64)
}

fn write_embedded(embedded: &EmbeddedNetwork) -> std::io::Result<()> {
    std::fs::create_dir_all(&embedded.dir)?;
    let path = embedded.dir.join("10-crust.conflist");
    let text = serde_json::to_string_pretty(&embedded.conflist()).map_err(std::io::Error::other)?;
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text)?;
    }
    Ok(())
}

fn dir_stamp(dir: &Path) -> Stamp {
    let mut stamp: Vec<_> = std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .filter_map(|e| {
                    let meta = e.metadata().ok()?;
                    Some((e.path(), meta.modified().ok(), meta.len()))
                })
                .collect()
        })
        .unwrap_or_default();
    stamp.sort();
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn network(dir: &Path, embedded: bool) -> CniNetwork {
        CniNetwork::new(CniOptions {
            conf_dir: dir.join("net.d"),
            bin_dirs: vec![PathBuf::from("/usr/lib/cni")],
            timeout: Duration::from_secs(5),
            cache_dir: dir.join("cache"),
            embedded: embedded.then(|| EmbeddedNetwork {
                dir: dir.join("embedded"),
                bridge: "crust-unit0".into(),
                subnet: "10.89.0.0/16".into(),
            }),
        })
    }

    #[test]
    fn readiness_reload_and_embedded_default() {
        let tmp = tempfile::tempdir().unwrap();
        let n = network(tmp.path(), false);
        assert!(n.ready().unwrap_err().contains("no CNI network config"));
        std::fs::create_dir_all(tmp.path().join("net.d")).unwrap();
        std::fs::write(
            tmp.path().join("net.d/20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert!(n.ready().is_ok(), "picked up without a restart");
        std::fs::write(
            tmp.path().join("net.d/10-a.conf"),
            r#"{"cniVersion":"1.0.0","name":"a","type":"ptp"}"#,
        )
        .unwrap();
        assert_eq!(
            n.networks()[0].name,
            "a",
            "lexical order: first is the default"
        );
        let e = network(tmp.path().join("e").as_path(), true);
        assert!(e.ready().is_ok());
        assert_eq!(e.networks()[0].name, "crust");
        assert_eq!(e.networks()[0].plugins[0]["bridge"], "crust-unit0");
    }

    #[test]
    fn plan_with_extra_networks() {
        let tmp = tempfile::tempdir().unwrap();
        let n = network(tmp.path(), false);
        std::fs::create_dir_all(tmp.path().join("net.d")).unwrap();
        std::fs::write(
            tmp.path().join("net.d/10-a.conflist"),
            r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("net.d/20-x.conflist"),
            r#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"macvlan"}]}"#,
        )
        .unwrap();
        let mut ann = HashMap::new();
        assert_eq!(
            n.plan(&ann).unwrap(),
            vec![Attachment {
                network: "a".into(),
                ifname: "eth0".into()
            }]
        );
        ann.insert(
            ANNOTATION_EXTRA_NETWORKS.to_string(),
            r#"[{"name":"x","interface":"net1"}]"#.to_string(),
        );
        let plan = n.plan(&ann).unwrap();
        assert_eq!(
            plan[0],
            Attachment {
                network: "x".into(),
                ifname: "net1".into()
            }
        );
        assert_eq!(plan[1].ifname, "eth0");
        ann.insert(
            ANNOTATION_EXTRA_NETWORKS.to_string(),
            r#"[{"name":"nope"}]"#.to_string(),
        );
        assert!(matches!(n.plan(&ann), Err(NetworkError::UnknownNetwork(_))));
        ann.insert(
            ANNOTATION_EXTRA_NETWORKS.to_string(),
            "not json".to_string(),
        );
        assert!(matches!(
            n.plan(&ann),
            Err(NetworkError::BadAnnotation { .. })
        ));
    }

    #[test]
    fn args_and_capabilities() {
        let tmp = tempfile::tempdir().unwrap();
        let n = network(tmp.path(), false);
        n.set_pod_cidr("10.244.1.0/24".into());
        let pod = PodNetworkRequest {
            id: "abc".into(),
            name: "p".into(),
            namespace: "ns".into(),
            uid: "u".into(),
            annotations: HashMap::from([
                (
                    format!("{ANNOTATION_CNI_ARGS_PREFIX}FOO"),
                    "bar".to_string(),
                ),
                (ANNOTATION_INGRESS.to_string(), "10M".to_string()),
            ]),
            port_mappings: vec![
                PortMapping {
                    protocol: "sctp".into(),
                    container_port: 80,
                    host_port: 8080,
                    host_ip: "127.0.0.1".into(),
                },
                PortMapping {
                    protocol: "tcp".into(),
                    container_port: 81,
                    host_port: 0,
                    host_ip: String::new(),
                },
            ],
            ..Default::default()
        };
        let rt = n.runtime_conf(&pod, "eth0");
        assert_eq!(rt.args[0], ("IgnoreUnknown".into(), "1".into()));
        assert!(rt
            .args
            .contains(&("K8S_POD_INFRA_CONTAINER_ID".into(), "abc".into())));
        assert!(rt.args.contains(&("FOO".into(), "bar".into())));
        let caps = &rt.capability_args;
        assert_eq!(
            caps["portMappings"].as_array().unwrap().len(),
            1,
            "host_port 0 is not mapped"
        );
        assert_eq!(caps["portMappings"][0]["protocol"], "sctp");
        assert_eq!(caps["portMappings"][0]["hostIP"], "127.0.0.1");
        assert_eq!(caps["bandwidth"]["ingressRate"], 10_000_000);
        assert!(caps["bandwidth"].get("egressRate").is_none());
        assert_eq!(caps["ipRanges"][0][0]["subnet"], "10.244.1.0/24");
        assert_eq!(parse_quantity("1Mi"), Some(1_048_576));
        assert_eq!(parse_quantity("x"), None);
    }
}
