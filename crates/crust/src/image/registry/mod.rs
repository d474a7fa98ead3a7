//! The registry side of a pull: which endpoints serve a registry host (mirrors in order, then the
//! host itself unless `fallback = false`; plain http for insecure hosts), one HTTP client per TLS
//! setting, and a [`Session`] per (endpoint, repository) that fetches manifests and streams blobs,
//! answering auth challenges ([`auth`]) as they come.

pub mod auth;

use std::{
    collections::{BTreeMap, HashMap},
    net::IpAddr,
    path::PathBuf,
    sync::Mutex,
    time::Duration,
};

use futures_util::StreamExt as _;
use reqwest::{header, StatusCode};
use sha2::{Digest, Sha256};

use self::auth::{Credentials, CredentialsError};
use super::{
    content::{ContentError, Writer},
    manifest,
};
use crate::config::{Limits, RegistryConfig};

/// Where Docker Hub's API lives.
const DOCKER_HUB_API: &str = "https://registry-1.docker.io";

/// Registry failures of one endpoint.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}{detail}")]
    Status {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{url}: not found")]
    NotFound { url: String },
    #[error("authentication failed: {0}")]
    Unauthorized(String),
    #[error("token server {realm}: {reason}")]
    Token { realm: String, reason: String },
    #[error("registry config: ca_file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: content digest is {actual}, expected {expected}")]
    Digest {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    #[error(transparent)]
    Content(#[from] ContentError),
}

impl RegistryError {
    /// True when another endpoint may do better (mirror fallthrough).
    pub fn try_next(&self) -> bool {
        !matches!(
            self,
            RegistryError::Content(_) | RegistryError::CaFile { .. }
        )
    }
}

/// One place to fetch a registry host's content from.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `scheme://host[:port][/prefix]`, no trailing slash.
    pub base: String,
    /// The `[registries]` table that applies to this endpoint (its own host's).
    pub host: String,
    pub mirror: bool,
    insecure: bool,
}

/// crustd's registry configuration and HTTP clients.
#[derive(Debug)]
pub struct Registries {
    hosts: BTreeMap<String, RegistryConfig>,
    clients: Mutex<HashMap<(bool, String), reqwest::Client>>,
    limits: Limits,
}

impl Registries {
    /// From the `[registries."<host>"]` tables, bounded by `limits`.
    pub fn new(hosts: BTreeMap<String, RegistryConfig>, limits: Limits) -> Registries {
        Registries {
            hosts,
            clients: Mutex::default(),
            limits,
        }
    }

    /// What a registry may make crustd read or wait for.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The endpoints to try for `registry`, in order.
    pub fn endpoints(&self, registry: &str) -> Vec<Endpoint> {
        let config = self.hosts.get(registry).cloned().unwrap_or_default();
        let mut out: Vec<Endpoint> = config
            .mirrors
            .iter()
            .flat_map(|m| self.mirror_endpoints(m))
            .collect();
        if config.fallback || config.mirrors.is_empty() {
            let base = match registry {
                super::reference::DOCKER_HUB => DOCKER_HUB_API.to_string(),
                host => format!("https://{host}"),
            };
            out.extend(self.with_plain_http(base, registry, false));
        }
        out
    }

    fn mirror_endpoints(&self, mirror: &str) -> Vec<Endpoint> {
        let mirror = mirror.trim_end_matches('/');
        let (scheme, rest) = mirror.split_once("://").unwrap_or(("", mirror));
        let host = rest.split('/').next().unwrap_or(rest).to_string();
        match scheme {
            "http" => vec![self.endpoint(mirror.to_string(), &host, true)],
            "https" => vec![self.endpoint(mirror.to_string(), &host, true)],
            _ => self.with_plain_http(format!("https://{mirror}"), &host, true),
        }
    }

    /// `https://host...`, followed by `http://host...` when the host may be plain http.
    fn with_plain_http(&self, https: String, host: &str, mirror: bool) -> Vec<Endpoint> {
        let mut out = vec![self.endpoint(https.clone(), host, mirror)];
        if self.plain_http_allowed(host) {
            let plain = https.replacen("https://", "http://", 1);
            out.push(self.endpoint(plain, host, mirror));
        }
        out
    }

    fn endpoint(&self, base: String, host: &str, mirror: bool) -> Endpoint {
        Endpoint {
            base,
            host: host.to_string(),
            mirror,
            insecure: self.insecure(host),
        }
    }

    /// Configured insecure: plain http allowed and TLS certificates not verified.
    fn insecure(&self, host: &str) -> bool {
        self.hosts.get(host).is_some_and(|c| c.insecure)
    }

    /// Insecure, or a loopback host (plain http allowed, as Docker and containerd do for
    /// localhost; an https answer is still verified).
    fn plain_http_allowed(&self, host: &str) -> bool {
        if self.insecure(host) {
            return true;
        }
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// Credentials from the config for an endpoint's host.
    pub fn configured_credentials(&self, host: &str) -> Option<Credentials> {
        let c = self.hosts.get(host)?;
        (!c.username.is_empty()).then(|| Credentials::Basic {
            username: c.username.clone(),
            password: c.password.clone(),
        })
    }

    /// The HTTP client for `endpoint` (TLS verification off for insecure hosts; extra CA).
    pub fn client(&self, endpoint: &Endpoint) -> Result<reqwest::Client, RegistryError> {
        let ca = self
            .hosts
            .get(&endpoint.host)
            .map(|c| c.ca_file.clone())
            .unwrap_or_default();
        let key = (endpoint.insecure, ca);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let client = build_client(key.0, &key.1, self.limits.registry_read_timeout)?;
        clients.insert(key, client.clone());
        Ok(client)
    }
}

fn build_client(
    insecure: bool,
    ca_file: &str,
    read_timeout: Duration,
) -> Result<reqwest::Client, RegistryError> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("crust/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(read_timeout)
        .danger_accept_invalid_certs(insecure);
    if !ca_file.is_empty() {
        let ca_err = |reason: String| RegistryError::CaFile {
            path: PathBuf::from(ca_file),
            reason,
        };
        let pem = std::fs::read(ca_file).map_err(|e| ca_err(e.to_string()))?;
        for cert in
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_err(e.to_string()))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|source| RegistryError::Http {
        url: String::new(),
        source,
    })
}

/// A fetched manifest (or index).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    pub media_type: String,
    /// sha256 of the bytes.
    pub digest: String,
}

/// Requests for one repository on one endpoint, sharing the authorisation they earn.
#[derive(Debug)]
pub struct Session {
    pub endpoint: Endpoint,
    repository: String,
    client: reqwest::Client,
    creds: Option<Credentials>,
    authorization: Mutex<Option<String>>,
    max_manifest_bytes: u64,
}

impl Session {
    /// A session; `creds` are sent only when the registry asks (a registry token right away).
    pub fn new(
        endpoint: Endpoint,
        repository: &str,
        client: reqwest::Client,
        creds: Option<Credentials>,
    ) -> Session {
        let authorization = match &creds {
            Some(Credentials::RegistryToken(t)) => Some(format!("Bearer {t}")),
            _ => None,
        };
        Session {
            endpoint,
            repository: repository.to_string(),
            client,
            creds,
            authorization: Mutex::new(authorization),
            max_manifest_bytes: Limits::default().max_manifest_bytes,
        }
    }

    /// Manifests and indexes larger than `bytes` are refused.
    pub fn with_manifest_limit(self, bytes: u64) -> Session {
        Session {
            max_manifest_bytes: bytes,
            ..self
        }
    }

    fn url(&self, kind: &str, reference: &str) -> String {
        format!(
            "{}/v2/{}/{kind}/{reference}",
            self.endpoint.base, self.repository
        )
    }

    /// GET with the session's authorisation; a 401 is answered once, then retried.
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
    ) -> Result<reqwest::Response, RegistryError> {
        for attempt in 0..2 {
            let mut request = self.client.get(url);
            if let Some(accept) = accept {
                request = request.header(header::ACCEPT, accept);
            }
            let current = self.current_authorization();
            if let Some(value) = &current {
                request = request.header(header::AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|source| RegistryError::Http {
                url: url.to_string(),
                source,
            })?;
            if response.status() != StatusCode::UNAUTHORIZED || attempt == 1 {
                return check_status(url, response).await;
            }
            self.answer_challenge(&response, current).await?;
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn answer_challenge(
        &self,
        response: &reqwest::Response,
        sent: Option<String>,
    ) -> Result<(), RegistryError> {
        let challenge = response
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(auth::parse_challenge)
            .ok_or_else(|| RegistryError::Unauthorized("401 without a usable challenge".into()))?;
        if sent.is_some() && challenge.scheme == "basic" {
            return Err(RegistryError::Unauthorized(
                "the registry rejected the username and password".into(),
            ));
        }
        let scope = format!("repository:{}:pull", self.repository);
        let value = auth::authorize(&self.client, &challenge, self.creds.as_ref(), &scope).await?;
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(value);
        Ok(())
    }

    /// Fetches the manifest or index named by a tag or digest; a digest is verified.
    pub async fn manifest(&self, reference: &str) -> Result<Fetched, RegistryError> {
        let url = self.url("manifests", reference);
        let response = self.get(&url, Some(manifest::ACCEPT)).await?;
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = read_limited(&url, response, self.max_manifest_bytes).await?;
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if reference.contains(':') && reference != digest {
            return Err(RegistryError::Digest {
                url,
                expected: reference.to_string(),
                actual: digest,
            });
        }
        Ok(Fetched {
            bytes,
            media_type,
            digest,
        })
    }

    /// Streams the blob `digest` into `writer` (which verifies size and digest on commit).
    pub async fn blob_into(&self, digest: &str, writer: &mut Writer) -> Result<u64, RegistryError> {
        let url = self.url("blobs", digest);
        let response = self.get(&url, None).await?;
        let mut stream = response.bytes_stream();
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|source| RegistryError::Http {
                url: url.clone(),
                source,
            })?;
            total += chunk.len() as u64;
            writer.write(&chunk).await?;
        }
        Ok(total)
    }
}

async fn check_status(
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, RegistryError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::NOT_FOUND {
        return Err(RegistryError::NotFound {
            url: url.to_string(),
        });
    }
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized(format!(
            "{url}: HTTP {}",
            status.as_u16()
        )));
    }
    let body = response.text().await.unwrap_or_default();
    let detail = match body.trim() {
        "" => String::new(),
        text => format!(": {}", text.chars().take(300).collect::<String>()),
    };
    Err(RegistryError::Status {
        url: url.to_string(),
        status: status.as_u16(),
        detail,
    })
}

async fn read_limited(
    url: &str,
    response: reqwest::Response,
    limit: u64,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        url: url.to_string(),
        limit,
    };
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|source| RegistryError::Http {
            url: url.to_string(),
            source,
        })?;
        out.extend_from_slice(&chunk);
        if out.len() as u64 > limit {
            return Err(too_large());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registries(text: &str) -> Registries {
        let c = crate::config::Config::from_toml(text, std::path::Path::new("t")).unwrap();
        Registries::new(c.registries, Limits::default())
    }

    fn bases(r: &Registries, host: &str) -> Vec<String> {
        r.endpoints(host).into_iter().map(|e| e.base).collect()
    }

    #[test]
    fn hub_and_plain_hosts() {
        let r = registries("");
        assert_eq!(bases(&r, "docker.io"), ["https://registry-1.docker.io"]);
        assert_eq!(bases(&r, "quay.io"), ["https://quay.io"]);
        assert_eq!(
            bases(&r, "127.0.0.1:5000"),
            ["https://127.0.0.1:5000", "http://127.0.0.1:5000"],
            "loopback registries may be plain http"
        );
    }

    #[test]
    fn mirrors_then_fallback() {
        let r = registries(
            r#"
[registries."registry.k8s.io"]
mirrors = ["http://127.0.0.1:5000", "mirror.example.com/prefix"]
[registries."quay.io"]
mirrors = ["https://m.example"]
fallback = false
[registries."insecure.example:8443"]
insecure = true
"#,
        );
        assert_eq!(
            bases(&r, "registry.k8s.io"),
            [
                "http://127.0.0.1:5000",
                "https://mirror.example.com/prefix",
                "https://registry.k8s.io"
            ]
        );
        assert_eq!(bases(&r, "quay.io"), ["https://m.example"]);
        assert_eq!(
            bases(&r, "insecure.example:8443"),
            [
                "https://insecure.example:8443",
                "http://insecure.example:8443"
            ]
        );
        assert!(r.endpoints("registry.k8s.io")[0].mirror);
    }

    #[test]
    fn configured_credentials_and_ca() {
        let r = registries(
            "[registries.\"r.example\"]\nusername = \"u\"\npassword = \"p\"\nca_file = \"/nonexistent.pem\"\n",
        );
        assert!(r.configured_credentials("r.example").is_some());
        assert!(r.configured_credentials("other").is_none());
        let e = r.endpoints("r.example").remove(0);
        assert!(matches!(r.client(&e), Err(RegistryError::CaFile { .. })));
    }
}
