//! A real OCI registry for the pull tests: Debian's `docker-registry` on 127.0.0.1 (a free port,
//! its own storage dir, optional htpasswd basic auth), filled through the registry HTTP API with
//! test images built here from busybox-static (layers with whiteouts, opaque dirs, zstd, indexes,
//! Docker schema2 manifests).

#![allow(dead_code)]

use std::{
    io::Write as _,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sha2::{Digest as _, Sha256};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A running docker-registry; killed (and its storage removed) on drop.
pub struct Registry {
    child: Child,
    dir: tempfile::TempDir,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    auth: Option<(String, String)>,
    http: reqwest::Client,
    /// Token auth: the token server and its realm URL.
    token_server: Option<(Child, String)>,
    /// TLS: the self-signed certificate (PEM) the registry serves.
    pub ca_file: Option<PathBuf>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((mut child, _)) = self.token_server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How the registry authenticates.
enum Auth {
    None,
    Basic(String, String),
    /// user, password, refresh token
    Token(String, String, String),
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Registry {
    /// A registry without authentication.
    pub async fn start() -> Registry {
        Registry::launch(Auth::None, false).await
    }

    /// A registry serving https only, with a self-signed certificate for 127.0.0.1 ([`Self::ca_file`]).
    pub async fn start_tls() -> Registry {
        Registry::launch(Auth::None, true).await
    }

    /// A registry that wants `user`/`pass` (htpasswd, bcrypt).
    pub async fn start_with_auth(user: &str, pass: &str) -> Registry {
        Registry::launch(Auth::Basic(user.to_string(), pass.to_string()), false).await
    }

    /// A registry with Docker token auth: a token server (tests/fixtures/token-server) that grants
    /// `user`/`pass` and the OAuth2 `refresh` token.
    pub async fn start_with_token_auth(user: &str, pass: &str, refresh: &str) -> Registry {
        Registry::launch(Auth::Token(user.into(), pass.into(), refresh.into()), false).await
    }

    /// The token server's request log (one JSON object per line).
    pub fn token_requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("token/requests.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    async fn launch(auth: Auth, tls: bool) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("crust-registry-")
            .tempdir()
            .unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        let ca_file = tls.then(|| self_signed(dir.path()));
        if ca_file.is_some() {
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                dir.path().join("cert.pem").display(),
                dir.path().join("key.pem").display()
            ));
        }
        let mut token_server = None;
        if let Auth::Token(user, pass, refresh) = &auth {
            let (child, realm, cert) = start_token_server(dir.path(), user, pass, refresh).await;
            config.push_str(&format!(
                "auth:\n  token:\n    realm: {realm}\n    service: crust-test-registry\n    issuer: crust-test-issuer\n    rootcertbundle: {}\n",
                cert.display()
            ));
            token_server = Some((child, realm));
        }
        if let Auth::Basic(user, pass) = &auth {
            let out = Command::new("htpasswd")
                .args(["-Bbn", user, pass])
                .output()
                .expect("htpasswd (apache2-utils)");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: crust-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("docker-registry (Debian package docker-registry)");
        let auth = match auth {
            Auth::None => None,
            Auth::Basic(u, p) | Auth::Token(u, p, _) => Some((u, p)),
        };
        let mut http = reqwest::Client::builder();
        if let Some(cert) = &ca_file {
            let pem = std::fs::read(cert).unwrap();
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap());
        }
        let r = Registry {
            child,
            dir,
            addr,
            auth,
            http: http.build().unwrap(),
            token_server,
            ca_file,
        };
        r.wait_ready().await;
        r
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(resp) = self.http.get(self.url("/v2/")).send().await {
                if resp.status().is_success() || resp.status().as_u16() == 401 {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        panic!("docker-registry did not come up: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Stops the registry (later requests to it fail to connect).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.ca_file.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Adds the harness's own credentials: basic, or a push+pull token for `repo`.
    async fn authed(&self, repo: &str, r: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.auth, &self.token_server) {
            (None, _) => r,
            (Some((u, p)), None) => r.basic_auth(u, Some(p)),
            (Some(_), Some(_)) => r.bearer_auth(self.token_for(repo, "pull,push").await),
        }
    }

    /// A token for `repo` with `actions`, from the token server with the harness's credentials.
    pub async fn token_for(&self, repo: &str, actions: &str) -> String {
        let (Some((u, p)), Some((_, realm))) = (&self.auth, &self.token_server) else {
            panic!("not a token-auth registry");
        };
        let body: serde_json::Value = self
            .http
            .get(realm)
            .query(&[
                ("service", "crust-test-registry".to_string()),
                ("scope", format!("repository:{repo}:{actions}")),
            ])
            .basic_auth(u, Some(p))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["token"].as_str().unwrap().to_string()
    }

    /// Uploads a blob (monolithic); returns its digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let start = self
            .authed(
                repo,
                self.http
                    .post(self.url(&format!("/v2/{repo}/blobs/uploads/"))),
            )
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(start.status().as_u16(), 202, "start upload: {start:?}");
        let location = start.headers()["location"].to_str().unwrap().to_string();
        let location = if location.starts_with("http") {
            location
        } else {
            self.url(&location)
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = self
            .authed(
                repo,
                self.http
                    .put(format!("{location}{sep}digest={digest}"))
                    .header("content-type", "application/octet-stream")
                    .body(data.to_vec()),
            )
            .await
            .send()
            .await
            .unwrap();
        assert_eq!(put.status().as_u16(), 201, "finish upload: {put:?}");
        digest
    }

    /// Uploads a manifest or index under `reference` (tag or digest); returns its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> String {
        let resp = self
            .authed(
                repo,
                self.http
                    .put(self.url(&format!("/v2/{repo}/manifests/{reference}")))
                    .header("content-type", media_type)
                    .body(body.to_vec()),
            )
            .await
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert_eq!(status, 201, "push manifest: {}", resp.text().await.unwrap());
        sha256(body)
    }

    /// Pushes `image` as `repo:tag`; returns the manifest digest.
    pub async fn push_image(&self, repo: &str, tag: &str, image: &TestImage) -> String {
        let built = image.build();
        for blob in built.blobs() {
            self.push_blob(repo, blob).await;
        }
        self.push_manifest(repo, tag, &built.manifest_type, &built.manifest)
            .await
    }

    /// Pushes an index of `images` (each pushed by digest) as `repo:tag`; returns the index digest.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        images: &[TestImage],
        docker: bool,
    ) -> String {
        let mut entries = Vec::new();
        for image in images {
            let built = image.build();
            for blob in built.blobs() {
                self.push_blob(repo, blob).await;
            }
            let digest = sha256(&built.manifest);
            self.push_manifest(repo, &digest, &built.manifest_type, &built.manifest)
                .await;
            entries.push(serde_json::json!({
                "mediaType": built.manifest_type,
                "digest": digest,
                "size": built.manifest.len(),
                "platform": {"os": "linux", "architecture": image.arch},
            }));
        }
        let media_type = if docker { DOCKER_LIST } else { OCI_INDEX };
        let index =
            serde_json::json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
        self.push_manifest(repo, tag, media_type, index.to_string().as_bytes())
            .await
    }

    /// Where the registry keeps a blob's bytes (to corrupt it behind the registry's back).
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

/// A test CA (`dir/ca.pem`, returned) and a server certificate for 127.0.0.1 signed by it
/// (`dir/cert.pem`, key `dir/key.pem`).
pub fn self_signed(dir: &std::path::Path) -> PathBuf {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=crust-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    dir.join("ca.pem")
}

/// Starts tests/fixtures/token-server under `dir/token`; returns it, its realm and its cert.
async fn start_token_server(
    dir: &std::path::Path,
    user: &str,
    pass: &str,
    refresh: &str,
) -> (Child, String, PathBuf) {
    let tdir = dir.join("token");
    std::fs::create_dir_all(&tdir).unwrap();
    let port = free_port();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/token-server");
    let log = std::fs::File::create(tdir.join("server.log")).unwrap();
    let child = Command::new("python3")
        .arg(script)
        .arg(&tdir)
        .arg(port.to_string())
        .args([user, pass, refresh])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tdir.join("ready").exists() {
        assert!(
            Instant::now() < deadline,
            "token server did not start: {:?}",
            std::fs::read_to_string(tdir.join("server.log"))
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    (
        child,
        format!("http://127.0.0.1:{port}/token"),
        tdir.join("cert.pem"),
    )
}

/// How a test layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A layer: an uncompressed tar and how to ship it.
#[derive(Debug, Clone)]
pub struct TestLayer {
    pub tar: Vec<u8>,
    pub compression: Compression,
}

impl TestLayer {
    pub fn new(tar: Vec<u8>, compression: Compression) -> TestLayer {
        TestLayer { tar, compression }
    }

    fn blob(&self) -> Vec<u8> {
        match self.compression {
            Compression::None => self.tar.clone(),
            Compression::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&self.tar).unwrap();
                enc.finish().unwrap()
            }
            Compression::Zstd => zstd::encode_all(&self.tar[..], 3).unwrap(),
        }
    }

    fn media_type(&self, docker: bool) -> &'static str {
        match (docker, self.compression) {
            (false, Compression::None) => "application/vnd.oci.image.layer.v1.tar",
            (false, Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
            (false, Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
            (true, Compression::None) => "application/vnd.docker.image.rootfs.diff.tar",
            (true, _) => "application/vnd.docker.image.rootfs.diff.tar.gzip",
        }
    }
}

/// An image to push.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub layers: Vec<TestLayer>,
    /// Docker schema2 media types instead of OCI.
    pub docker: bool,
    pub arch: String,
    /// Merged into the config's `config` object (Entrypoint, Cmd, Env, User, ...).
    pub config: serde_json::Value,
}

/// An image turned into registry blobs.
pub struct Built {
    pub config: Vec<u8>,
    pub layers: Vec<Vec<u8>>,
    pub manifest: Vec<u8>,
    pub manifest_type: String,
}

impl Built {
    pub fn blobs(&self) -> impl Iterator<Item = &Vec<u8>> {
        std::iter::once(&self.config).chain(self.layers.iter())
    }
}

pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

impl TestImage {
    /// An OCI image for this host with `layers`.
    pub fn new(layers: Vec<TestLayer>) -> TestImage {
        TestImage {
            layers,
            docker: false,
            arch: host_arch().to_string(),
            config: serde_json::json!({"Cmd": ["/bin/sh"]}),
        }
    }

    pub fn build(&self) -> Built {
        let diff_ids: Vec<String> = self.layers.iter().map(|l| sha256(&l.tar)).collect();
        let config = serde_json::json!({
            "architecture": self.arch,
            "os": "linux",
            "config": self.config,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        })
        .to_string()
        .into_bytes();
        let layers: Vec<Vec<u8>> = self.layers.iter().map(TestLayer::blob).collect();
        let (manifest_type, config_type) = if self.docker {
            (
                DOCKER_MANIFEST,
                "application/vnd.docker.container.image.v1+json",
            )
        } else {
            (OCI_MANIFEST, "application/vnd.oci.image.config.v1+json")
        };
        let layer_descs: Vec<serde_json::Value> = self
            .layers
            .iter()
            .zip(&layers)
            .map(|(l, blob)| serde_json::json!({"mediaType": l.media_type(self.docker), "digest": sha256(blob), "size": blob.len()}))
            .collect();
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": {"mediaType": config_type, "digest": sha256(&config), "size": config.len()},
            "layers": layer_descs,
        })
        .to_string()
        .into_bytes();
        Built {
            config,
            layers,
            manifest,
            manifest_type: manifest_type.to_string(),
        }
    }
}

/// Builds an uncompressed tar in memory.
#[derive(Default)]
pub struct TarBuilder {
    builder: Option<tar::Builder<Vec<u8>>>,
}

impl TarBuilder {
    pub fn new() -> TarBuilder {
        TarBuilder {
            builder: Some(tar::Builder::new(Vec::new())),
        }
    }

    fn b(&mut self) -> &mut tar::Builder<Vec<u8>> {
        self.builder.as_mut().unwrap()
    }

    pub fn dir(mut self, path: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        self.b()
            .append_data(&mut h, path, std::io::empty())
            .unwrap();
        self
    }

    pub fn file(mut self, path: &str, data: &[u8], mode: u32) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        self.b().append_data(&mut h, path, data).unwrap();
        self
    }

    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        self.b().append_link(&mut h, path, target).unwrap();
        self
    }

    pub fn fifo(mut self, path: &str) -> Self {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Fifo);
        h.set_mode(0o644);
        h.set_size(0);
        self.b()
            .append_data(&mut h, path, std::io::empty())
            .unwrap();
        self
    }

    /// An entry whose name is written raw (bypassing the tar crate's `..` check).
    pub fn raw_file(mut self, name: &str, data: &[u8]) -> Self {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.b().append(&h, data).unwrap();
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.builder.take().unwrap().into_inner().unwrap()
    }
}

/// busybox-static as `/bin/busybox` with the applets a test needs, and a passwd/group.
pub fn busybox_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static)");
    let mut t =
        TarBuilder::new()
            .dir("bin")
            .dir("etc")
            .dir("tmp")
            .file("bin/busybox", &busybox, 0o755);
    for applet in [
        "sh", "ls", "cat", "echo", "sleep", "id", "true", "false", "hostname", "grep", "head",
        "wc", "yes", "env", "ps", "mount", "touch", "kill", "stat", "readlink",
    ] {
        t = t.symlink(&format!("bin/{applet}"), "busybox");
    }
    t.file(
        "etc/passwd",
        b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        0o644,
    )
    .file(
        "etc/group",
        b"root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n",
        0o644,
    )
    .finish()
}

/// crust's static pause as `/pause`: a registry sandbox image like registry.k8s.io/pause.
pub fn pause_image() -> TestImage {
    let layer = TarBuilder::new()
        .file("pause", pause::PAUSE_BINARY, 0o755)
        .finish();
    let mut image = TestImage::new(vec![TestLayer::new(layer, Compression::Gzip)]);
    image.config = serde_json::json!({"Entrypoint": ["/pause"], "User": "65535:65535"});
    image
}

/// A layer of `size` pseudo-random (incompressible) bytes at `path`.
pub fn random_layer(path: &str, size: usize, seed: u64) -> Vec<u8> {
    let mut data = Vec::with_capacity(size);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while data.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data.extend_from_slice(&x.to_le_bytes());
    }
    data.truncate(size);
    TarBuilder::new().file(path, &data, 0o644).finish()
}
