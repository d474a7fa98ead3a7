//! PullImage against a real registry (Debian's docker-registry on 127.0.0.1), with images the
//! tests build and push themselves: layers with whiteouts and an opaque dir, zstd, indexes with
//! two platforms, Docker schema2, basic auth, mirrors with and without fallback, merged concurrent
//! pulls, corrupt and malicious content, GC and restart.

mod common;

use std::os::unix::fs::FileTypeExt as _;

use common::{
    assert_store_clean, entries,
    registry::{busybox_layer, sha256, Compression, Registry, TarBuilder, TestImage, TestLayer},
    Daemon,
};
use cri_api::v1::{
    image_service_client::ImageServiceClient, AuthConfig, ImageFsInfoRequest, ImageSpec,
    ImageStatusRequest, PullImageRequest, RemoveImageRequest,
};
use tonic::{transport::Channel, Code};

type Images = ImageServiceClient<Channel>;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

async fn pull(
    c: &mut Images,
    image: &str,
    auth: Option<AuthConfig>,
) -> Result<String, tonic::Status> {
    c.pull_image(PullImageRequest {
        image: spec(image),
        auth,
        sandbox_config: None,
    })
    .await
    .map(|r| r.into_inner().image_ref)
}

async fn status(c: &mut Images, image: &str) -> Option<cri_api::v1::Image> {
    c.image_status(ImageStatusRequest {
        image: spec(image),
        verbose: false,
    })
    .await
    .unwrap()
    .into_inner()
    .image
}

async fn fs_used(c: &mut Images) -> u64 {
    let fs = c
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    fs.image_filesystems[0].used_bytes.as_ref().unwrap().value
}

/// busybox (gzip) + a zstd layer that whites out `bin/yes`, makes `data/` opaque and adds files.
fn layered_image() -> TestImage {
    let base = TarBuilder::new()
        .dir("data")
        .file("data/old", b"old", 0o644)
        .finish();
    let top = TarBuilder::new()
        .file("bin/.wh.yes", b"", 0o644)
        .dir("data")
        .file("data/.wh..wh..opq", b"", 0o644)
        .file("data/new", b"new", 0o644)
        .file("etc/motd", b"hello from layer 3\n", 0o644)
        .finish();
    TestImage::new(vec![
        TestLayer::new(busybox_layer(), Compression::Gzip),
        TestLayer::new(base, Compression::None),
        TestLayer::new(top, Compression::Zstd),
    ])
}

fn snapshot(d: &Daemon, chain_id: &str) -> std::path::PathBuf {
    d.root
        .join("images/snapshots")
        .join(chain_id.trim_start_matches("sha256:"))
        .join("fs")
}

#[tokio::test]
async fn pulls_a_layered_image_over_plain_http_and_keeps_it_across_restart() {
    let registry = Registry::start().await;
    let image = layered_image();
    let built = image.build();
    let manifest = registry.push_image("test/layered", "v1", &image).await;
    let mut d = Daemon::start().await;
    let mut c = d.image_client().await;
    let before = fs_used(&mut c).await;
    let name = format!("{}/test/layered:v1", registry.addr);
    let image_ref = pull(&mut c, &name, None).await.unwrap();
    assert_eq!(
        image_ref,
        sha256(&built.config),
        "image ref is the image id"
    );
    let st = status(&mut c, &name)
        .await
        .expect("pulled image has a status");
    assert_eq!(st.id, image_ref);
    assert_eq!(st.repo_tags, std::slice::from_ref(&name));
    assert_eq!(
        st.repo_digests,
        [format!("{}/test/layered@{manifest}", registry.addr)]
    );
    assert!(
        fs_used(&mut c).await > before + 1_000_000,
        "ImageFsInfo grows"
    );
    // The snapshots: one per layer, the top one with overlay whiteouts.
    let diff_ids: Vec<String> = image.layers.iter().map(|l| sha256(&l.tar)).collect();
    let chains = crust::image::store::chain_ids(&diff_ids);
    assert!(snapshot(&d, &chains[0]).join("bin/busybox").is_file());
    let top = snapshot(&d, &chains[2]);
    let wh = std::fs::symlink_metadata(top.join("bin/yes")).unwrap();
    assert!(
        wh.file_type().is_char_device(),
        "whiteout -> 0/0 char device"
    );
    let opaque = nix::sys::stat::stat(&top.join("data")).is_ok()
        && xattr_of(&top.join("data"), "trusted.overlay.opaque") == Some(b"y".to_vec());
    assert!(opaque, "opaque dir marked for overlayfs");
    assert_eq!(
        std::fs::read(top.join("etc/motd")).unwrap(),
        b"hello from layer 3\n"
    );
    // Same reference again: same id; by digest too.
    assert_eq!(pull(&mut c, &name, None).await.unwrap(), image_ref);
    let by_digest = format!("{}/test/layered@{manifest}", registry.addr);
    assert_eq!(pull(&mut c, &by_digest, None).await.unwrap(), image_ref);
    assert_store_clean(&d);
    d.stop_graceful();
    d.restart().await;
    let mut c = d.image_client().await;
    assert_eq!(status(&mut c, &name).await.unwrap().id, image_ref);
    assert!(snapshot(&d, &chains[0]).join("bin/busybox").is_file());
}

fn xattr_of(path: &std::path::Path, name: &str) -> Option<Vec<u8>> {
    let out = std::process::Command::new("getfattr")
        .args(["--only-values", "-n", name])
        .arg(path)
        .output()
        .ok();
    match out {
        Some(o) if o.status.success() => Some(o.stdout),
        _ => {
            // getfattr may be missing: read it through libc.
            let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
            let c_name = std::ffi::CString::new(name).unwrap();
            let mut buf = [0u8; 16];
            let n = unsafe {
                libc::lgetxattr(
                    c_path.as_ptr(),
                    c_name.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            (n >= 0).then(|| buf[..n as usize].to_vec())
        }
    }
}

#[tokio::test]
async fn index_picks_this_platform_and_docker_schema2_pulls() {
    let registry = Registry::start().await;
    let mut other = TestImage::new(vec![TestLayer::new(
        TarBuilder::new().file("wrong", b"s390x", 0o644).finish(),
        Compression::Gzip,
    )]);
    other.arch = "s390x".into();
    let mine = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Zstd)]);
    let mut docker = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    docker.docker = true;
    let mut docker_other = docker.clone();
    docker_other.arch = "s390x".into();
    let oci_index = registry
        .push_index("test/multi", "oci", &[other.clone(), mine.clone()], false)
        .await;
    registry
        .push_index(
            "test/multi",
            "docker",
            &[docker_other, docker.clone()],
            true,
        )
        .await;
    registry.push_image("test/schema2", "latest", &docker).await;
    registry
        .push_index("test/foreign", "latest", &[other], false)
        .await;
    let d = Daemon::start().await;
    let mut c = d.image_client().await;
    let host = &registry.addr;
    let id = pull(&mut c, &format!("{host}/test/multi:oci"), None)
        .await
        .unwrap();
    assert_eq!(id, sha256(&mine.build().config));
    let st = status(&mut c, &format!("{host}/test/multi:oci"))
        .await
        .unwrap();
    assert!(
        st.repo_digests
            .contains(&format!("{host}/test/multi@{oci_index}")),
        "the index digest is a repo digest: {:?}",
        st.repo_digests
    );
    let id = pull(&mut c, &format!("{host}/test/multi:docker"), None)
        .await
        .unwrap();
    assert_eq!(id, sha256(&docker.build().config));
    let id = pull(&mut c, &format!("{host}/test/schema2"), None)
        .await
        .unwrap();
    assert_eq!(
        id,
        sha256(&docker.build().config),
        "plain name means :latest"
    );
    let err = pull(&mut c, &format!("{host}/test/foreign"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("linux/s390x"), "{}", err.message());
    let err = pull(&mut c, &format!("{host}/test/missing:v1"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    let err = pull(&mut c, "Bad Ref!", None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let err = pull(&mut c, "", None).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_store_clean(&d);
}

#[tokio::test]
async fn basic_auth_right_and_wrong_credentials() {
    let registry = Registry::start_with_auth("alice", "s3cret").await;
    let image = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    registry.push_image("private/app", "v1", &image).await;
    let extra = format!(
        "[registries.\"localhost:{}\"]\nusername = \"alice\"\npassword = \"s3cret\"\n",
        registry.addr.rsplit_once(':').unwrap().1
    );
    let d = Daemon::start_with(&extra, &[]).await;
    let mut c = d.image_client().await;
    let name = format!("{}/private/app:v1", registry.addr);
    let auth = |user: &str, pass: &str| {
        Some(AuthConfig {
            username: user.into(),
            password: pass.into(),
            ..Default::default()
        })
    };
    let err = pull(&mut c, &name, None).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let err = pull(&mut c, &name, auth("alice", "wrong"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(status(&mut c, &name).await.is_none());
    let id = pull(&mut c, &name, auth("alice", "s3cret")).await.unwrap();
    assert_eq!(id, sha256(&image.build().config));
    // CRI's base64 `auth` field.
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
    let other = format!(
        "{}/private/app@{}",
        registry.addr,
        sha256(&image.build().manifest)
    );
    let by_auth = Some(AuthConfig {
        auth: encoded,
        ..Default::default()
    });
    assert_eq!(pull(&mut c, &other, by_auth).await.unwrap(), id);
    // Credentials from crustd's config for the host (same registry, other name).
    let via_config = format!(
        "localhost:{}/private/app:v1",
        registry.addr.rsplit_once(':').unwrap().1
    );
    assert_eq!(pull(&mut c, &via_config, None).await.unwrap(), id);
    assert_store_clean(&d);
}

#[tokio::test]
async fn mirrors_with_and_without_fallback() {
    let mut origin = Registry::start().await;
    let mirror = Registry::start().await;
    let only_origin = TestImage::new(vec![TestLayer::new(
        TarBuilder::new().file("origin", b"o", 0o644).finish(),
        Compression::Gzip,
    )]);
    let on_mirror = TestImage::new(vec![TestLayer::new(
        TarBuilder::new().file("mirror", b"m", 0o644).finish(),
        Compression::Gzip,
    )]);
    origin.push_image("lib/a", "v1", &only_origin).await;
    mirror.push_image("lib/b", "v1", &on_mirror).await;
    let port = origin.addr.rsplit_once(':').unwrap().1.to_string();
    // Two names for the origin: 127.0.0.1:<port> without fallback, localhost:<port> with it.
    let extra = format!(
        "[registries.\"127.0.0.1:{port}\"]\nmirrors = [\"http://{m}\"]\nfallback = false\n\
         [registries.\"localhost:{port}\"]\nmirrors = [\"http://{m}\"]\n",
        m = mirror.addr
    );
    let d = Daemon::start_with(&extra, &[]).await;
    let mut c = d.image_client().await;
    let id_b = sha256(&on_mirror.build().config);
    assert_eq!(
        pull(&mut c, &format!("127.0.0.1:{port}/lib/b:v1"), None)
            .await
            .unwrap(),
        id_b
    );
    let err = pull(&mut c, &format!("127.0.0.1:{port}/lib/a:v1"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains(&mirror.addr),
        "names the mirror: {}",
        err.message()
    );
    let id_a = sha256(&only_origin.build().config);
    assert_eq!(
        pull(&mut c, &format!("localhost:{port}/lib/a:v1"), None)
            .await
            .unwrap(),
        id_a
    );
    // The mirror serves even when the origin is down.
    origin.stop();
    c.remove_image(RemoveImageRequest { image: spec(&id_b) })
        .await
        .unwrap();
    assert_eq!(
        pull(&mut c, &format!("localhost:{port}/lib/b:v1"), None)
            .await
            .unwrap(),
        id_b
    );
    let err = pull(&mut c, &format!("localhost:{port}/lib/c:v1"), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "origin down: {err:?}");
    assert_store_clean(&d);
}

/// Pushes `lib/a:v1` and `lib/b:v1`: busybox (shared) plus one small layer each.
async fn push_two_images_sharing_busybox(registry: &Registry) -> (TestImage, TestImage) {
    let shared = TestLayer::new(busybox_layer(), Compression::Gzip);
    let image = |name: &str| {
        TestImage::new(vec![
            shared.clone(),
            TestLayer::new(
                TarBuilder::new()
                    .file(name, name.as_bytes(), 0o644)
                    .finish(),
                Compression::Gzip,
            ),
        ])
    };
    let (a, b) = (image("a"), image("b"));
    registry.push_image("lib/a", "v1", &a).await;
    registry.push_image("lib/b", "v1", &b).await;
    (a, b)
}

fn blob_gets(registry: &Registry, digest: &str) -> usize {
    registry
        .log()
        .lines()
        .filter(|l| l.contains("GET /v2/") && l.contains(&format!("blobs/{digest}")))
        .count()
}

#[tokio::test]
async fn concurrent_pulls_merge_and_shared_layers_download_once() {
    let registry = Registry::start().await;
    let (a, _) = push_two_images_sharing_busybox(&registry).await;
    let shared_digest = sha256(&a.build().layers[0]);
    let d = Daemon::start().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for i in 0..10 {
        let mut c = d.image_client().await;
        let name = format!(
            "{}/lib/{}:v1",
            registry.addr,
            if i % 2 == 0 { "a" } else { "b" }
        );
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            pull(&mut c, &name, None).await.unwrap()
        }));
    }
    let mut ids: Vec<String> = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2, "two images: {ids:?}");
    assert_eq!(
        blob_gets(&registry, &shared_digest),
        1,
        "shared layer fetched once:\n{}",
        registry.log()
    );
    let manifest_gets = |repo: &str| {
        registry
            .log()
            .lines()
            .filter(|l| l.contains(&format!("\"GET /v2/lib/{repo}/manifests/v1")))
            .count()
    };
    assert_eq!(
        (manifest_gets("a"), manifest_gets("b")),
        (1, 1),
        "five pulls of one reference are one pull:\n{}",
        registry.log()
    );
    assert_store_clean(&d);
}

#[tokio::test]
async fn corrupt_blob_and_traversal_layer_leave_nothing() {
    let registry = Registry::start().await;
    let image = TestImage::new(vec![
        TestLayer::new(busybox_layer(), Compression::Gzip),
        TestLayer::new(
            TarBuilder::new().file("x", b"x", 0o644).finish(),
            Compression::Gzip,
        ),
    ]);
    registry.push_image("lib/corrupt", "v1", &image).await;
    let built = image.build();
    let victim = sha256(&built.layers[1]);
    let path = registry.blob_file(&victim);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let evil = TestImage::new(vec![TestLayer::new(
        TarBuilder::new()
            .raw_file("../../escaped-by-crust-test", b"pwned")
            .finish(),
        Compression::Gzip,
    )]);
    registry.push_image("lib/evil", "v1", &evil).await;
    let d = Daemon::start().await;
    let mut c = d.image_client().await;
    let name = format!("{}/lib/corrupt:v1", registry.addr);
    let err = pull(&mut c, &name, None).await.unwrap_err();
    assert_eq!(err.code(), Code::DataLoss, "{err:?}");
    assert!(err.message().contains(&victim), "{}", err.message());
    assert!(status(&mut c, &name).await.is_none());
    let blobs = entries(&d.root.join("images/content/blobs/sha256"));
    assert!(
        !blobs.contains(&victim.trim_start_matches("sha256:").to_string()),
        "corrupt blob stored"
    );
    let name = format!("{}/lib/evil:v1", registry.addr);
    let err = pull(&mut c, &name, None).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("escapes"), "{}", err.message());
    assert!(status(&mut c, &name).await.is_none());
    for dir in [
        d.root.join("images"),
        d.root.clone(),
        d.root.join("images/snapshots"),
    ] {
        assert!(!entries(&dir)
            .iter()
            .any(|e| e.contains("escaped-by-crust-test")));
    }
    assert!(!d
        .root
        .parent()
        .unwrap()
        .join("escaped-by-crust-test")
        .exists());
    assert_store_clean(&d);
    // Nothing an image references is stored after the failures, once GC ran.
    c.remove_image(RemoveImageRequest {
        image: spec("nothing-here"),
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn remove_image_collects_garbage_and_fs_info_follows() {
    let registry = Registry::start().await;
    push_two_images_sharing_busybox(&registry).await;
    let d = Daemon::start().await;
    let mut c = d.image_client().await;
    let empty = fs_used(&mut c).await;
    let (na, nb) = (
        format!("{}/lib/a:v1", registry.addr),
        format!("{}/lib/b:v1", registry.addr),
    );
    pull(&mut c, &na, None).await.unwrap();
    let one = fs_used(&mut c).await;
    pull(&mut c, &nb, None).await.unwrap();
    let two = fs_used(&mut c).await;
    assert!(
        one > empty + 1_000_000 && two > one && two < one + 500_000,
        "{empty} {one} {two}"
    );
    c.remove_image(RemoveImageRequest { image: spec(&na) })
        .await
        .unwrap();
    let snaps = entries(&d.root.join("images/snapshots"));
    assert_eq!(snaps.len(), 2, "shared + b's layer stay: {snaps:?}");
    c.remove_image(RemoveImageRequest { image: spec(&na) })
        .await
        .unwrap();
    c.remove_image(RemoveImageRequest { image: spec(&nb) })
        .await
        .unwrap();
    assert!(entries(&d.root.join("images/snapshots")).is_empty());
    assert!(entries(&d.root.join("images/content/blobs/sha256")).is_empty());
    assert!(entries(&d.root.join("images/metadata")).is_empty());
    let after = fs_used(&mut c).await;
    assert!(
        after < empty + 100_000,
        "back near empty: {empty} -> {after}"
    );
}

fn overlay_mounts(d: &Daemon) -> Vec<String> {
    let dir = d.root.parent().unwrap().display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir) && l.contains(" - overlay "))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn registry_sandbox_image_is_pulled_on_first_run_and_pinned() {
    let registry = Registry::start().await;
    let pause = common::registry::pause_image();
    registry.push_image("test/pause", "3.10", &pause).await;
    let pause_ref = format!("{}/test/pause:3.10", registry.addr);
    let mut d = Daemon::start_with(
        &format!("sandbox_image = \"{pause_ref}\"\n{}", common::PAUSE_SANDBOX),
        &[],
    )
    .await;
    let mut images = d.image_client().await;
    assert!(status(&mut images, &pause_ref).await.is_none());
    let mut c = d.client().await;
    let id = d.run_pod(&mut c, "registry-pause").await;
    let st = status(&mut images, &pause_ref)
        .await
        .expect("sandbox image pulled");
    assert_eq!(st.id, sha256(&pause.build().config));
    assert!(st.pinned, "the sandbox image is pinned");
    assert_eq!(overlay_mounts(&d).len(), 1, "one overlay rootfs");
    let pids = d.pause_pids();
    assert_eq!(pids.len(), 1);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    assert_eq!(cmdline, b"/pause\0", "runs the image's entrypoint");
    let err = images
        .remove_image(RemoveImageRequest {
            image: spec(&pause_ref),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains(&id), "{}", err.message());
    // A second pod reuses the image without pulling; a kill -9 of crustd keeps both running.
    let id2 = d.run_pod(&mut c, "registry-pause-2").await;
    assert_eq!(overlay_mounts(&d).len(), 2);
    d.kill9();
    d.restart().await;
    let mut c = d.client().await;
    for pod in [&id, &id2] {
        common::stop_remove(&mut c, pod).await;
    }
    d.assert_no_leaks().await;
    assert!(overlay_mounts(&d).is_empty());
    let mut images = d.image_client().await;
    images
        .remove_image(RemoveImageRequest {
            image: spec(&pause_ref),
        })
        .await
        .unwrap();
    assert!(entries(&d.root.join("images/snapshots")).is_empty());
}

#[tokio::test]
async fn unreachable_sandbox_image_fails_run_cleanly() {
    let mut registry = Registry::start().await;
    let addr = registry.addr.clone();
    registry.stop();
    let d = Daemon::start_with(
        &format!(
            "sandbox_image = \"{addr}/test/pause:3.10\"\n{}",
            common::PAUSE_SANDBOX
        ),
        &[],
    )
    .await;
    let mut c = d.client().await;
    let err = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(d.pod("no-image")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("sandbox image"), "{}", err.message());
    assert!(common::list(&mut c).await.is_empty());
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn bearer_token_flow_with_password_identity_and_registry_tokens() {
    let registry = Registry::start_with_token_auth("bob", "hunter2", "refresh-me").await;
    let image = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    registry.push_image("team/app", "v1", &image).await;
    let d = Daemon::start().await;
    let mut c = d.image_client().await;
    let name = format!("{}/team/app:v1", registry.addr);
    let id = sha256(&image.build().config);
    let err = pull(&mut c, &name, None).await.unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "anonymous token has no access: {err:?}"
    );
    let wrong = Some(AuthConfig {
        username: "bob".into(),
        password: "nope".into(),
        ..Default::default()
    });
    let err = pull(&mut c, &name, wrong).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    assert!(err.message().contains("refused"), "{}", err.message());
    let right = Some(AuthConfig {
        username: "bob".into(),
        password: "hunter2".into(),
        ..Default::default()
    });
    assert_eq!(pull(&mut c, &name, right).await.unwrap(), id);
    let granted: Vec<_> = registry
        .token_requests()
        .into_iter()
        .filter(|r| r["result"] == "granted")
        .collect();
    assert!(
        granted
            .iter()
            .any(|r| r["scopes"][0] == "repository:team/app:pull"
                && r["service"] == "crust-test-registry"),
        "token asked for the repository's pull scope of the challenge's service: {granted:?}"
    );
    // An identity token (OAuth2 refresh token), then a registry token obtained by hand.
    c.remove_image(RemoveImageRequest { image: spec(&name) })
        .await
        .unwrap();
    let identity = Some(AuthConfig {
        username: "bob".into(),
        identity_token: "refresh-me".into(),
        ..Default::default()
    });
    assert_eq!(pull(&mut c, &name, identity).await.unwrap(), id);
    assert!(registry
        .token_requests()
        .iter()
        .any(|r| r["method"] == "POST" && r["result"] == "granted" && r["client_id"] == "crust"));
    let bad_identity = Some(AuthConfig {
        identity_token: "stale".into(),
        ..Default::default()
    });
    c.remove_image(RemoveImageRequest { image: spec(&name) })
        .await
        .unwrap();
    let err = pull(&mut c, &name, bad_identity).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    let token = registry.token_for("team/app", "pull").await;
    let by_token = Some(AuthConfig {
        registry_token: token,
        ..Default::default()
    });
    let before = registry.token_requests().len();
    assert_eq!(pull(&mut c, &name, by_token).await.unwrap(), id);
    assert_eq!(
        registry.token_requests().len(),
        before,
        "a registry token is used as is, not exchanged"
    );
    assert_store_clean(&d);
}

#[tokio::test]
async fn tls_registry_needs_its_ca_file() {
    let registry = Registry::start_tls().await;
    let image = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    registry.push_image("secure/app", "v1", &image).await;
    let name = format!("{}/secure/app:v1", registry.addr);
    let untrusted = Daemon::start().await;
    let mut c = untrusted.image_client().await;
    let err = pull(&mut c, &name, None).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert!(
        err.message()
            .contains(&format!("https://{}", registry.addr)),
        "the https attempt is reported: {}",
        err.message()
    );
    assert!(status(&mut c, &name).await.is_none());
    drop(untrusted);
    let ca = format!(
        "[registries.\"{}\"]\nca_file = \"{}\"\n",
        registry.addr,
        registry.ca_file.as_ref().unwrap().display()
    );
    let trusted = Daemon::start_with(&ca, &[]).await;
    let mut c = trusted.image_client().await;
    let id = pull(&mut c, &name, None).await.unwrap();
    assert_eq!(id, sha256(&image.build().config));
}
