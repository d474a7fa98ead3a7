//! Prometheus metrics (#15): a real Prometheus (Debian's) started on loopback scrapes crustd
//! while pods are run and removed; PromQL through its HTTP API sees the RPC counters, the
//! RunPodSandbox step histograms and the CNI plugin calls move, and `promtool check metrics`
//! accepts the exposition. No pod id ever appears in a label.

mod common;

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use common::Daemon;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Prometheus scraping `target` every second, killed on drop.
struct Prometheus {
    child: Child,
    api: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("crust-prometheus-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\nscrape_configs:\n  - job_name: crust\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus)");
        Prometheus {
            child,
            api: format!("http://{listen}/api/v1"),
            _dir: dir,
        }
    }

    /// The value of a PromQL expression that yields one sample, if it does now.
    async fn value(&self, query: &str) -> Option<f64> {
        let reply: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/query", self.api))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        reply["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
    }

    /// Waits (up to 30 s) until `query` yields at least `at_least`.
    async fn reaches(&self, query: &str, at_least: f64) -> f64 {
        let mut last = None;
        for _ in 0..150 {
            last = self.value(query).await;
            if last.is_some_and(|v| v >= at_least) {
                return last.unwrap_or_default();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{query} never reached {at_least} (last {last:?})");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn prometheus_scrapes_rpc_counters_step_histograms_and_cni_calls() {
    let address = format!("127.0.0.1:{}", free_port());
    let d = Daemon::start_with(&format!("[metrics]\naddress = \"{address}\"\n"), &[]).await;
    let prom = Prometheus::start(&address);
    // Up, and scraped: the counter of the harness's Version calls is there.
    prom.reaches("up{job=\"crust\"}", 1.0).await;
    let runs = r#"sum(crust_grpc_requests_total{method="RunPodSandbox",code="Ok"}) or vector(0)"#;
    let before = prom.value(runs).await.unwrap_or(0.0);
    let mut c = d.client().await;
    let mut pods = vec![];
    for (i, first) in [false, true, false].into_iter().enumerate() {
        pods.push(
            d.run_config(&mut c, d.net_pod(&format!("metrics-{i}"), first))
                .await,
        );
    }
    let mut bad = d.pod("metrics-bad");
    bad.metadata.as_mut().unwrap().name = "../x".into();
    let err = c
        .run_pod_sandbox(cri_api::v1::RunPodSandboxRequest {
            config: Some(bad),
            runtime_handler: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    prom.reaches(runs, before + 3.0).await;
    prom.reaches(
        r#"crust_grpc_requests_total{method="RunPodSandbox",code="InvalidArgument"}"#,
        1.0,
    )
    .await;
    for step in ["persist", "netns", "network", "create", "start", "finish"] {
        let q = format!(r#"crust_sandbox_run_step_duration_seconds_count{{step="{step}"}}"#);
        prom.reaches(&q, 3.0).await;
    }
    prom.reaches(
        r#"sum(crust_cni_plugin_duration_seconds_count{command="ADD",result="success"})"#,
        6.0, // two plugins (bridge and portmap, each behind the failpoint wrapper) per pod
    )
    .await;
    prom.reaches(r#"crust_pods{state="SANDBOX_READY"}"#, 3.0)
        .await;
    prom.reaches("process_resident_memory_bytes", 1e6).await;
    prom.reaches(
        r#"histogram_quantile(0.5, sum by (le) (crust_grpc_request_duration_seconds_bucket{method="RunPodSandbox"}))"#,
        0.000001,
    )
    .await;

    // The exposition passes promtool and names no pod in any label.
    let text = reqwest::get(format!("http://{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for id in &pods {
        assert!(!text.contains(id.as_str()), "a pod id in the metrics");
    }
    let mut check = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for id in &pods {
        common::stop_remove(&mut c, id).await;
    }
    prom.reaches(
        r#"crust_pods{state="SANDBOX_READY"} == 0 or vector(1)"#,
        0.0,
    )
    .await;
    d.assert_no_leaks().await;
}
