//! `crust doctor` (#15): on this machine it finds what crustd needs; on a scratch host root with
//! parts missing it names each missing part with a fix and exits 1; once they are there it
//! passes. No crustd runs.

use std::{path::Path, process::Command};

fn doctor(root: &Path) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_crust"))
        .args(["doctor", "--json", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor printed no JSON ({e}): {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), report)
}

fn level(report: &serde_json::Value, check: &str) -> String {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == check)
        .map(|c| c["level"].as_str().unwrap().to_string())
        .next() // one finding per check here
        .unwrap_or_default()
}

fn fails(report: &serde_json::Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["level"] == "fail")
        .map(|c| format!("{}: {} (fix: {})", c["check"], c["found"], c["fix"]))
        .collect()
}

fn put(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn doctor_checks_this_node() {
    let (code, report) = doctor(Path::new("/"));
    assert_eq!(
        (code, report["ok"].as_bool()),
        (0, Some(true)),
        "{:#}",
        report
    );
    let runc = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "OCI runtime")
        .unwrap();
    assert!(
        runc["found"].as_str().unwrap().contains("runc version"),
        "{runc}"
    );
}

#[test]
fn doctor_names_what_a_host_root_lacks_and_passes_once_it_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "proc/filesystems", "nodev\tproc\nnodev\ttmpfs\n");
    put(root, "proc/sys/kernel/osrelease", "5.4.0-old\n");
    put(root, "proc/sys/net/ipv4/ip_forward", "0\n");
    put(root, "usr/lib/cni/bridge", "");
    std::fs::create_dir_all(root.join("sys/fs/cgroup")).unwrap();
    let (code, report) = doctor(root);
    assert_eq!(code, 1, "{report:#}");
    let failed = fails(&report);
    for check in [
        "OCI runtime",
        "crust-shim",
        "cgroups",
        "CNI plugins",
        "overlayfs",
        "kernel",
    ] {
        assert!(
            failed
                .iter()
                .any(|f| f.starts_with(&format!("\"{check}\""))),
            "{check} not failed: {failed:#?}"
        );
    }
    assert!(
        failed.iter().any(|f| f.contains("host-local")),
        "{failed:#?}"
    );
    assert_eq!(level(&report, "ip forwarding"), "warn");
    assert!(
        failed.iter().all(|f| !f.contains("fix: null")),
        "each failure has a fix"
    );

    // Everything in place: a runtime that answers --version (written by a child shell, so no
    // thread of this test holds it open for writing when it runs), the plugins, the kernel.
    let runc = root.join("usr/sbin/runc");
    std::fs::create_dir_all(runc.parent().unwrap()).unwrap();
    let made = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf '#!/bin/sh\\necho runc version 9.9\\n' > {0} && chmod 755 {0}",
            runc.display()
        ))
        .status()
        .unwrap();
    assert!(made.success());
    for plugin in ["bridge", "host-local", "loopback", "portmap"] {
        put(root, &format!("usr/lib/cni/{plugin}"), "");
    }
    put(root, "usr/bin/crust-shim", "");
    put(
        root,
        "sys/fs/cgroup/cgroup.controllers",
        "cpu memory pids\n",
    );
    put(root, "proc/filesystems", "nodev\tproc\nnodev\toverlay\n");
    put(root, "proc/sys/kernel/osrelease", "6.1.0\n");
    let (code, report) = doctor(root);
    assert_eq!(code, 0, "{:#?}", fails(&report));
    assert_eq!(level(&report, "cgroups"), "ok");
}
