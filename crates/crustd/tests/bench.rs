//! `crust bench` runs against a real crustd and measures the floor in the same run (a shape check
//! of the report, not a timed test: the numbers are for people, see README).

mod common;

use common::Daemon;

#[tokio::test]
async fn bench_reports_every_rpc_and_the_floor() {
    let d = Daemon::start().await;
    // The floor is interleaved in batches: one pod when sequential, 2×C pods at concurrency C.
    for (concurrency, batch) in [("2", 4), ("1", 1)] {
        let report = bench_with_floor(&d, concurrency).await;
        let label = format!("concurrency {concurrency}");
        for rpc in [
            "RunPodSandbox",
            "PodSandboxStatus",
            "StopPodSandbox",
            "RemovePodSandbox",
            "Stop+Remove",
        ] {
            assert_eq!(report["rpcs"][rpc]["n"], 4, "{label} {rpc}: {report}");
            assert!(report["rpcs"][rpc]["p50_ms"].as_f64().unwrap() > 0.0);
        }
        assert_eq!(report["floor"]["setup"]["n"], 4, "{label}");
        // The pinned floor is the netns + CNI ADD part of the same pods' setups.
        let (full, pinned) = (&report["floor"]["setup"], &report["floor"]["pinned_setup"]);
        assert_eq!(pinned["n"], 4, "{label}");
        let (full_min, pinned_min) = (full["min_ms"].as_f64(), pinned["min_ms"].as_f64());
        assert!(
            pinned_min.unwrap() > 0.0 && pinned_min < full_min,
            "{label}: {report}"
        );
        assert!(report["floor"]["teardown"]["p50_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(report["floor_batch"], batch, "{label}");
        let steps = report["floor"]["setup_steps_p50_ms"].as_array().unwrap();
        let names: Vec<&str> = steps.iter().map(|s| s[0].as_str().unwrap()).collect();
        assert_eq!(names, ["netns", "cni add", "runc create", "runc start"]);
        assert!(
            steps.iter().all(|s| s[1].as_f64().unwrap() > 0.0),
            "{steps:?}"
        );
        // crustd's pid is found through the socket; its CPU per pod is always some.
        assert!(
            report["runtime_cpu_ms_per_pod"].as_f64().unwrap() > 0.0,
            "{report}"
        );
        assert!(
            d.net.allocated_ips().is_empty(),
            "{label}: the floor released its IPs"
        );
        d.assert_no_leaks().await;
    }
}

/// `crust bench --pods 4 --floor` at `concurrency` on this daemon's network and cgroup parent.
fn bench_floor_cmd(d: &Daemon, concurrency: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::from(d.crust_cli());
    cmd.args([
        "bench",
        "--pods",
        "4",
        "--concurrency",
        concurrency,
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
    .arg(&d.cgroup_parent);
    cmd
}

/// `crust bench --pods 4 --floor` at `concurrency`; returns the JSON report.
async fn bench_with_floor(d: &Daemon, concurrency: &str) -> serde_json::Value {
    let json = d.dir.path().join(format!("bench-{concurrency}.json"));
    let out = bench_floor_cmd(d, concurrency)
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
        stdout.contains("ratio RunPodSandbox p50 / pinned floor (netns + CNI ADD) p50"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ratio RunPodSandbox p50 / floor setup p50"),
        "{stdout}"
    );
    assert!(
        stdout.contains("floor setup steps p50 (ms): netns"),
        "{stdout}"
    );
    serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap()
}

#[tokio::test]
async fn density_reports_runtime_memory_and_no_process_per_pod() {
    let d = Daemon::start().await;
    let json = d.dir.path().join("density.json");
    // The restart command stops this crustd and starts another on the same dirs.
    let pid_file = d.dir.path().join("restarted.pid");
    let restart = format!(
        "kill -TERM {pid}; while [ -e /proc/{pid} ] && [ \"$(awk '{{print $3}}' /proc/{pid}/stat)\" != Z ]; do sleep 0.01; done; \
         setsid {crustd} --socket {sock} --root {root} --state {state} --config {config} >> {log} 2>&1 < /dev/null & echo $! > {pid_file}",
        pid = d.pid(),
        crustd = env!("CARGO_BIN_EXE_crustd"),
        sock = d.socket.display(),
        root = d.root.display(),
        state = d.state.display(),
        config = d.config.display(),
        log = d.log.display(),
        pid_file = pid_file.display(),
    );
    let out = tokio::process::Command::from(d.crust_cli())
        .args([
            "bench",
            "--density",
            "5",
            "--concurrency",
            "2",
            "--host-network",
            "--restart-cmd",
            &restart,
            "--cgroup-parent",
        ])
        .arg(&d.cgroup_parent)
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .unwrap();
    let restarted: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signalling the crustd this test started.
    unsafe { libc::kill(restarted, libc::SIGTERM) };
    for _ in 0..500 {
        let stat = std::fs::read_to_string(format!("/proc/{restarted}/stat")).unwrap_or_default();
        let state = stat
            .rsplit_once(") ")
            .map(|(_, rest)| rest.starts_with('Z'));
        if state.unwrap_or(true) {
            break; // gone, or a zombie nobody reaps
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
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
    assert_eq!(
        r["max_processes_per_pod"], 0,
        "pinned pods run no process: {r}"
    );
    assert_eq!(r["monitor_processes"], 0, "no per-pod monitor: {r}");
    let serving = r["restart_to_serving_ms"].as_f64().unwrap();
    let ready = r["restart_to_all_ready_ms"].as_f64().unwrap();
    assert!(serving > 0.0 && ready >= serving, "{r}");
    assert!(stdout.contains("restart: serving after"), "{stdout}");
    assert_eq!(
        r["per_pod_rss_kib"].as_f64(),
        Some(0.0),
        "no process, no memory: {r}"
    );
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn bench_with_one_container_per_pod() {
    let registry = busybox_registry().await;
    let d = Daemon::start().await;
    let json = d.dir.path().join("bench-ctr.json");
    let out = tokio::process::Command::from(d.crust_cli())
        .args([
            "bench",
            "--pods",
            "3",
            "--concurrency",
            "2",
            "--host-network",
        ])
        .arg("--container-image")
        .arg(format!("{}/bench/busybox:1", registry.addr))
        .arg("--cgroup-parent")
        .arg(&d.cgroup_parent)
        .arg("--json")
        .arg(&json)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for rpc in [
        "CreateContainer",
        "StartContainer",
        "StopContainer",
        "RemoveContainer",
        "RunPodSandbox",
    ] {
        assert_eq!(report["rpcs"][rpc]["n"], 3, "{rpc}: {report}");
    }
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn a_failed_bench_removes_the_pods_it_made_and_the_floors() {
    let d = Daemon::start().await;
    // Sequential and interleaved: crust pod 0, floor pod 0, floor pod 1 get their network; the
    // fourth ADD (crust pod 1) fails, crustd rolls that pod back and the bench stops.
    d.net.fail("portmap", "ADD.after", "3");
    let out = bench_floor_cmd(&d, "1").output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the bench should fail: {stderr}");
    assert!(stderr.contains("injected ADD failure"), "{stderr}");
    let adds = d.net.calls("portmap");
    assert_eq!(
        adds.iter().filter(|c| c.starts_with("ADD")).count(),
        4,
        "{adds:?}"
    );
    let mut c = d.client().await;
    assert!(
        common::list(&mut c).await.is_empty(),
        "crust's pod 0 was removed"
    );
    assert!(
        d.net.allocated_ips().is_empty(),
        "the floor's two pods released their IPs"
    );
    // The floor's directory (runc root, netns pins, bundles) is gone with its pods.
    let floor_dir = stderr
        .lines()
        .find_map(|l| l.strip_prefix("cleaned up the floor's pods in "))
        .unwrap_or_else(|| panic!("no floor cleanup reported: {stderr}"));
    assert!(
        !std::path::Path::new(floor_dir).exists(),
        "{floor_dir} is left"
    );
    d.net.clear_failpoints();
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn a_failed_density_run_removes_the_pods_it_started() {
    let d = Daemon::start().await;
    // Pods 0 and 1 get their network, pod 2's ADD fails: the run stops and removes 0 and 1.
    d.net.fail("portmap", "ADD.after", "2");
    let out = tokio::process::Command::from(d.crust_cli())
        .args(["bench", "--density", "4", "--concurrency", "1"])
        .arg("--cgroup-parent")
        .arg(&d.cgroup_parent)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the run should fail: {stderr}");
    assert!(stderr.contains("injected ADD failure"), "{stderr}");
    let mut c = d.client().await;
    assert!(
        common::list(&mut c).await.is_empty(),
        "pods 0 and 1 removed"
    );
    assert!(d.net.allocated_ips().is_empty());
    d.net.clear_failpoints();
    d.assert_no_leaks().await;
}

#[tokio::test]
async fn streaming_bench_reports_exec_and_port_forward_beside_their_floors() {
    let registry = busybox_registry().await;
    let d = Daemon::start().await;
    let json = d.dir.path().join("bench-streaming.json");
    let out = tokio::process::Command::from(d.crust_cli())
        .args(["bench", "--pods", "5", "--streaming"])
        .arg(format!("{}/bench/busybox:1", registry.addr))
        .arg("--cgroup-parent")
        .arg(&d.cgroup_parent)
        .arg("--crust-state")
        .arg(&d.state)
        .args(["--runc", "/usr/sbin/runc", "--json"])
        .arg(&json)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text()
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(r["execs"], 5, "{r}");
    for key in [
        "exec_p50_ms",
        "exec_sync_p50_ms",
        "runc_exec_p50_ms",
        "forward_mib_s",
        "direct_mib_s",
    ] {
        assert!(r[key].as_f64().unwrap() > 0.0, "{key}: {r}");
    }
    assert!(
        r["bytes"].as_u64().unwrap() >= 1 << 30,
        "1 GiB forwarded: {r}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Exec / runc exec") && text.contains("forwarded / direct"),
        "{text}"
    );
    d.assert_no_leaks().await;
}

/// A registry holding busybox as `bench/busybox:1`.
async fn busybox_registry() -> common::registry::Registry {
    use common::registry::{busybox_layer, Compression, Registry, TestImage, TestLayer};
    let registry = Registry::start().await;
    let image = TestImage::new(vec![TestLayer::new(busybox_layer(), Compression::Gzip)]);
    registry.push_image("bench/busybox", "1", &image).await;
    registry
}

/// `--versus`: a second runtime (here a crustd running pause sandboxes) on the same pods, batch by
/// batch with the first and the floor; both sides' figures and the ratios in one report.
#[tokio::test]
async fn versus_benches_a_second_runtime_interleaved_and_reports_ratios() {
    let d = Daemon::start().await;
    let other = Daemon::start_with(common::PAUSE_SANDBOX, &[]).await;
    let env = common::ctr::busybox(&d).await;
    let json = d.dir.path().join("bench-versus.json");
    let out = bench_floor_cmd(&d, "1")
        .arg("--versus")
        .arg(&other.socket)
        .args(["--container-image", &env.image, "--json"])
        .arg(&json)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        d.log_text(),
        other.log_text()
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for side in [&r["rpcs"], &r["versus"]["rpcs"]] {
        for rpc in [
            "RunPodSandbox",
            "Stop+Remove",
            "Pod+container ready",
            "StartContainer",
        ] {
            assert_eq!(side[rpc]["n"], 4, "{rpc}: {r}");
        }
    }
    assert_eq!(r["floor"]["setup"]["n"], 4, "{r}");
    assert_eq!(r["versus"]["endpoint"], other.socket.display().to_string());
    assert!(r["versus"]["setup_wall_s"].as_f64().unwrap() > 0.0, "{r}");
    assert!(
        r["versus"]["runtime_cpu_ms_per_pod"].as_f64().unwrap() > 0.0,
        "{r}"
    );
    for ratio in [
        "RunPodSandbox p50 / versus RunPodSandbox p50",
        "Pod+container ready p50 / versus Pod+container ready p50",
        "setup wall / versus setup wall",
        "RunPodSandbox p50 / pinned floor (netns + CNI ADD) p50",
    ] {
        assert!(r["ratios"][ratio].as_f64().unwrap() > 0.0, "{ratio}: {r}");
        assert!(stdout.contains(&format!("ratio {ratio}")), "{stdout}");
    }
    assert!(stdout.contains("versus: RunPodSandbox"), "{stdout}");
    d.assert_no_leaks().await;
    other.assert_no_leaks().await;
}
