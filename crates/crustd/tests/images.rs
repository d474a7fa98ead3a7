//! ImageService over the socket: ListImages, ImageStatus, RemoveImage, ImageFsInfo against the real
//! image store (images are placed in the store directly until PullImage lands).

mod common;

use common::Daemon;
use cri_api::v1::{
    ImageFilter, ImageFsInfoRequest, ImageSpec, ImageStatusRequest, ListImagesRequest,
    RemoveImageRequest,
};
use crust::image::store::{chain_ids, ImageRecord, ImageStore, Layer};
use tonic::Code;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

fn digest(data: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// Puts a one-layer image (blob, snapshot, record) into the store at `root/images`.
async fn place_image(root: &std::path::Path, tag: &str) -> ImageRecord {
    let store = ImageStore::open(&root.join("images")).unwrap();
    let layer = b"pretend this is a tar".to_vec();
    let layer_digest = digest(&layer);
    let mut w = store
        .content()
        .writer(&layer_digest, Some(layer.len() as u64))
        .await
        .unwrap();
    w.write(&layer).await.unwrap();
    w.commit().await.unwrap();
    let chain = chain_ids(std::slice::from_ref(&layer_digest)).remove(0);
    std::fs::create_dir_all(store.snapshot_dir(&chain).join("fs")).unwrap();
    store.complete_snapshot(&chain).unwrap();
    let config = serde_json::json!({ "config": { "User": "1000:1000", "Env": ["PATH=/bin"] } });
    let record = ImageRecord {
        id: digest(config.to_string().as_bytes()),
        repo_tags: vec![tag.to_string()],
        repo_digests: vec![format!(
            "{}@{}",
            tag.split(':').next().unwrap(),
            digest(b"manifest")
        )],
        manifest_digest: digest(b"manifest"),
        layers: vec![Layer {
            digest: layer_digest.clone(),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            size: layer.len() as u64,
            diff_id: layer_digest,
            chain_id: chain,
        }],
        size: layer.len() as u64 + 100,
        config,
    };
    store.put(record.clone()).unwrap();
    record
}

#[tokio::test]
async fn empty_store_answers_truthfully() {
    let d = Daemon::start().await;
    let mut c = d.image_client().await;
    assert!(c
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images
        .is_empty());
    let st = c
        .image_status(ImageStatusRequest {
            image: spec("busybox"),
            verbose: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        st.image.is_none(),
        "unknown image: empty response, not an error"
    );
    c.remove_image(RemoveImageRequest {
        image: spec("busybox"),
    })
    .await
    .unwrap();
    let err = c
        .image_status(ImageStatusRequest {
            image: spec(""),
            verbose: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fs = c
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let usage = &fs.image_filesystems[0];
    assert_eq!(
        usage.fs_id.as_ref().unwrap().mountpoint,
        d.root.join("images").display().to_string()
    );
    assert!(
        usage.used_bytes.as_ref().unwrap().value > 0
            && usage.inodes_used.as_ref().unwrap().value > 0
    );
}

#[tokio::test]
async fn list_status_remove_and_gc_of_a_stored_image() {
    let mut d = Daemon::start().await;
    d.stop_graceful();
    let record = place_image(&d.root, "docker.io/library/busybox:1.36").await;
    d.restart().await;
    let mut c = d.image_client().await;
    let fs_before = c
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .image_filesystems[0]
        .clone();

    let images = c
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].id, record.id);
    assert_eq!(images[0].uid.as_ref().unwrap().value, 1000);
    let filtered = c
        .list_images(ListImagesRequest {
            filter: Some(ImageFilter {
                image: spec("busybox:1.36"),
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .images;
    assert_eq!(filtered.len(), 1, "short names are normalised");
    for key in [
        "busybox:1.36",
        &record.id,
        &record.id[7..19],
        &record.repo_digests[0],
    ] {
        let st = c
            .image_status(ImageStatusRequest {
                image: spec(key),
                verbose: true,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(st.image.unwrap().id, record.id, "lookup by {key}");
        assert!(st.info["info"].contains("manifestDigest"));
    }

    c.remove_image(RemoveImageRequest {
        image: spec("busybox:1.36"),
    })
    .await
    .unwrap();
    c.remove_image(RemoveImageRequest {
        image: spec("busybox:1.36"),
    })
    .await
    .unwrap();
    assert!(c
        .list_images(ListImagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .images
        .is_empty());
    let images_dir = d.root.join("images");
    assert_eq!(
        std::fs::read_dir(images_dir.join("snapshots"))
            .unwrap()
            .count(),
        0,
        "snapshot collected"
    );
    assert_eq!(
        std::fs::read_dir(images_dir.join("content/blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "blob collected"
    );
    let fs_after = c
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .image_filesystems[0]
        .clone();
    assert!(fs_after.inodes_used.unwrap().value < fs_before.inodes_used.unwrap().value);
    d.stop_graceful();
    d.restart().await;
    let mut c = d.image_client().await;
    assert!(
        c.list_images(ListImagesRequest::default())
            .await
            .unwrap()
            .into_inner()
            .images
            .is_empty(),
        "removal persisted"
    );
}

#[tokio::test]
async fn cli_images_inspecti_rmi() {
    let mut d = Daemon::start().await;
    d.stop_graceful();
    let record = place_image(&d.root, "docker.io/library/busybox:1.36").await;
    d.restart().await;
    let crust = |args: &[&str]| {
        let out = d.crust_cli().args(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, table, _) = crust(&["images"]);
    assert!(
        ok && table.contains("docker.io/library/busybox") && table.contains("1.36"),
        "{table}"
    );
    assert!(table.contains(&record.id[7..20]), "{table}");
    let (ok, json, _) = crust(&["inspecti", "busybox:1.36"]);
    assert!(ok && json.contains(&record.manifest_digest), "{json}");
    let (ok, _, err) = crust(&["inspecti", "nope:1"]);
    assert!(!ok && err.contains("no such image"), "{err}");
    let (ok, out, _) = crust(&["rmi", "busybox:1.36"]);
    assert!(ok && out.contains("Deleted"), "{out}");
    let (ok, ids, _) = crust(&["images", "-q"]);
    assert!(ok && ids.trim().is_empty(), "{ids}");
}
