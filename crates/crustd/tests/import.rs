//! `crust import`: OCI image layout archives through crustd's admin API, written by the tests
//! and by skopeo (a real tool) from images in a real registry; bad archives are refused cleanly.

mod common;

use common::{
    registry::{busybox_layer, sha256, Compression, Registry, TarBuilder, TestImage, TestLayer},
    Daemon,
};
use cri_api::v1::{ImageSpec, ImageStatusRequest};

/// An OCI layout tar of `images`, each index entry annotated with its name (if any).
fn layout_tar(images: &[(&TestImage, Option<&str>)], corrupt_layer: bool) -> Vec<u8> {
    let mut t = TarBuilder::new()
        .file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, 0o644)
        .dir("blobs")
        .dir("blobs/sha256");
    let mut entries = Vec::new();
    for (image, name) in images {
        let built = image.build();
        for (i, blob) in built.blobs().enumerate() {
            let mut data = blob.clone();
            if corrupt_layer && i == 1 {
                let last = data.len() - 1;
                data[last] ^= 0xff;
            }
            let path = format!(
                "blobs/sha256/{}",
                sha256(blob).trim_start_matches("sha256:")
            );
            t = t.file(&path, &data, 0o644);
        }
        let mpath = format!(
            "blobs/sha256/{}",
            sha256(&built.manifest).trim_start_matches("sha256:")
        );
        t = t.file(&mpath, &built.manifest, 0o644);
        let mut entry = serde_json::json!({
            "mediaType": built.manifest_type,
            "digest": sha256(&built.manifest),
            "size": built.manifest.len(),
        });
        if let Some(name) = name {
            entry["annotations"] = serde_json::json!({"io.containerd.image.name": name});
        }
        entries.push(entry);
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": entries});
    t.file("index.json", index.to_string().as_bytes(), 0o644)
        .finish()
}

fn import(d: &Daemon, tar: &std::path::Path) -> std::process::Output {
    d.crust_cli().arg("import").arg(tar).output().unwrap()
}

async fn image_id(d: &Daemon, name: &str) -> Option<String> {
    let mut c = d.image_client().await;
    c.image_status(ImageStatusRequest {
        image: Some(ImageSpec {
            image: name.into(),
            ..Default::default()
        }),
        verbose: false,
    })
    .await
    .unwrap()
    .into_inner()
    .image
    .map(|i| i.id)
}

fn scratch_is_empty(d: &Daemon) -> bool {
    std::fs::read_dir(d.root.join("images/import"))
        .map(|mut it| it.next().is_none())
        .unwrap_or(true)
}

#[tokio::test]
async fn imports_named_and_unnamed_images_from_a_layout_archive() {
    let d = Daemon::start().await;
    let app = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    let other = TestImage::new(vec![TestLayer::new(
        TarBuilder::new().file("x", b"x", 0o644).finish(),
        Compression::Zstd,
    )]);
    let tar = d.root.parent().unwrap().join("layout.tar");
    std::fs::write(
        &tar,
        layout_tar(
            &[(&app, Some("example.com/imported/app:v1")), (&other, None)],
            false,
        ),
    )
    .unwrap();
    let out = import(&d, &tar);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app_id = sha256(&app.build().config);
    assert!(
        stdout.contains(&format!("example.com/imported/app:v1: {app_id}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("<none>: {}", sha256(&other.build().config))),
        "{stdout}"
    );
    assert_eq!(
        image_id(&d, "example.com/imported/app:v1").await,
        Some(app_id.clone())
    );
    assert!(image_id(&d, &sha256(&other.build().config)).await.is_some());
    assert!(scratch_is_empty(&d), "scratch files removed");
    // Importing again is harmless.
    assert!(import(&d, &tar).status.success());
}

#[tokio::test]
async fn bad_archives_are_refused_and_leave_nothing() {
    let d = Daemon::start().await;
    let app = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    let dir = d.root.parent().unwrap();
    let corrupt = dir.join("corrupt.tar");
    std::fs::write(
        &corrupt,
        layout_tar(&[(&app, Some("example.com/bad/app:v1"))], true),
    )
    .unwrap();
    let out = import(&d, &corrupt);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("DataLoss") || stderr.contains("does not match"),
        "{stderr}"
    );
    assert_eq!(image_id(&d, "example.com/bad/app:v1").await, None);
    let evil = dir.join("evil.tar");
    std::fs::write(
        &evil,
        TarBuilder::new()
            .file("index.json", b"{}", 0o644)
            .raw_file("../../crust-import-escape", b"x")
            .finish(),
    )
    .unwrap();
    let out = import(&d, &evil);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not part of an OCI image layout"),
        "{stderr}"
    );
    assert!(!dir.join("crust-import-escape").exists());
    assert!(!d.root.join("crust-import-escape").exists());
    let junk = dir.join("junk.tar");
    std::fs::write(&junk, b"definitely not a tar archive, just text").unwrap();
    assert!(!import(&d, &junk).status.success());
    assert!(scratch_is_empty(&d));
    for sub in [
        "images/snapshots",
        "images/metadata",
        "images/content/ingest",
    ] {
        let left: Vec<_> = std::fs::read_dir(d.root.join(sub)).unwrap().collect();
        assert!(left.is_empty(), "{sub}: {left:?}");
    }
}

#[tokio::test]
async fn imports_what_skopeo_writes() {
    let registry = Registry::start().await;
    let image = TestImage::new(vec![
        TestLayer::new(busybox_layer(), Compression::Gzip),
        TestLayer::new(
            TarBuilder::new().file("etc/motd", b"hi\n", 0o644).finish(),
            Compression::Gzip,
        ),
    ]);
    registry.push_image("skopeo/src", "v1", &image).await;
    let d = Daemon::start().await;
    let tar = d.root.parent().unwrap().join("skopeo.tar");
    let out = std::process::Command::new("skopeo")
        .args(["copy", "--src-tls-verify=false", "--quiet"])
        .arg(format!("docker://{}/skopeo/src:v1", registry.addr))
        .arg(format!(
            "oci-archive:{}:example.com/skopeo/app:v2",
            tar.display()
        ))
        .output()
        .expect("skopeo (Debian package skopeo)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = import(&d, &tar);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        image_id(&d, "example.com/skopeo/app:v2").await,
        Some(sha256(&image.build().config)),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
