//! What an OCI runtime can do, from its own `features` subcommand (runtime-spec
//! features.md, runc >= 1.1): the mount options it knows (`rro` = recursive read-only mounts)
//! and whether it can do idmapped mounts (what user namespaces for pods need). A runtime without
//! `features` (or one that fails it) is taken to have neither. Read once per handler at start.

use std::{path::Path, process::Command, time::Duration};

use serde_json::Value;

/// A runtime handler's features, as CRI Status reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    /// Mount option `rro` (recursive read-only, through mount_setattr).
    pub recursive_read_only: bool,
    /// Idmapped mounts (`linux.mountExtensions.idmap.enabled`), needed for user namespaces.
    pub user_namespaces: bool,
}

/// Parses the runtime's `features` JSON.
pub fn parse(v: &Value) -> Features {
    let rro = v["mountOptions"]
        .as_array()
        .is_some_and(|o| o.iter().any(|o| o == "rro"));
    let idmap = v["linux"]["mountExtensions"]["idmap"]["enabled"] == Value::Bool(true);
    Features {
        recursive_read_only: rro,
        user_namespaces: idmap,
    }
}

/// Runs `binary features` (bounded by a few seconds). Blocking.
pub fn probe(binary: &Path) -> Features {
    let child = Command::new(binary)
        .arg("features")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return Features::default();
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => break,
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                tracing::info!(runtime = %binary.display(), "no usable `features` output; taking none");
                return Features::default();
            }
        }
    }
    let mut out = Vec::new();
    if let Some(mut stdout) = child.stdout.take() {
        let _ = std::io::Read::read_to_end(&mut stdout, &mut out);
    }
    serde_json::from_slice(&out)
        .map(|v| parse(&v))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runc_1_1_and_1_2_outputs() {
        let runc_1_1 = serde_json::json!({"mountOptions": ["ro", "rro", "bind"], "linux": {"namespaces": ["user"]}});
        assert_eq!(
            parse(&runc_1_1),
            Features {
                recursive_read_only: true,
                user_namespaces: false
            }
        );
        let runc_1_2 = serde_json::json!({"mountOptions": ["rro"], "linux": {"mountExtensions": {"idmap": {"enabled": true}}}});
        assert!(parse(&runc_1_2).user_namespaces);
        assert_eq!(parse(&serde_json::json!({})), Features::default());
        assert_eq!(
            probe(Path::new("/nonexistent/runtime")),
            Features::default()
        );
    }
}
