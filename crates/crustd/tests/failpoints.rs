//! RunPodSandbox failing or crashing at every step (RELIABILITY.md R3), for host-network pods and
//! CNI pods in both orders, via the test-only failpoints compiled in with `--features failpoints`.
#![cfg(feature = "failpoints")]

mod common;

use common::Daemon;
use cri_api::v1::{
    PodSandboxConfig, PodSandboxState, RemovePodSandboxRequest, RunPodSandboxRequest,
};

const HOST_STEPS: [&str; 5] = [
    "run:after_persist",
    "run:after_files",
    "run:after_create",
    "run:before_start",
    "run:after_start",
];
const CNI_STEPS: [&str; 2] = ["run:after_netns", "run:after_network"];

/// A kind of pod: its label, how to make its config, and the steps that fire for it.
type Case = (
    &'static str,
    fn(&Daemon) -> PodSandboxConfig,
    Vec<&'static str>,
);

fn cases() -> Vec<Case> {
    let all: Vec<&str> = HOST_STEPS.iter().chain(CNI_STEPS.iter()).copied().collect();
    vec![
        ("host", |d: &Daemon| d.pod("fp"), HOST_STEPS.to_vec()),
        (
            "cni-start-first",
            |d: &Daemon| d.net_pod("fp", false),
            all.clone(),
        ),
        ("cni-network-first", |d: &Daemon| d.net_pod("fp", true), all),
    ]
}

async fn run(c: &mut common::Client, config: PodSandboxConfig) -> Result<String, tonic::Status> {
    c.run_pod_sandbox(RunPodSandboxRequest {
        config: Some(config),
        runtime_handler: String::new(),
    })
    .await
    .map(|r| r.into_inner().pod_sandbox_id)
}

/// Both sandbox kinds (#16): pinned namespaces (the default) and a pause container.
const KINDS: [(&str, &str); 2] = [("pinned", ""), ("pause", common::PAUSE_SANDBOX)];

#[tokio::test]
async fn an_error_at_every_step_is_rolled_back_completely() {
    for (kind, extra) in KINDS {
        for (label, make, steps) in cases() {
            let label = format!("{kind} {label}");
            for step in steps {
                let d =
                    Daemon::start_with(extra, &[("CRUST_FAILPOINTS", &format!("{step}=error"))])
                        .await;
                let mut c = d.client().await;
                let err = run(&mut c, make(&d)).await.expect_err(step);
                assert!(
                    err.message().contains(step),
                    "{label} {step}: {}",
                    err.message()
                );
                let items = common::list(&mut c).await;
                assert!(items.is_empty(), "{label} {step}: {items:?}");
                d.assert_no_leaks().await;
            }
        }
    }
}

#[tokio::test]
async fn r3_a_crash_at_every_step_leaves_a_removable_notready_pod() {
    for (kind, extra) in KINDS {
        for (label, make, steps) in cases() {
            let label = format!("{kind} {label}");
            for step in steps {
                let mut d =
                    Daemon::start_with(extra, &[("CRUST_FAILPOINTS", &format!("{step}=abort"))])
                        .await;
                let mut c = d.client().await;
                assert!(
                    run(&mut c, make(&d)).await.is_err(),
                    "{label} {step}: crustd should have crashed"
                );
                d.kill9();
                d.unset_env("CRUST_FAILPOINTS");
                d.restart().await;
                let mut c = d.client().await;
                let items = common::list(&mut c).await;
                assert_eq!(
                    items.len(),
                    1,
                    "{label} {step}: the write-ahead record survives the crash"
                );
                assert_eq!(
                    items[0].state,
                    PodSandboxState::SandboxNotready as i32,
                    "{label} {step}"
                );
                let id = items[0].id.clone();
                // Once the pause exists its pid is only staged until READY: recovery finds it through
                // runc (and Stop/Remove below then kill and delete it).
                // A pinned sandbox has no pause to find.
                let pause_made = kind == "pause"
                    && (["run:after_create", "run:before_start", "run:after_start"]
                        .contains(&step)
                        || (label.ends_with("cni-start-first") && step == "run:after_network"));
                // Network-first, the ADD overlaps the pause's creation: a crash after the ADD may
                // come before or after the pause exists (either way it is found or never was).
                let either = kind == "pause"
                    && label.ends_with("cni-network-first")
                    && step == "run:after_network";
                if !either {
                    assert_eq!(
                        d.log_text().contains("found the pause through the runtime"),
                        pause_made,
                        "{label} {step}"
                    );
                }
                // The name stays with the NOTREADY pod (never two sandboxes for one name)...
                let retry = run(&mut c, make(&d)).await;
                assert_eq!(
                    retry.unwrap_err().code(),
                    tonic::Code::AlreadyExists,
                    "{label} {step}"
                );
                // ...until Stop/Remove free everything (DEL included); then the retry succeeds.
                common::stop_remove(&mut c, &id).await;
                d.assert_no_leaks().await;
                let id = run(&mut c, make(&d))
                    .await
                    .unwrap_or_else(|e| panic!("{label} {step}: {e}"));
                c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await
                    .unwrap();
                d.assert_no_leaks().await;
            }
        }
    }
}
