//! `crust bench` runs against a real crustd and measures the floor in the same run (a shape check
//! of the report, not a timed test: the numbers are for people, see README).

mod common;

use common::Daemon;

#[tokio::test]
async fn bench_reports_every_rpc_and_the_floor() {
    let d = Daemon::start().await;
    let json = d.dir.path().join("bench.json");
    let out = tokio::process::Command::from(d.crust_cli())
        .args([
            "bench",
            "--pods",
            "4",
            "--concurrency",
            "2",
            "--floor",
            "--conflist",
        ])
        .arg(d.net.conf_dir.join("10-test.conflist"))
        .arg("--cni-bin-dirs")
        .arg(format!("{}:/usr/lib/cni", d.net.bin_dir.display()))
        .arg("--crust-root")
        .arg(&d.root)
        .arg("--crust-state")
        .arg(&d.state)
        .arg("--cgroup-parent")
        .arg(&d.cgroup_parent)
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    assert!(
        stdout.contains("ratio RunPodSandbox p50 / floor setup p50"),
        "{stdout}"
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for rpc in [
        "RunPodSandbox",
        "PodSandboxStatus",
        "StopPodSandbox",
        "RemovePodSandbox",
        "Stop+Remove",
    ] {
        assert_eq!(report["rpcs"][rpc]["n"], 4, "{rpc}: {report}");
        assert!(report["rpcs"][rpc]["p50_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(report["floor"]["setup"]["n"], 4);
    assert!(report["floor"]["teardown"]["p50_ms"].as_f64().unwrap() > 0.0);
    assert!(
        d.net.allocated_ips().is_empty(),
        "the floor released its IPs"
    );
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn density_reports_runtime_memory_and_one_process_per_pod() {
    let d = Daemon::start().await;
    let json = d.dir.path().join("density.json");
    let out = tokio::process::Command::from(d.crust_cli())
        .args([
            "bench",
            "--density",
            "5",
            "--concurrency",
            "2",
            "--host-network",
            "--cgroup-parent",
        ])
        .arg(&d.cgroup_parent)
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(
        r["server_pid"],
        d.pid(),
        "the runtime is found through the socket"
    );
    assert!(r["server_rss_kib_loaded"].as_u64().unwrap() > 0);
    assert_eq!(r["max_processes_per_pod"], 1, "only the pause: {r}");
    assert!(r["per_pod_rss_kib"].as_f64().unwrap() > 0.0);
    d.assert_no_leaks().await;
}
