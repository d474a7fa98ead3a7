//! RunPodSandbox's validation and the pause process's OCI spec, fed arbitrary requests: never a
//! panic, and a config that validates always has a name and converts to a spec.
#![no_main]

use std::path::Path;

use crust::sandbox::{spec, validate};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fuzz_target!(|data: &[u8]| {
    let Ok(request) = cri_api::v1::RunPodSandboxRequest::decode(data) else {
        return;
    };
    let config = request.config.unwrap_or_default();
    if validate::check_config(&config).is_err() {
        return;
    }
    let Ok(_name) = validate::sandbox_name(&config) else {
        return;
    };
    let args = ["/pause".to_string()];
    let input = spec::PauseSpecInput {
        rootfs: Path::new("/run/fuzz/rootfs"),
        args: &args,
        network: validate::network_mode(&config),
        netns: Some(Path::new("/run/fuzz/netns")),
        shm: Some(Path::new("/run/fuzz/shm")),
        cgroups_path: "/crust/fuzz",
        oom_score_adj: -998,
        sandbox_id: "fuzz",
        runtime: &crust::config::RuntimeConfig {
            pod_annotations: vec!["io.".into()],
            ..Default::default()
        },
    };
    let spec = spec::pause_spec(&config, &input);
    if std::env::var_os("CRUST_FUZZ_DEBUG").is_some() {
        eprintln!("converted: {}", spec["process"]["args"]);
    }
    serde_json::to_vec(&spec).expect("a spec serialises");
});
