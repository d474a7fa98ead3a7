//! CreateContainer's validation and the CRI -> OCI spec conversion, fed arbitrary requests (the
//! protobuf decoded from the input; no container runs, nothing on the host is touched): never a
//! panic, and a config that validates always converts to a spec that serialises.
#![no_main]

use std::path::Path;

use crust::{
    container::{caps, seccomp, spec, user, validate},
    sandbox::{record::SandboxRecord, state::SandboxState, validate as pod_validate},
};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fn pod_record(config: cri_api::v1::PodSandboxConfig) -> SandboxRecord {
    SandboxRecord {
        id: "f".repeat(64),
        name: "fuzz".into(),
        network_mode: pod_validate::network_mode(&config),
        requested: config.clone(),
        config,
        runtime_handler: "runc".into(),
        state: SandboxState::Ready,
        created_at_ns: 0,
        held: Default::default(),
        sandbox: Default::default(),
        pause: None,
        cgroups_path: "/crust/fuzz".into(),
        checkpoint: String::new(),
        attachments: Vec::new(),
        network: None,
        netns: None,
        reason: None,
        rootfs: None,
        pod_resources: Default::default(),
        network_order: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(request) = cri_api::v1::CreateContainerRequest::decode(data) else {
        return;
    };
    let pod_config = request.sandbox_config.unwrap_or_default();
    let config = request.config.unwrap_or_default();
    let pod = pod_record(pod_config.clone());
    if validate::check_config(&pod, &config).is_err()
        || validate::check_argv(&config.command).is_err()
    {
        return;
    }
    let sc = config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.clone())
        .unwrap_or_default();
    let Ok(choice) = seccomp::choice(&sc) else {
        return;
    };
    // A Localhost profile is a host file: the conversion is fuzzed without it.
    let profile = match choice {
        seccomp::Choice::Localhost(_) => None,
        other => seccomp::profile(&other).ok().flatten(),
    };
    let bounding = caps::from_mask(u64::MAX >> 23);
    let Ok(caps) = caps::capabilities(&sc, &bounding) else {
        return;
    };
    let image_user = "";
    let Ok(resolved) = user::resolve(&sc, image_user, &user::ImageAccounts::default()) else {
        return;
    };
    let image_config = serde_json::json!({"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]});
    let (p, f) = (Path::new("/run/fuzz/hosts"), Path::new("/run/fuzz/f"));
    let input = spec::SpecInput {
        rootfs: Path::new("/run/fuzz/rootfs"),
        image_config: &image_config,
        pod: &pod_config,
        pod_ns: crust::container::spec::PodNamespaces::Pause(1),
        netns: None,
        hosts: p,
        resolv_conf: f,
        hostname: f,
        shm: Some(f),
        cgroups_path: "/crust/fuzz/c",
        user: &resolved,
        target_pid: None,
        seccomp: profile.as_ref(),
        devices: &[],
        caps: &caps,
        mount_sources: &[],
    };
    let spec = spec::container_spec(&config, &input);
    if std::env::var_os("CRUST_FUZZ_DEBUG").is_some() {
        eprintln!("converted: {}", spec["process"]["args"]);
    }
    serde_json::to_vec(&spec).expect("a spec serialises");
});
