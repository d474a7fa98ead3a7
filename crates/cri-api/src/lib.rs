//! Kubernetes CRI v1 (`runtime.v1`) messages and gRPC client/server stubs.
//!
//! Generated at build time from the vendored `proto/api.proto`. Hand-written here only what the
//! generated code needs around it: serde of bytes fields as text ([`text_bytes`]) and a Debug of
//! `AuthConfig` that redacts the fields the proto marks `debug_redact`.

#[allow(clippy::all, clippy::pedantic, missing_docs)]
pub mod v1 {
    tonic::include_proto!("runtime.v1");
}

/// Serde for a `bytes` field written as text in configs (`value: "1"`): serialised as a string
/// when it is UTF-8 (else as an array of numbers), read from a string or an array of numbers.
pub mod text_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(bytes) {
            Ok(text) => s.serialize_str(text),
            Err(_) => s.collect_seq(bytes),
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Text {
        Str(String),
        Bytes(Vec<u8>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        Ok(match Text::deserialize(d)? {
            Text::Str(s) => s.into_bytes(),
            Text::Bytes(b) => b,
        })
    }
}

impl std::fmt::Debug for v1::AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("auth", &redact(&self.auth))
            .field("server_address", &self.server_address)
            .field("identity_token", &redact(&self.identity_token))
            .field("registry_token", &redact(&self.registry_token))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::v1::{AuthConfig, KeyValue};

    #[test]
    fn env_values_read_as_text_and_auth_debug_is_redacted() {
        let kv: KeyValue = serde_json::from_str(r#"{"key": "A", "value": "b=c"}"#).unwrap();
        assert_eq!(kv.value, b"b=c");
        let kv: KeyValue = serde_json::from_str(r#"{"key": "A", "value": [0, 255]}"#).unwrap();
        assert_eq!(kv.value, [0, 255]);
        assert_eq!(
            serde_json::to_string(&kv).unwrap(),
            r#"{"key":"A","value":[0,255]}"#
        );
        let auth = AuthConfig {
            username: "bob".into(),
            password: "hunter2".into(),
            ..Default::default()
        };
        let shown = format!("{auth:?}");
        assert!(
            shown.contains("bob") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
