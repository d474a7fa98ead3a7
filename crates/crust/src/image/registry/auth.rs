//! Registry authentication: credentials (from the CRI request or crustd's config), parsing of
//! `WWW-Authenticate` challenges, and the Docker token flow (anonymous or basic-authenticated GET,
//! OAuth2 refresh-token POST for identity tokens) that turns a Bearer challenge into a token.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Deserialize;

use super::RegistryError;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Username and password (also what CRI's base64 `auth` decodes to).
    Basic { username: String, password: String },
    /// An OAuth2 refresh token, exchanged at the token realm.
    IdentityToken { username: String, token: String },
    /// A bearer token sent as is.
    RegistryToken(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::IdentityToken { username, .. } => write!(f, "IdentityToken({username})"),
            Credentials::RegistryToken(_) => f.write_str("RegistryToken(***)"),
        }
    }
}

/// Why credentials given in a request cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("auth is not base64 of user:password")]
    BadAuthField,
}

impl Credentials {
    /// From CRI's AuthConfig fields; `None` when all are empty.
    pub fn from_cri(
        username: &str,
        password: &str,
        auth: &str,
        identity_token: &str,
        registry_token: &str,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let (mut user, mut pass) = (username.to_string(), password.to_string());
        if !auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| CredentialsError::BadAuthField)?;
            let text = String::from_utf8(decoded).map_err(|_| CredentialsError::BadAuthField)?;
            let (u, p) = text.split_once(':').ok_or(CredentialsError::BadAuthField)?;
            (user, pass) = (u.to_string(), p.to_string());
        }
        Ok(if !registry_token.is_empty() {
            Some(Credentials::RegistryToken(registry_token.to_string()))
        } else if !identity_token.is_empty() {
            Some(Credentials::IdentityToken {
                username: user,
                token: identity_token.to_string(),
            })
        } else if !user.is_empty() || !pass.is_empty() {
            Some(Credentials::Basic {
                username: user,
                password: pass,
            })
        } else {
            None
        })
    }

    fn basic_header(username: &str, password: &str) -> String {
        let raw = format!("{username}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Lower-cased scheme (`basic`, `bearer`).
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `Scheme k="v", k2=v2` (quoted values may hold commas and escaped quotes).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, mut rest) = match header.split_once(' ') {
        Some((s, r)) => (s, r.trim_start()),
        None => (header, ""),
    };
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, remaining) = take_value(after.trim_start());
        params.insert(key.trim().to_ascii_lowercase(), value);
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

fn take_value(s: &str) -> (String, &str) {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find(',').unwrap_or(s.len());
        return (s[..end].trim().to_string(), &s[end..]);
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    out.push(next);
                }
            }
            '"' => return (out, &quoted[i + 1..]),
            _ => out.push(c),
        }
    }
    (out, "")
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
}

/// The `Authorization` header that answers `challenge` for `scope` (e.g. `repository:x:pull`).
pub async fn authorize(
    client: &reqwest::Client,
    challenge: &Challenge,
    creds: Option<&Credentials>,
    scope: &str,
) -> Result<String, RegistryError> {
    match (challenge.scheme.as_str(), creds) {
        ("basic", Some(Credentials::Basic { username, password })) => {
            Ok(Credentials::basic_header(username, password))
        }
        ("basic", _) => Err(RegistryError::Unauthorized(
            "the registry asks for a username and password".to_string(),
        )),
        ("bearer", Some(Credentials::RegistryToken(token))) => Ok(format!("Bearer {token}")),
        ("bearer", _) => {
            let token = fetch_token(client, challenge, creds, scope).await?;
            Ok(format!("Bearer {token}"))
        }
        (other, _) => Err(RegistryError::Unauthorized(format!(
            "unsupported authentication scheme {other:?}"
        ))),
    }
}

async fn fetch_token(
    client: &reqwest::Client,
    challenge: &Challenge,
    creds: Option<&Credentials>,
    scope: &str,
) -> Result<String, RegistryError> {
    let realm = challenge
        .params
        .get("realm")
        .filter(|r| r.starts_with("https://") || r.starts_with("http://"))
        .ok_or_else(|| RegistryError::Unauthorized("bearer challenge without a realm".into()))?;
    let service = challenge.params.get("service").cloned().unwrap_or_default();
    let scope = challenge
        .params
        .get("scope")
        .cloned()
        .unwrap_or_else(|| scope.to_string());
    let request = match creds {
        Some(Credentials::IdentityToken { token, .. }) => client.post(realm).form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", token.as_str()),
            ("service", service.as_str()),
            ("scope", scope.as_str()),
            ("client_id", "crust"),
        ]),
        Some(Credentials::Basic { username, password }) => client
            .get(realm)
            .query(&[
                ("service", &service),
                ("scope", &scope),
                ("account", username),
            ])
            .basic_auth(username, Some(password)),
        _ => client
            .get(realm)
            .query(&[("service", &service), ("scope", &scope)]),
    };
    let response = request.send().await.map_err(|source| RegistryError::Http {
        url: realm.clone(),
        source,
    })?;
    let status = response.status();
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized(format!(
            "token server {realm} refused the credentials (HTTP {})",
            status.as_u16()
        )));
    }
    if !status.is_success() {
        return Err(RegistryError::Token {
            realm: realm.clone(),
            reason: format!("HTTP {}", status.as_u16()),
        });
    }
    let body: TokenResponse = response.json().await.map_err(|e| RegistryError::Token {
        realm: realm.clone(),
        reason: e.to_string(),
    })?;
    [body.token, body.access_token]
        .into_iter()
        .find(|t| !t.is_empty())
        .ok_or_else(|| RegistryError::Token {
            realm: realm.clone(),
            reason: "no token in the response".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_hub_challenge() {
        let c = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["service"], "registry.docker.io");
        assert_eq!(c.params["scope"], "repository:library/busybox:pull,push");
    }

    #[test]
    fn parses_basic_and_unquoted_and_escapes() {
        let c = parse_challenge(r#"Basic realm="Registry \"Realm\"""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry \"Realm\"");
        let c = parse_challenge("Bearer realm=https://t/x, service=s").unwrap();
        assert_eq!(c.params["realm"], "https://t/x");
        assert_eq!(c.params["service"], "s");
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn cri_credentials() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:s3:cret");
        assert_eq!(
            Credentials::from_cri("", "", &auth, "", "").unwrap(),
            Some(Credentials::Basic {
                username: "bob".into(),
                password: "s3:cret".into()
            })
        );
        assert_eq!(Credentials::from_cri("", "", "", "", "").unwrap(), None);
        assert_eq!(
            Credentials::from_cri("u", "p", "", "", "tok").unwrap(),
            Some(Credentials::RegistryToken("tok".into()))
        );
        assert!(matches!(
            Credentials::from_cri("u", "", "", "refresh", "").unwrap(),
            Some(Credentials::IdentityToken { .. })
        ));
        assert!(Credentials::from_cri("", "", "!!", "", "").is_err());
        let dbg = format!(
            "{:?}",
            Credentials::Basic {
                username: "u".into(),
                password: "secret".into()
            }
        );
        assert!(!dbg.contains("secret"));
    }
}
