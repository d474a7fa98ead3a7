//! `crust bench --pull REF`: PullImage + unpack of REF through the CRI socket (cold: the image is
//! removed first), next to the same work done by `skopeo copy` (download and verify into an OCI
//! layout) + `umoci unpack` (unpack into a bundle) in the same run; medians and their ratio.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::Context;
use cri_api::v1::{
    image_service_client::ImageServiceClient, ImageSpec, PullImageRequest, RemoveImageRequest,
};
use serde::Serialize;
use tonic::transport::Channel;

/// What the pull bench measured.
#[derive(Debug, Serialize)]
pub struct PullReport {
    pub image: String,
    pub runs: usize,
    pub crust_ms: Vec<f64>,
    pub skopeo_ms: Vec<f64>,
    pub umoci_ms: Vec<f64>,
    pub crust_median_ms: f64,
    pub floor_median_ms: f64,
    /// crust / (skopeo + umoci), medians.
    pub ratio: f64,
}

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len() / 2).copied().unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Loopback registries are plain http here, as in crustd.
fn tls_flag(image: &str) -> &'static str {
    let host = image.split('/').next().unwrap_or("");
    if host.starts_with("127.") || host.starts_with("localhost") || host.starts_with("[::1]") {
        "--src-tls-verify=false"
    } else {
        "--src-tls-verify=true"
    }
}

fn run_tool(cmd: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (install skopeo and umoci)"))?;
    if !out.status.success() {
        anyhow::bail!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(started.elapsed())
}

/// skopeo copy + umoci unpack of `image` into a fresh temp dir.
fn floor_once(image: &str, scratch: &Path) -> anyhow::Result<(Duration, Duration)> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch)?;
    let layout = scratch.join("layout");
    let copy = run_tool(
        Command::new("skopeo")
            .args(["copy", "--quiet", tls_flag(image)])
            .arg(format!("docker://{image}"))
            .arg(format!("oci:{}:bench", layout.display())),
    )?;
    let unpack = run_tool(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:bench", layout.display()))
            .arg(scratch.join("bundle")),
    )?;
    Ok((copy, unpack))
}

async fn crust_once(c: &mut ImageServiceClient<Channel>, image: &str) -> anyhow::Result<Duration> {
    c.remove_image(RemoveImageRequest { image: spec(image) })
        .await?;
    let started = Instant::now();
    c.pull_image(PullImageRequest {
        image: spec(image),
        auth: None,
        sandbox_config: None,
    })
    .await?;
    Ok(started.elapsed())
}

/// Alternates crust and the floor `runs` times.
pub async fn run(
    mut c: ImageServiceClient<Channel>,
    image: String,
    runs: usize,
) -> anyhow::Result<PullReport> {
    let scratch = std::env::temp_dir().join(format!("crust-bench-pull-{}", std::process::id()));
    let (mut crust, mut skopeo, mut umoci) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs.max(1) {
        crust.push(ms(crust_once(&mut c, &image).await?));
        let (copy, unpack) = floor_once(&image, &scratch)?;
        skopeo.push(ms(copy));
        umoci.push(ms(unpack));
        eprintln!(
            "run {}: crust {:.0} ms, skopeo {:.0} ms + umoci {:.0} ms",
            run + 1,
            crust[run],
            skopeo[run],
            umoci[run]
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let floor: Vec<f64> = skopeo.iter().zip(&umoci).map(|(a, b)| a + b).collect();
    let (crust_median_ms, floor_median_ms) = (median(&crust), median(&floor));
    Ok(PullReport {
        image,
        runs: crust.len(),
        crust_ms: crust,
        skopeo_ms: skopeo,
        umoci_ms: umoci,
        crust_median_ms,
        floor_median_ms,
        ratio: crust_median_ms / floor_median_ms.max(f64::MIN_POSITIVE),
    })
}

/// The table.
pub fn print(r: &PullReport) {
    println!(
        "pull + unpack of {} ({} cold runs, medians)",
        r.image, r.runs
    );
    println!("  crust PullImage          {:>9.1} ms", r.crust_median_ms);
    println!(
        "  skopeo copy + umoci      {:>9.1} ms  (skopeo {:.1} + umoci {:.1})",
        r.floor_median_ms,
        median(&r.skopeo_ms),
        median(&r.umoci_ms)
    );
    println!("  ratio crust / floor      {:>9.2}x", r.ratio);
}
