//! Network configuration lists: loading a conf dir, and single `.conf` files lifted to lists.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Problems with one configuration file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// A network: its name, CNI version and the plugins to chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfigList {
    pub name: String,
    pub cni_version: String,
    pub disable_check: bool,
    /// Each plugin's configuration object as written (with `type`).
    pub plugins: Vec<Value>,
    /// The file it came from.
    pub source: PathBuf,
}

impl NetworkConfigList {
    /// Parses a `.conflist`, or a single-plugin `.conf`/`.json` lifted to a list.
    pub fn parse(text: &str, source: &Path) -> Result<NetworkConfigList, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            path: source.to_path_buf(),
            reason: reason.to_string(),
        };
        let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::Json {
            path: source.to_path_buf(),
            source: e,
        })?;
        let name = value["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| invalid("missing name"))?;
        let cni_version = value["cniVersion"].as_str().unwrap_or("0.3.1").to_string();
        let plugins = match value.get("plugins") {
            Some(Value::Array(list)) => list.clone(),
            Some(_) => return Err(invalid("plugins is not a list")),
            None => vec![value.clone()],
        };
        if plugins.is_empty() {
            return Err(invalid("no plugins"));
        }
        if plugins
            .iter()
            .any(|p| p["type"].as_str().is_none_or(str::is_empty))
        {
            return Err(invalid("a plugin has no type"));
        }
        Ok(NetworkConfigList {
            name: name.to_string(),
            cni_version,
            disable_check: value["disableCheck"].as_bool().unwrap_or(false),
            plugins,
            source: source.to_path_buf(),
        })
    }

    /// The config object handed to plugin `index` on stdin: its own config plus name, cniVersion,
    /// optional prevResult, and runtimeConfig holding only the capabilities it declares.
    pub fn plugin_stdin(
        &self,
        index: usize,
        prev_result: Option<&Value>,
        capability_args: &serde_json::Map<String, Value>,
    ) -> Value {
        let mut conf = self.plugins[index].clone();
        conf["name"] = Value::from(self.name.clone());
        conf["cniVersion"] = Value::from(self.cni_version.clone());
        if let Some(prev) = prev_result {
            conf["prevResult"] = prev.clone();
        }
        let declared = conf
            .get("capabilities")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let runtime_config: serde_json::Map<String, Value> = capability_args
            .iter()
            .filter(|(k, _)| declared.get(*k).and_then(Value::as_bool).unwrap_or(false))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !runtime_config.is_empty() {
            conf["runtimeConfig"] = Value::Object(runtime_config);
        }
        conf
    }
}

/// Loads every valid config in `dir` (lexical order of file names); invalid files are returned
/// beside them so the caller can report them.
pub fn load_dir(dir: &Path) -> (Vec<NetworkConfigList>, Vec<ConfigError>) {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| is_config_file(p))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            return (
                Vec::new(),
                vec![ConfigError::Io {
                    path: dir.to_path_buf(),
                    source,
                }],
            )
        }
    };
    files.sort();
    let mut lists = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        let parsed = std::fs::read_to_string(&path)
            .map_err(|source| ConfigError::Io {
                path: path.clone(),
                source,
            })
            .and_then(|text| NetworkConfigList::parse(&text, &path));
        match parsed {
            Ok(list) => lists.push(list),
            Err(e) => errors.push(e),
        }
    }
    (lists, errors)
}

fn is_config_file(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("conf" | "conflist" | "json")
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn loads_in_lexical_order_and_reports_invalid_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"b","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"a","type":"ptp"}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("05-bad.conflist"), "{not json").unwrap();
        std::fs::write(dir.path().join("README"), "ignored").unwrap();
        let (lists, errors) = load_dir(dir.path());
        assert_eq!(
            lists.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(lists[0].plugins[0]["type"], "ptp");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("05-bad"));
    }

    #[test]
    fn stdin_carries_only_declared_capabilities() {
        let list = NetworkConfigList::parse(
            r#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
            Path::new("x"),
        )
        .unwrap();
        let caps = json!({"portMappings": [{"hostPort": 80}], "bandwidth": {}})
            .as_object()
            .unwrap()
            .clone();
        let first = list.plugin_stdin(0, None, &caps);
        assert!(first.get("runtimeConfig").is_none());
        assert_eq!(first["name"], "n");
        let prev = json!({"cniVersion":"1.0.0","ips":[]});
        let second = list.plugin_stdin(1, Some(&prev), &caps);
        assert_eq!(second["runtimeConfig"]["portMappings"][0]["hostPort"], 80);
        assert!(second["runtimeConfig"].get("bandwidth").is_none());
        assert_eq!(second["prevResult"], prev);
    }

    #[test]
    fn rejects_lists_without_name_or_types() {
        assert!(NetworkConfigList::parse(r#"{"plugins":[{"type":"x"}]}"#, Path::new("x")).is_err());
        assert!(
            NetworkConfigList::parse(r#"{"name":"n","plugins":[{}]}"#, Path::new("x")).is_err()
        );
        assert!(NetworkConfigList::parse(r#"{"name":"n","plugins":[]}"#, Path::new("x")).is_err());
    }
}
