//! `crust images`, `crust pull`, `crust inspecti`, `crust rmi`: the ImageService side of the CLI.

use std::io::IsTerminal as _;

use cri_api::v1::{
    image_service_client::ImageServiceClient, AuthConfig, ImageFsInfoRequest, ImageSpec,
    ImageStatusRequest, ListImagesRequest, PullImageRequest, RemoveImageRequest,
};
use crust_api::v1::{admin_client::AdminClient, ImportImageChunk};
use tonic::transport::Channel;

type Client = ImageServiceClient<Channel>;

fn spec(image: String) -> Option<ImageSpec> {
    Some(ImageSpec {
        image,
        ..Default::default()
    })
}

/// Lists images as a table (one row per tag), ids only, or JSON.
pub async fn list(mut c: Client, quiet: bool, json: bool) -> anyhow::Result<()> {
    let images = c
        .list_images(ListImagesRequest::default())
        .await?
        .into_inner()
        .images;
    if json {
        println!("{}", serde_json::to_string_pretty(&images)?);
        return Ok(());
    }
    if quiet {
        images.iter().for_each(|i| println!("{}", i.id));
        return Ok(());
    }
    println!("{:<50}  {:<15}  {:<13}  SIZE", "IMAGE", "TAG", "IMAGE ID");
    for image in &images {
        let short = image
            .id
            .trim_start_matches("sha256:")
            .chars()
            .take(13)
            .collect::<String>();
        let size = format!("{:.1}MB", image.size as f64 / 1e6);
        let tags: Vec<(String, String)> = if image.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            image.repo_tags.iter().map(|t| split_tag(t)).collect()
        };
        for (name, tag) in tags {
            println!("{name:<50}  {tag:<15}  {short:<13}  {size}");
        }
    }
    Ok(())
}

fn split_tag(reference: &str) -> (String, String) {
    match reference
        .rfind(':')
        .filter(|i| !reference[*i..].contains('/'))
    {
        Some(i) => (reference[..i].to_string(), reference[i + 1..].to_string()),
        None => (reference.to_string(), "<none>".to_string()),
    }
}

/// Prints ImageStatus (verbose) as JSON; an unknown image is an error here.
pub async fn inspect(mut c: Client, image: String) -> anyhow::Result<()> {
    let r = c
        .image_status(ImageStatusRequest {
            image: spec(image.clone()),
            verbose: true,
        })
        .await?
        .into_inner();
    let Some(status) = r.image else {
        anyhow::bail!("no such image: {image}");
    };
    let info: serde_json::Value = r
        .info
        .get("info")
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or_default();
    println!(
        "{}",
        serde_json::to_string_pretty(&serde_json::json!({ "status": status, "info": info }))?
    );
    Ok(())
}

/// Pulls an image; on a long pull, prints how much the image store grew once a second (stderr).
pub async fn pull(mut c: Client, image: String, creds: Option<String>) -> anyhow::Result<()> {
    let auth = match creds {
        Some(text) => {
            let (username, password) = text
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--creds must be USER:PASSWORD"))?;
            Some(AuthConfig {
                username: username.to_string(),
                password: password.to_string(),
                ..Default::default()
            })
        }
        None => None,
    };
    let progress = tokio::spawn(progress(c.clone(), image.clone()));
    let result = c
        .pull_image(PullImageRequest {
            image: spec(image.clone()),
            auth,
            sandbox_config: None,
        })
        .await;
    progress.abort();
    let image_ref = result?.into_inner().image_ref;
    if std::io::stderr().is_terminal() {
        eprint!("\r\x1b[K");
    }
    println!("Image is up to date for {image}: {image_ref}");
    Ok(())
}

async fn progress(mut c: Client, image: String) {
    let used = |r: Option<cri_api::v1::ImageFsInfoResponse>| {
        r.and_then(|r| {
            r.image_filesystems
                .first()?
                .used_bytes
                .as_ref()
                .map(|u| u.value)
        })
        .unwrap_or(0)
    };
    let start_bytes = used(
        c.image_fs_info(ImageFsInfoRequest {})
            .await
            .ok()
            .map(|r| r.into_inner()),
    );
    let started = std::time::Instant::now();
    let tty = std::io::stderr().is_terminal();
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let now = used(
            c.image_fs_info(ImageFsInfoRequest {})
                .await
                .ok()
                .map(|r| r.into_inner()),
        );
        let grown = now.saturating_sub(start_bytes) as f64 / 1e6;
        let line = format!(
            "pulling {image}: {grown:.1} MB stored, {:.0}s",
            started.elapsed().as_secs_f64()
        );
        if tty {
            eprint!("\r\x1b[K{line}");
        } else {
            eprintln!("{line}");
        }
    }
}

/// Streams an OCI layout archive to crustd's admin API and prints what it imported.
pub async fn import(
    mut admin: AdminClient<Channel>,
    archive: std::path::PathBuf,
) -> anyhow::Result<()> {
    let file = tokio::fs::File::open(&archive)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {e}", archive.display()))?;
    let response = admin.import_image(chunks(file)).await?.into_inner();
    for image in response.images {
        let names = if image.repo_tags.is_empty() {
            "<none>".to_string()
        } else {
            image.repo_tags.join(", ")
        };
        println!("Imported {names}: {}", image.id);
    }
    Ok(())
}

/// The file as a stream of 1 MiB chunks. A read error ends the stream early (said on stderr);
/// crustd then rejects the truncated archive.
fn chunks(file: tokio::fs::File) -> impl tokio_stream::Stream<Item = ImportImageChunk> {
    futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt as _;
        let mut buf = vec![0u8; 1 << 20];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((ImportImageChunk { data: buf }, file))
            }
            Err(e) => {
                eprintln!("crust import: reading the archive: {e}");
                None
            }
        }
    })
}

/// Pulls `image` unless ImageStatus already knows it.
pub async fn ensure(mut c: Client, image: &str) -> anyhow::Result<()> {
    let known = c
        .image_status(ImageStatusRequest {
            image: spec(image.to_string()),
            verbose: false,
        })
        .await?
        .into_inner()
        .image
        .is_some();
    if !known {
        c.pull_image(PullImageRequest {
            image: spec(image.to_string()),
            auth: None,
            sandbox_config: None,
        })
        .await?;
    }
    Ok(())
}

/// Removes images (idempotent).
pub async fn remove(mut c: Client, images: Vec<String>) -> anyhow::Result<()> {
    for image in images {
        c.remove_image(RemoveImageRequest {
            image: spec(image.clone()),
        })
        .await?;
        println!("Deleted: {image}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_tag;

    #[test]
    fn splits_tags_but_not_ports() {
        assert_eq!(
            split_tag("docker.io/library/busybox:1.36"),
            ("docker.io/library/busybox".into(), "1.36".into())
        );
        assert_eq!(
            split_tag("127.0.0.1:5000/app"),
            ("127.0.0.1:5000/app".into(), "<none>".into())
        );
    }
}
