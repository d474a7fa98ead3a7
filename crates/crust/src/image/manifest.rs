//! OCI and Docker schema2 manifests, indexes (manifest lists) and image configs, as far as a pull
//! needs them: parsing by media type, platform selection for this host, and the layer list.

use serde::{Deserialize, Serialize};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker schema2 manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker schema1 (signed) manifests: not supported, as in containerd 2.
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The `Accept` header of a manifest request.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or config accepted (they are read into memory).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("malformed {what}: {source}")]
    Json {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("unsupported manifest media type {0:?}")]
    MediaType(String),
    #[error("no image for platform {want} in the index (it has: {have})")]
    NoPlatform { want: String, have: String },
    #[error("image config lists {diff_ids} diff ids for {layers} layers")]
    LayerCount { diff_ids: usize, layers: usize },
}

/// A content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// An index entry's platform.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// An image manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An index / manifest list.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// A parsed manifest document.
#[derive(Debug, Clone)]
pub enum Document {
    Manifest(Manifest),
    Index(Index),
}

/// Parses a manifest or index; the media type comes from the body, else the `Content-Type`.
pub fn parse(bytes: &[u8], content_type: &str) -> Result<Document, ManifestError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        schema_version: Option<u32>,
    }
    let json = |source| ManifestError::Json {
        what: "manifest",
        source,
    };
    let probe: Probe = serde_json::from_slice(bytes).map_err(json)?;
    let content_type = content_type.split(';').next().unwrap_or("").trim();
    let media_type = probe
        .media_type
        .clone()
        .unwrap_or_else(|| content_type.to_string());
    match media_type.as_str() {
        OCI_INDEX | DOCKER_LIST => Ok(Document::Index(
            serde_json::from_slice(bytes).map_err(json)?,
        )),
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(Document::Manifest(
            serde_json::from_slice(bytes).map_err(json)?,
        )),
        DOCKER_SCHEMA1 => Err(ManifestError::MediaType(media_type)),
        _ if probe.schema_version == Some(2) && probe.manifests.is_some() => Ok(Document::Index(
            serde_json::from_slice(bytes).map_err(json)?,
        )),
        _ if probe.schema_version == Some(2) => Ok(Document::Manifest(
            serde_json::from_slice(bytes).map_err(json)?,
        )),
        _ => Err(ManifestError::MediaType(media_type)),
    }
}

/// This host's platform in OCI terms.
pub fn host_platform() -> Platform {
    let (architecture, variant) = match std::env::consts::ARCH {
        "x86_64" => ("amd64", None),
        "aarch64" => ("arm64", Some("v8")),
        "arm" => ("arm", Some("v7")),
        "x86" => ("386", None),
        "powerpc64" => ("ppc64le", None),
        other => (other, None),
    };
    Platform {
        architecture: architecture.to_string(),
        os: "linux".to_string(),
        variant: variant.map(str::to_string),
    }
}

/// The index entry for `want`: same os and architecture; a variant must match when both name one
/// (arm64's `v8` is the default). Attestation entries (`unknown/unknown`) never match.
pub fn select<'a>(index: &'a Index, want: &Platform) -> Result<&'a Descriptor, ManifestError> {
    let fits = |p: &Platform| {
        p.os == want.os
            && p.architecture == want.architecture
            && match (&p.variant, &want.variant) {
                (Some(have), Some(w)) => have == w,
                _ => true,
            }
    };
    index
        .manifests
        .iter()
        .filter(|d| matches!(d.media_type.as_str(), OCI_MANIFEST | DOCKER_MANIFEST | ""))
        .find(|d| d.platform.as_ref().is_some_and(fits))
        .ok_or_else(|| ManifestError::NoPlatform {
            want: want.to_string(),
            have: index
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref().map(|p| p.to_string()))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The parts of an image config a pull checks.
#[derive(Debug, Clone, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    pub rootfs: RootFs,
}

/// `rootfs` of an image config.
#[derive(Debug, Clone, Deserialize)]
pub struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

/// Parses an image config and checks it matches the manifest's layer count.
pub fn parse_config(bytes: &[u8], layers: usize) -> Result<ImageConfig, ManifestError> {
    let config: ImageConfig =
        serde_json::from_slice(bytes).map_err(|source| ManifestError::Json {
            what: "image config",
            source,
        })?;
    if config.rootfs.diff_ids.len() != layers {
        return Err(ManifestError::LayerCount {
            diff_ids: config.rootfs.diff_ids.len(),
            layers,
        });
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(os: &str, arch: &str, variant: Option<&str>) -> serde_json::Value {
        let mut platform = serde_json::json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": format!("sha256:{}", format!("{os}{arch}").repeat(64).get(..64).unwrap()),
            "size": 10,
            "platform": platform,
        })
    }

    fn index(entries: Vec<serde_json::Value>) -> Index {
        let doc =
            serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        match parse(doc.to_string().as_bytes(), "").unwrap() {
            Document::Index(i) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn picks_the_host_platform_and_skips_attestations() {
        let idx = index(vec![
            entry("unknown", "unknown", None),
            entry("linux", "arm64", Some("v8")),
            entry("linux", "amd64", None),
        ]);
        let amd = Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        };
        assert_eq!(select(&idx, &amd).unwrap(), &idx.manifests[2]);
        let arm = Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        };
        assert_eq!(select(&idx, &arm).unwrap(), &idx.manifests[1]);
    }

    #[test]
    fn a_missing_platform_names_what_the_index_has() {
        let idx = index(vec![entry("linux", "s390x", None)]);
        let err = select(&idx, &host_platform()).unwrap_err().to_string();
        assert!(err.contains("linux/s390x"), "{err}");
    }

    #[test]
    fn media_type_from_body_header_or_shape() {
        let m = r#"{"schemaVersion":2,"config":{"mediaType":"x","digest":"sha256:aa","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(m.as_bytes(), DOCKER_MANIFEST).unwrap(),
            Document::Manifest(_)
        ));
        assert!(matches!(
            parse(m.as_bytes(), "").unwrap(),
            Document::Manifest(_)
        ));
        let s1 = r#"{"schemaVersion":1,"name":"x"}"#;
        assert!(matches!(
            parse(s1.as_bytes(), DOCKER_SCHEMA1),
            Err(ManifestError::MediaType(_))
        ));
        assert!(parse(b"not json", OCI_MANIFEST).is_err());
    }

    #[test]
    fn config_layer_count_is_checked() {
        let c = r#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        assert!(parse_config(c.as_bytes(), 1).is_ok());
        assert!(matches!(
            parse_config(c.as_bytes(), 2),
            Err(ManifestError::LayerCount { .. })
        ));
    }
}
