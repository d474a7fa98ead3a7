//! crustd's configuration: a TOML file where every key is optional, with embedded defaults.
//!
//! Unknown keys are an error naming the key (`deny_unknown_fields`). Command-line flags override the
//! file (see crustd). `crustd config` prints [`Config::to_toml`].

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

mod runtime;
pub use runtime::{NetworkSetup, RuntimeConfig, RuntimeType, SandboxMode, ShimOptions};

/// Default socket path.
pub const DEFAULT_SOCKET: &str = "/run/crust/crust.sock";
/// Default root (persistent) directory.
pub const DEFAULT_ROOT: &str = "/var/lib/crust";
/// Default state (volatile) directory.
pub const DEFAULT_STATE: &str = "/run/crust";
/// Default config file; absent is fine.
pub const DEFAULT_CONFIG: &str = "/etc/crust/config.toml";

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid config: default_runtime {0:?} has no [runtimes.{0}] table")]
    UnknownDefaultRuntime(String),
    #[error("invalid config: runtimes.{handler}: {why}")]
    Runtime { handler: String, why: String },
    #[error("invalid config: metrics.address = {0:?}: not an IP:port")]
    Metrics(String),
    #[error("invalid config: limits.{key} = {value:?}: {why}")]
    Limit {
        key: &'static str,
        value: String,
        why: &'static str,
    },
    #[error("invalid config: streaming.{key} = {value:?}: {why}")]
    Streaming {
        key: &'static str,
        value: String,
        why: &'static str,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub socket: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    /// Empty: the built-in pause. Otherwise a registry reference (image issue).
    pub sandbox_image: String,
    pub default_runtime: String,
    pub runtimes: BTreeMap<String, RuntimeConfig>,
    pub cni: CniConfig,
    pub registries: BTreeMap<String, RegistryConfig>,
    pub streaming: StreamingConfig,
    pub limits: LimitsConfig,
    pub metrics: MetricsConfig,
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `IP:port` serving `/metrics`; empty (the default): no endpoint.
    pub address: String,
}

/// Bounds on what a registry, an image or a client can make crustd hold or write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest manifest, index or image config accepted (`4MiB`).
    pub max_manifest_size: String,
    /// Most bytes one layer may decompress to (`32GiB`): a gzip bomb stops here.
    pub max_layer_unpacked_size: String,
    /// Largest gRPC request crustd decodes (`16MiB`, as containerd).
    pub max_grpc_message_size: String,
    /// A registry that sends nothing for this long fails the pull (`60s`).
    pub registry_read_timeout: String,
}

/// [`LimitsConfig`] parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_manifest_bytes: u64,
    pub max_layer_unpacked_bytes: u64,
    pub max_grpc_message_bytes: usize,
    pub registry_read_timeout: std::time::Duration,
}

impl Default for Limits {
    /// The same values as [`LimitsConfig::default`] (a unit test holds them equal).
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 << 20,
            max_layer_unpacked_bytes: 32 << 30,
            max_grpc_message_bytes: 16 << 20,
            registry_read_timeout: std::time::Duration::from_secs(60),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_manifest_size: "4MiB".to_string(),
            max_layer_unpacked_size: "32GiB".to_string(),
            max_grpc_message_size: "16MiB".to_string(),
            registry_read_timeout: "60s".to_string(),
        }
    }
}

impl LimitsConfig {
    /// The limits, or the key that does not parse.
    pub fn parse(&self) -> Result<Limits, ConfigError> {
        let size = |key: &'static str, value: &String| {
            parse_size(value)
                .filter(|n| *n > 0)
                .ok_or(ConfigError::Limit {
                    key,
                    value: value.clone(),
                    why: "not a positive size such as 4MiB, 512KiB or 1048576",
                })
        };
        let grpc = size("max_grpc_message_size", &self.max_grpc_message_size)?;
        Ok(Limits {
            max_manifest_bytes: size("max_manifest_size", &self.max_manifest_size)?,
            max_layer_unpacked_bytes: size(
                "max_layer_unpacked_size",
                &self.max_layer_unpacked_size,
            )?,
            max_grpc_message_bytes: usize::try_from(grpc).unwrap_or(usize::MAX),
            registry_read_timeout: parse_duration(&self.registry_read_timeout)
                .filter(|d| !d.is_zero())
                .ok_or(ConfigError::Limit {
                    key: "registry_read_timeout",
                    value: self.registry_read_timeout.clone(),
                    why: "not a positive duration such as 30s or 2m",
                })?,
        })
    }
}

/// Parses a size such as `4MiB`, `512KiB`, `32GiB`, `10MB` or plain bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let n: u64 = text[..digits].parse().ok()?;
    let unit: u64 = match text[digits..].trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" | "kB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// CNI settings (used by the networking issue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CniConfig {
    pub conf_dir: PathBuf,
    pub bin_dirs: Vec<PathBuf>,
    /// Use crust's embedded bridge network when `conf_dir` holds no config.
    pub default_network: bool,
    pub default_network_bridge: String,
    pub default_network_subnet: String,
    pub plugin_timeout_s: u64,
}

/// Per-registry settings: mirrors tried in order, then the host itself when `fallback` (default
/// true); `insecure` allows plain http and unverified TLS; an extra CA; credentials. Its Debug
/// form never shows the password.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    pub mirrors: Vec<String>,
    pub fallback: bool,
    pub insecure: bool,
    pub ca_file: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field(
                "mirrors",
                &self
                    .mirrors
                    .iter()
                    .map(|m| redact_url(m))
                    .collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback)
            .field("insecure", &self.insecure)
            .field("ca_file", &self.ca_file)
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .finish()
    }
}

/// What is printed in place of a secret.
pub const REDACTED: &str = "<redacted>";

fn redact(secret: &str) -> String {
    if secret.is_empty() {
        String::new()
    } else {
        REDACTED.to_string()
    }
}

/// A mirror URL without the password of its userinfo (`https://user:pass@host` -> `user:<redacted>`).
fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let prefix = if scheme.is_empty() {
        String::new()
    } else {
        format!("{scheme}://")
    };
    format!("{prefix}{user}:{REDACTED}@{host}")
}

/// Streaming server (Exec/Attach/PortForward) settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingConfig {
    /// `host:port` to listen on; port 0 picks a free one (default: loopback, as containerd).
    pub address: String,
    /// TLS certificate and key (PEM); both empty: plain HTTP.
    pub tls_cert_file: String,
    pub tls_key_file: String,
    /// A session without traffic for this long is closed (`4h`, `90s`, `1h30m`).
    pub idle_timeout: String,
    /// How long the server waits for a client's streams after the upgrade.
    pub stream_creation_timeout: String,
    /// How long a URL returned by Exec/Attach/PortForward stays usable (kubelet's: 1m).
    pub token_ttl: String,
    /// Streams one SPDY session may have open at once (a port-forward opens two per
    /// connection); more are refused with RST_STREAM.
    pub max_streams_per_session: usize,
}

/// Parses a duration such as `4h`, `30s`, `1h30m`, `250ms`.
pub fn parse_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = std::time::Duration::ZERO;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let step = match &rest[..unit] {
            "ms" => std::time::Duration::from_millis(n),
            "s" => std::time::Duration::from_secs(n),
            "m" => std::time::Duration::from_secs(n * 60),
            "h" => std::time::Duration::from_secs(n * 3600),
            _ => return None,
        };
        total += step;
        rest = &rest[unit..];
    }
    Some(total)
}

impl Default for Config {
    fn default() -> Self {
        let mut runtimes = BTreeMap::new();
        runtimes.insert("runc".to_string(), RuntimeConfig::runc());
        Config {
            socket: PathBuf::from(DEFAULT_SOCKET),
            root: PathBuf::from(DEFAULT_ROOT),
            state: PathBuf::from(DEFAULT_STATE),
            sandbox_image: String::new(),
            default_runtime: "runc".to_string(),
            runtimes,
            cni: CniConfig::default(),
            registries: BTreeMap::new(),
            streaming: StreamingConfig::default(),
            limits: LimitsConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

impl Default for CniConfig {
    fn default() -> Self {
        CniConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            bin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            default_network: true,
            default_network_bridge: "crust0".to_string(),
            default_network_subnet: "10.89.0.0/16".to_string(),
            plugin_timeout_s: 30,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            mirrors: Vec::new(),
            fallback: true,
            insecure: false,
            ca_file: String::new(),
            username: String::new(),
            password: String::new(),
        }
    }
}

impl Default for StreamingConfig {
    fn default() -> Self {
        StreamingConfig {
            address: "127.0.0.1:0".to_string(),
            tls_cert_file: String::new(),
            tls_key_file: String::new(),
            idle_timeout: "4h".to_string(),
            stream_creation_timeout: "30s".to_string(),
            token_ttl: "1m".to_string(),
            max_streams_per_session: 128,
        }
    }
}

impl Config {
    /// Parses TOML text; `origin` names the source in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|source| ConfigError::Parse {
            path: origin.to_path_buf(),
            source,
        })?;
        // A file that adds handlers keeps the built-in `runc` one.
        let defaults = Config::default().runtimes;
        for (name, runtime) in defaults {
            config.runtimes.entry(name).or_insert(runtime);
        }
        config.validate()?;
        Ok(config)
    }

    /// Loads `path`; when `required` is false a missing file yields the defaults.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::from_toml(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Checks cross-key consistency.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.runtimes.contains_key(&self.default_runtime) {
            return Err(ConfigError::UnknownDefaultRuntime(
                self.default_runtime.clone(),
            ));
        }
        for (handler, runtime) in &self.runtimes {
            runtime.check(handler).map_err(|why| ConfigError::Runtime {
                handler: handler.clone(),
                why,
            })?;
        }
        self.limits.parse()?;
        if !self.metrics.address.is_empty()
            && self
                .metrics
                .address
                .parse::<std::net::SocketAddr>()
                .is_err()
        {
            return Err(ConfigError::Metrics(self.metrics.address.clone()));
        }
        let s = &self.streaming;
        for (key, value) in [
            ("idle_timeout", &s.idle_timeout),
            ("stream_creation_timeout", &s.stream_creation_timeout),
            ("token_ttl", &s.token_ttl),
        ] {
            if parse_duration(value).is_none_or(|d| d.is_zero()) {
                return Err(ConfigError::Streaming {
                    key,
                    value: value.clone(),
                    why: "not a positive duration such as 30s, 4h or 1h30m",
                });
            }
        }
        if s.max_streams_per_session == 0 {
            return Err(ConfigError::Streaming {
                key: "max_streams_per_session",
                value: "0".into(),
                why: "a session needs at least one stream",
            });
        }
        if s.address.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::Streaming {
                key: "address",
                value: s.address.clone(),
                why: "not an IP:port",
            });
        }
        if s.tls_cert_file.is_empty() != s.tls_key_file.is_empty() {
            return Err(ConfigError::Streaming {
                key: "tls_cert_file",
                value: s.tls_cert_file.clone(),
                why: "TLS needs both tls_cert_file and tls_key_file",
            });
        }
        Ok(())
    }

    /// The configuration with every secret (registry passwords, passwords in mirror URLs)
    /// replaced by [`REDACTED`]: what may be printed, logged or returned by Status.
    pub fn redacted(&self) -> Config {
        let mut shown = self.clone();
        for r in shown.registries.values_mut() {
            r.password = redact(&r.password);
            r.mirrors = r.mirrors.iter().map(|m| redact_url(m)).collect();
        }
        shown
    }

    /// The effective configuration as TOML, secrets redacted (`crustd config`).
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.redacted())
            .unwrap_or_else(|e| format!("# cannot render config: {e}\n"))
    }

    /// The effective configuration as JSON, secrets redacted (verbose Status, as `crictl info`
    /// parses it).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.redacted()).unwrap_or_else(|e| {
            serde_json::json!({ "error": format!("cannot render config: {e}") }).to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::from_toml("", Path::new("x")).unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.socket, PathBuf::from("/run/crust/crust.sock"));
        assert_eq!(c.cni.default_network_subnet, "10.89.0.0/16");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("sockett = \"/x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("sockett"), "{err}");
        let err = Config::from_toml("[cni]\nconfdir = \"/x\"\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("confdir"), "{err}");
    }

    #[test]
    fn runtimes_and_registries_parse() {
        let text = r#"
default_runtime = "crun"
[runtimes.crun]
path = "/usr/bin/crun"
[registries."127.0.0.1:5000"]
insecure = true
"#;
        let c = Config::from_toml(text, Path::new("c.toml")).unwrap();
        assert_eq!(
            c.runtimes["crun"].binary("crun"),
            PathBuf::from("/usr/bin/crun")
        );
        assert!(
            c.runtimes.contains_key("runc"),
            "defaults are kept for other handlers"
        );
        assert!(c.registries["127.0.0.1:5000"].insecure);
    }

    #[test]
    fn default_runtime_must_exist() {
        let err = Config::from_toml("default_runtime = \"kata\"\n", Path::new("c")).unwrap_err();
        assert!(matches!(err, ConfigError::UnknownDefaultRuntime(_)));
    }

    #[test]
    fn limits_parse_sizes_and_refuse_nonsense() {
        let c = Config::from_toml("", Path::new("c")).unwrap();
        let l = c.limits.parse().unwrap();
        assert_eq!(l, Limits::default());
        assert_eq!(
            (
                l.max_manifest_bytes,
                l.max_layer_unpacked_bytes,
                l.max_grpc_message_bytes
            ),
            (4 << 20, 32 << 30, 16 << 20)
        );
        assert_eq!(parse_size("10MB"), Some(10_000_000));
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        for bad in ["", "MiB", "4 parsecs", "99999999999999999999GiB", "-1"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        for (text, key) in [
            ("[limits]\nmax_manifest_size = \"0\"\n", "max_manifest_size"),
            (
                "[limits]\nmax_layer_unpacked_size = \"lots\"\n",
                "max_layer_unpacked_size",
            ),
            (
                "[limits]\nregistry_read_timeout = \"0s\"\n",
                "registry_read_timeout",
            ),
        ] {
            let e = Config::from_toml(text, Path::new("c")).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn streaming_keys_are_checked() {
        let c = Config::from_toml("", Path::new("c")).unwrap();
        assert_eq!(c.streaming.address, "127.0.0.1:0");
        assert_eq!(c.streaming.idle_timeout, "4h");
        for (text, key) in [
            ("[streaming]\nidle_timeout = \"soon\"\n", "idle_timeout"),
            ("[streaming]\ntoken_ttl = \"0s\"\n", "token_ttl"),
            (
                "[streaming]\nmax_streams_per_session = 0\n",
                "max_streams_per_session",
            ),
            ("[streaming]\naddress = \"localhost\"\n", "address"),
            ("[streaming]\ntls_cert_file = \"/c.pem\"\n", "tls_cert_file"),
        ] {
            let e = Config::from_toml(text, Path::new("c")).unwrap_err();
            assert!(e.to_string().contains(key), "{e}");
        }
    }

    #[test]
    fn durations() {
        use std::time::Duration;
        assert_eq!(parse_duration("4h"), Some(Duration::from_secs(4 * 3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "4", "h", "4x", "-1s"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn secrets_are_never_printed() {
        let text = r#"
[registries."r.example"]
username = "bob"
password = "hunter2-secret"
mirrors = ["https://bob:mirror-secret@m.example", "http://plain.example"]
"#;
        let c = Config::from_toml(text, Path::new("c.toml")).unwrap();
        for shown in [c.to_toml(), c.to_json(), format!("{c:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("mirror-secret"),
                "{shown}"
            );
            assert!(shown.contains("bob") && shown.contains(REDACTED), "{shown}");
            assert!(shown.contains("http://plain.example"), "{shown}");
        }
        let json: serde_json::Value = serde_json::from_str(&c.to_json()).unwrap();
        assert_eq!(json["registries"]["r.example"]["password"], REDACTED);
        assert_eq!(
            c.registries["r.example"].password, "hunter2-secret",
            "kept for use"
        );
    }

    #[test]
    fn rendered_config_parses_back() {
        let c = Config::default();
        assert_eq!(Config::from_toml(&c.to_toml(), Path::new("x")).unwrap(), c);
    }
}
