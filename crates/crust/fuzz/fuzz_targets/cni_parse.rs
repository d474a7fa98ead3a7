//! CNI network config lists (`.conflist` / `.conf`) and plugin results from arbitrary text:
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = cni::NetworkConfigList::parse(text, std::path::Path::new("fuzz.conflist"));
    if let Ok(value) = serde_json::from_str(text) {
        if let Ok(result) = cni::CniResult::parse(value) {
            for ip in result.ips_on("eth0") {
                let _ = (ip.ip(), ip.is_v4());
            }
        }
    }
});
