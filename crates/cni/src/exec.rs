//! Calling plugins: one child process per call, its CNI_* environment set on the child only (never
//! on the daemon), the config on stdin, a timeout per call, and the chaining rules of the spec.

use std::{path::PathBuf, process::Stdio, time::Duration};

use serde_json::Value;
use tokio::{io::AsyncWriteExt, process::Command};

use crate::{
    config::NetworkConfigList,
    result::{CniResult, ErrorObject},
};

/// Failures of plugin calls.
#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin:?} not found in {dirs:?}")]
    PluginNotFound { plugin: String, dirs: Vec<PathBuf> },
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}{}", details_suffix(.details))]
    Plugin {
        plugin: String,
        command: &'static str,
        code: u32,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command} exited with {status}: {stderr}")]
    Exit {
        plugin: String,
        command: &'static str,
        status: String,
        stderr: String,
    },
    #[error("CNI plugin {plugin} {command} printed an unusable result: {reason}")]
    BadOutput {
        plugin: String,
        command: &'static str,
        reason: String,
    },
    #[error("CNI plugin {plugin} {command} did not finish within {timeout:?}")]
    Timeout {
        plugin: String,
        command: &'static str,
        timeout: Duration,
    },
    #[error("cannot run CNI plugin {plugin}: {source}")]
    Spawn {
        plugin: String,
        source: std::io::Error,
    },
    #[error("CNI DEL failed for {} plugin(s): {}", .0.len(), join(.0))]
    DelFailed(Vec<CniError>),
}

fn details_suffix(details: &str) -> String {
    if details.is_empty() {
        String::new()
    } else {
        format!(" ({details})")
    }
}

fn join(errors: &[CniError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Per-attachment inputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    pub container_id: String,
    /// The netns path; empty on DEL when the netns is already gone.
    pub netns: String,
    pub if_name: String,
    /// CNI_ARGS as key/value pairs.
    pub args: Vec<(String, String)>,
    /// Capability arguments (portMappings, bandwidth, ipRanges, dns, ...).
    pub capability_args: serde_json::Map<String, Value>,
}

impl RuntimeConf {
    fn cni_args(&self) -> String {
        self.args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";")
    }
}

/// Told of every plugin call: plugin type, command, success, duration (for metrics).
pub type Observer = std::sync::Arc<dyn Fn(&str, &'static str, bool, Duration) + Send + Sync>;

/// The plugin executor.
#[derive(Clone)]
pub struct Cni {
    bin_dirs: Vec<PathBuf>,
    timeout: Duration,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Cni {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cni")
            .field("bin_dirs", &self.bin_dirs)
            .field("timeout", &self.timeout)
            .field("observed", &self.observer.is_some())
            .finish()
    }
}

impl Cni {
    /// Plugins are looked up in `bin_dirs` in order; every call gets `timeout`.
    pub fn new(bin_dirs: Vec<PathBuf>, timeout: Duration) -> Cni {
        Cni {
            bin_dirs,
            timeout,
            observer: None,
        }
    }

    /// Tells `observer` of every plugin call from now on.
    pub fn with_observer(self, observer: Observer) -> Cni {
        Cni {
            observer: Some(observer),
            ..self
        }
    }

    /// The executable for plugin `plugin_type`.
    pub fn find_plugin(&self, plugin_type: &str) -> Result<PathBuf, CniError> {
        if !plugin_type.contains('/') {
            if let Some(found) = self
                .bin_dirs
                .iter()
                .map(|d| d.join(plugin_type))
                .find(|p| p.is_file())
            {
                return Ok(found);
            }
        }
        Err(CniError::PluginNotFound {
            plugin: plugin_type.to_string(),
            dirs: self.bin_dirs.clone(),
        })
    }

    /// ADD through the whole list, each plugin getting the previous result; returns the last result.
    pub async fn add(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
    ) -> Result<CniResult, CniError> {
        let mut prev: Option<Value> = None;
        for (index, plugin) in list.plugins.iter().enumerate() {
            let plugin_type = plugin["type"].as_str().unwrap_or_default();
            let stdin = list.plugin_stdin(index, prev.as_ref(), &rt.capability_args);
            let out = self.exec("ADD", plugin_type, &stdin, rt).await?;
            let value = out.ok_or_else(|| bad_output(plugin_type, "ADD", "empty output"))?;
            prev = Some(value);
        }
        let last_type = list
            .plugins
            .last()
            .and_then(|p| p["type"].as_str())
            .unwrap_or_default();
        CniResult::parse(prev.unwrap_or(Value::Null))
            .map_err(|reason| bad_output(last_type, "ADD", &reason))
    }

    /// DEL through the list in reverse; every plugin is tried, failures are collected.
    pub async fn del(
        &self,
        list: &NetworkConfigList,
        rt: &RuntimeConf,
        prev_result: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut failures = Vec::new();
        for index in (0..list.plugins.len()).rev() {
            let plugin_type = list.plugins[index]["type"].as_str().unwrap_or_default();
            let stdin = list.plugin_stdin(index, prev_result, &rt.capability_args);
            if let Err(e) = self.exec("DEL", plugin_type, &stdin, rt).await {
                tracing::warn!(plugin = plugin_type, container = %rt.container_id, error = %e, "CNI DEL failed");
                failures.push(e);
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(CniError::DelFailed(failures))
        }
    }

    /// One plugin call, timed for the observer; `Ok(None)` when the plugin printed nothing (DEL).
    async fn exec(
        &self,
        command: &'static str,
        plugin_type: &str,
        stdin: &Value,
        rt: &RuntimeConf,
    ) -> Result<Option<Value>, CniError> {
        let started = std::time::Instant::now();
        let result = self.exec_plugin(command, plugin_type, stdin, rt).await;
        if let Some(observe) = &self.observer {
            observe(plugin_type, command, result.is_ok(), started.elapsed());
        }
        result
    }

    async fn exec_plugin(
        &self,
        command: &'static str,
        plugin_type: &str,
        stdin: &Value,
        rt: &RuntimeConf,
    ) -> Result<Option<Value>, CniError> {
        let path = self.find_plugin(plugin_type)?;
        let cni_path = std::env::join_paths(&self.bin_dirs).unwrap_or_default();
        let mut child = Command::new(&path)
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &rt.container_id)
            .env("CNI_NETNS", &rt.netns)
            .env("CNI_IFNAME", &rt.if_name)
            .env("CNI_ARGS", rt.cni_args())
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| CniError::Spawn {
                plugin: plugin_type.to_string(),
                source,
            })?;
        let input = serde_json::to_vec(stdin).unwrap_or_default();
        if let Some(mut pipe) = child.stdin.take() {
            // A plugin that exits without reading its stdin is judged by its exit status below.
            let _ = pipe.write_all(&input).await;
        }
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|source| CniError::Spawn {
                plugin: plugin_type.to_string(),
                source,
            })?,
            Err(_) => {
                return Err(CniError::Timeout {
                    plugin: plugin_type.to_string(),
                    command,
                    timeout: self.timeout,
                })
            }
        };
        tracing::debug!(plugin = plugin_type, command, container = %rt.container_id, status = %output.status, "CNI call");
        interpret(plugin_type, command, output)
    }
}

fn bad_output(plugin: &str, command: &'static str, reason: &str) -> CniError {
    CniError::BadOutput {
        plugin: plugin.to_string(),
        command,
        reason: reason.to_string(),
    }
}

fn interpret(
    plugin: &str,
    command: &'static str,
    output: std::process::Output,
) -> Result<Option<Value>, CniError> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if let Ok(err) = serde_json::from_str::<ErrorObject>(&stdout) {
            if !err.msg.is_empty() || err.code != 0 {
                return Err(CniError::Plugin {
                    plugin: plugin.to_string(),
                    command,
                    code: err.code,
                    msg: err.msg,
                    details: err.details,
                });
            }
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        let stderr = if stderr.is_empty() {
            stdout.trim().to_string()
        } else {
            stderr
        };
        return Err(CniError::Exit {
            plugin: plugin.to_string(),
            command,
            status: output.status.to_string(),
            stderr,
        });
    }
    if stdout.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str(&stdout)
        .map(Some)
        .map_err(|e| bad_output(plugin, command, &format!("{e}: {:.200}", stdout.trim())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Writes an executable script. The write happens in a child `sh`, never through a
    /// descriptor of this (multi-threaded) test process: a descriptor open for writing here
    /// would be inherited by another test's fork between its fork and exec, and exec'ing the
    /// script then fails with ETXTBSY ("Text file busy"), as CI saw.
    fn plugin(dir: &Path, name: &str, script: &str) {
        let path = dir.join(name);
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "cat > \"$0\" && chmod 755 \"$0\""])
            .arg(&path)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let text = format!("#!/bin/sh\n{script}\n");
        std::io::Write::write_all(&mut sh.stdin.take().unwrap(), text.as_bytes()).unwrap();
        assert!(sh.wait().unwrap().success());
    }

    fn list(text: &str) -> NetworkConfigList {
        NetworkConfigList::parse(text, Path::new("t")).unwrap()
    }

    fn rt() -> RuntimeConf {
        RuntimeConf {
            container_id: "c1".into(),
            netns: "/run/netns/x".into(),
            if_name: "eth0".into(),
            args: vec![
                ("IgnoreUnknown".into(), "1".into()),
                ("K8S_POD_NAME".into(), "p".into()),
            ],
            capability_args: Default::default(),
        }
    }

    #[tokio::test]
    async fn add_chains_prev_result_and_sets_env_per_child() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        // "first" returns a result; "second" records its env and stdin, then echoes prevResult.
        plugin(
            dir.path(),
            "first",
            r#"cat >/dev/null; echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0"}],"ips":[{"address":"10.9.0.2/24","interface":0}]}'"#,
        );
        plugin(
            dir.path(),
            "second",
            &format!(
                r#"in=$(cat); echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME $CNI_ARGS" > {log}; echo "$in" >> {log}; echo '{{"cniVersion":"1.0.0","interfaces":[{{"name":"eth0"}}],"ips":[{{"address":"10.9.0.3/24","interface":0}}]}}'"#,
                log = log.display()
            ),
        );
        let cni = Cni::new(
            vec![PathBuf::from("/nonexistent"), dir.path().to_path_buf()],
            Duration::from_secs(5),
        );
        let l = list(
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"first"},{"type":"second"}]}"#,
        );
        let result = cni.add(&l, &rt()).await.unwrap();
        assert_eq!(
            result.ips_on("eth0")[0].ip(),
            "10.9.0.3",
            "the last plugin's result wins"
        );
        let logged = std::fs::read_to_string(&log).unwrap();
        assert!(
            logged.starts_with("ADD c1 /run/netns/x eth0 IgnoreUnknown=1;K8S_POD_NAME=p"),
            "{logged}"
        );
        assert!(
            logged.contains("\"prevResult\"") && logged.contains("10.9.0.2"),
            "{logged}"
        );
        assert!(
            std::env::var("CNI_COMMAND").is_err(),
            "the daemon's environment is untouched"
        );
    }

    #[tokio::test]
    async fn error_objects_junk_timeouts_and_missing_plugins() {
        let dir = tempfile::tempdir().unwrap();
        plugin(
            dir.path(),
            "errs",
            r#"echo '{"cniVersion":"1.0.0","code":11,"msg":"no more addresses","details":"range full"}'; exit 1"#,
        );
        plugin(dir.path(), "junk", "echo 'this is not json'");
        plugin(dir.path(), "slow", "sleep 5");
        let cni = Cni::new(vec![dir.path().to_path_buf()], Duration::from_millis(200));
        let err = cni
            .add(
                &list(r#"{"name":"n","cniVersion":"1.0.0","type":"errs"}"#),
                &rt(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CniError::Plugin { code: 11, .. }), "{err}");
        assert!(
            err.to_string().contains("no more addresses") && err.to_string().contains("range full")
        );
        let err = cni
            .add(
                &list(r#"{"name":"n","cniVersion":"1.0.0","type":"junk"}"#),
                &rt(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CniError::BadOutput { .. }), "{err}");
        let err = cni
            .add(
                &list(r#"{"name":"n","cniVersion":"1.0.0","type":"slow"}"#),
                &rt(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CniError::Timeout { .. }), "{err}");
        let err = cni
            .add(
                &list(r#"{"name":"n","cniVersion":"1.0.0","type":"nothere"}"#),
                &rt(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CniError::PluginNotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn del_runs_in_reverse_and_tries_every_plugin() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("order");
        plugin(
            dir.path(),
            "a",
            &format!("cat >/dev/null; echo a >> {}", log.display()),
        );
        plugin(
            dir.path(),
            "b",
            &format!("cat >/dev/null; echo b >> {}; exit 1", log.display()),
        );
        plugin(
            dir.path(),
            "c",
            &format!("cat >/dev/null; echo c >> {}", log.display()),
        );
        let cni = Cni::new(vec![dir.path().to_path_buf()], Duration::from_secs(5));
        let l = list(
            r#"{"name":"n","cniVersion":"1.0.0","plugins":[{"type":"a"},{"type":"b"},{"type":"c"}]}"#,
        );
        let err = cni.del(&l, &rt(), None).await.unwrap_err();
        assert!(
            matches!(&err, CniError::DelFailed(f) if f.len() == 1),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "c\nb\na\n");
    }
}
