//! The README's kubelet, crictl and RuntimeClass snippets (#15) stay true: they parse, name
//! crustd's default socket and cgroup driver, and every RuntimeClass handler is one the
//! README's config snippet (run through crustd's own config parser) or the defaults define.

use std::path::Path;

fn blocks(readme: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    readme
        .split(&fence)
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(block, _)| block.to_string()))
        .collect()
}

#[test]
fn kubelet_crictl_and_runtime_class_snippets_match_crustd() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let section = readme
        .split("## kubelet and crictl")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a kubelet section");
    let socket = format!("unix://{}", crust::config::DEFAULT_SOCKET);
    let yaml: Vec<serde_yaml::Value> = blocks(section, "yaml")
        .iter()
        .map(|b| serde_yaml::from_str(b).unwrap())
        .collect();
    let kubelet = yaml
        .iter()
        .find(|v| v["kind"] == "KubeletConfiguration")
        .expect("a KubeletConfiguration");
    assert_eq!(
        kubelet["containerRuntimeEndpoint"].as_str(),
        Some(socket.as_str())
    );
    assert_eq!(
        kubelet["imageServiceEndpoint"].as_str(),
        Some(socket.as_str())
    );
    assert_eq!(kubelet["cgroupDriver"].as_str(), Some("cgroupfs"));
    let crictl = yaml
        .iter()
        .find(|v| v.get("runtime-endpoint").is_some())
        .expect("a crictl.yaml");
    assert_eq!(crictl["runtime-endpoint"].as_str(), Some(socket.as_str()));
    assert_eq!(crictl["image-endpoint"].as_str(), Some(socket.as_str()));
    let toml = blocks(section, "toml").join("\n");
    let config = crust::config::Config::from_toml(&toml, Path::new("README.md")).unwrap();
    let classes: Vec<&serde_yaml::Value> = yaml
        .iter()
        .filter(|v| v["kind"] == "RuntimeClass")
        .collect();
    assert!(!classes.is_empty());
    for class in classes {
        let handler = class["handler"].as_str().unwrap();
        assert!(
            config.runtimes.contains_key(handler),
            "RuntimeClass handler {handler} is not configured"
        );
    }
    assert!(config.runtimes.contains_key("runc"), "runc is built in");
}
