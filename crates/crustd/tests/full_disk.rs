//! Full disks (#14): crustd's root on a small tmpfs that fills up. RunPodSandbox, CreateContainer
//! and PullImage fail with ResourceExhausted naming the path that could not be written, leave no
//! half-written record, blob or snapshot, crustd keeps serving (and restarts) with its records
//! intact, and everything works again once space is freed.

mod common;

use std::{io::Write, path::Path};

use common::{
    ctr::{busybox, create, ctr, start},
    registry::{busybox_layer, Compression, TestImage, TestLayer},
    Daemon,
};
use cri_api::v1::{ImageSpec, PullImageRequest, RunPodSandboxRequest};
use tonic::Code;

/// Writes `path` until the filesystem is full (1 MiB, then 4 KiB steps).
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 512] {
        let buf = vec![0x5a; chunk];
        while f.write_all(&buf).is_ok() {}
    }
    let _ = f.sync_all();
}

fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .map(|it| {
            it.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn assert_exhausted(what: &str, err: &tonic::Status) {
    assert_eq!(err.code(), Code::ResourceExhausted, "{what}: {err:?}");
    assert!(
        err.message().contains("No space left on device") && err.message().contains('/'),
        "{what} names the path that ran out of space: {err:?}"
    );
}

#[tokio::test]
async fn a_full_root_is_resource_exhausted_and_recovers_once_freed() {
    let mut d = Daemon::prepare("", &[]);
    std::fs::create_dir_all(&d.root).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &d.root,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=64m"),
    )
    .unwrap();
    d.restart().await;
    let env = busybox(&d).await;
    let other = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Zstd)]);
    env.registry.push_image("test/other", "1", &other).await;
    let mut c = d.client().await;
    let pod = d.run_config(&mut c, d.pod("disk-before")).await;
    let record = d.root.join("sandboxes").join(&pod).join("sandbox.json");
    let record_bytes = std::fs::read(&record).unwrap();
    let (pods_before, blobs_before, snaps_before) = (
        names(&d.root.join("sandboxes")),
        names(&d.root.join("images/content/blobs/sha256")),
        names(&d.root.join("images/snapshots")),
    );
    assert!(
        !blobs_before.is_empty()
            && !snaps_before.is_empty()
            && d.root.join("images/content/ingest").is_dir(),
        "the store's layout as this test knows it"
    );
    let filler = d.root.join("filler");
    fill(&filler);

    let run = c
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(d.pod("disk-full")),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_exhausted("RunPodSandbox", &run);
    let created = create(&mut c, &pod, ctr("c", &env.image, "true"))
        .await
        .unwrap_err();
    assert_exhausted("CreateContainer", &created);
    let other_ref = format!("{}/test/other:1", env.registry.addr);
    let pulled = d
        .image_client()
        .await
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: other_ref.clone(),
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap_err();
    assert_exhausted("PullImage", &pulled);
    // Nothing half-written: no new pod, container, blob, snapshot or ingest file; the old
    // record is untouched and crustd still answers.
    assert_eq!(names(&d.root.join("sandboxes")), pods_before);
    assert_eq!(names(&d.root.join("containers")), Vec::<String>::new());
    assert_eq!(
        names(&d.root.join("images/content/blobs/sha256")),
        blobs_before
    );
    assert_eq!(
        names(&d.root.join("images/content/ingest")),
        Vec::<String>::new()
    );
    assert_eq!(names(&d.root.join("images/snapshots")), snaps_before);
    assert_eq!(std::fs::read(&record).unwrap(), record_bytes);
    assert_eq!(common::list(&mut c).await.len(), 1);
    // A crash on the full disk: crustd comes back with the pod READY.
    d.kill9();
    d.restart().await;
    let mut c = d.client().await;
    let listed = common::list(&mut c).await;
    assert_eq!(
        (listed.len(), listed[0].state),
        (1, cri_api::v1::PodSandboxState::SandboxReady as i32)
    );

    std::fs::remove_file(&filler).unwrap();
    let again = d.run_config(&mut c, d.pod("disk-after")).await;
    let id = create(&mut c, &pod, ctr("c", &env.image, "exec sleep 100"))
        .await
        .unwrap();
    start(&mut c, &id).await;
    d.image_client()
        .await
        .pull_image(PullImageRequest {
            image: Some(ImageSpec {
                image: other_ref,
                ..Default::default()
            }),
            auth: None,
            sandbox_config: None,
        })
        .await
        .unwrap();
    for p in [&pod, &again] {
        common::stop_remove(&mut c, p).await;
    }
    let root_mount = d.root.display().to_string();
    let leaks: Vec<String> = d
        .leaks()
        .await
        .into_iter()
        .filter(|l| !(l.starts_with("mount: ") && l.contains(&format!(" {root_mount} "))))
        .collect();
    assert!(leaks.is_empty(), "leaked: {leaks:#?}\n{}", d.log_text());
    d.kill9();
    nix::mount::umount2(&d.root, nix::mount::MntFlags::MNT_DETACH).unwrap();
}
