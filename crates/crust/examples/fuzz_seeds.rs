//! Writes a seed corpus for the fuzz targets in `crates/crust/fuzz` (one directory per target
//! under the given dir): well-formed inputs of the kinds each target parses, so the fuzzer
//! starts from deep inside the code instead of from empty bytes. scripts/fuzz.sh runs it.
//! Usage: cargo run --example fuzz_seeds -- DIR

use std::{collections::HashMap, io::Write, path::Path};

use cri_api::v1::{
    Capability, ContainerConfig, ContainerMetadata, CreateContainerRequest, DnsConfig, ImageSpec,
    KeyValue, LinuxContainerConfig, LinuxContainerResources, LinuxContainerSecurityContext,
    LinuxPodSandboxConfig, LinuxSandboxSecurityContext, Mount, NamespaceOption, PodSandboxConfig,
    PodSandboxMetadata, PortMapping, RunPodSandboxRequest, SecurityProfile,
};
use prost::Message as _;

fn pod() -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: "web".into(),
            uid: "uid-1".into(),
            namespace: "default".into(),
            attempt: 0,
        }),
        hostname: "web".into(),
        log_directory: "/var/log/pods/default_web_uid-1".into(),
        dns_config: Some(DnsConfig {
            servers: vec!["10.96.0.10".into()],
            searches: vec!["default.svc.cluster.local".into()],
            options: vec!["ndots:5".into()],
        }),
        port_mappings: vec![PortMapping {
            protocol: 0,
            container_port: 80,
            host_port: 8080,
            host_ip: "127.0.0.1".into(),
        }],
        labels: HashMap::from([("app".into(), "web".into())]),
        annotations: HashMap::from([("cri.sandbox.network.setup.v2".into(), "true".into())]),
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: "/kubepods/pod-uid-1".into(),
            sysctls: HashMap::from([("net.ipv4.ip_unprivileged_port_start".into(), "0".into())]),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption::default()),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container() -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: "app".into(),
            attempt: 1,
        }),
        image: Some(ImageSpec {
            image: "registry.local/app:1".into(),
            ..Default::default()
        }),
        command: vec!["/bin/sh".into(), "-c".into()],
        args: vec!["exec sleep 1000".into()],
        working_dir: "/srv".into(),
        envs: vec![KeyValue {
            key: "MODE".into(),
            value: b"fuzz".to_vec(),
        }],
        mounts: vec![Mount {
            container_path: "/data".into(),
            host_path: "/var/lib/data".into(),
            readonly: true,
            ..Default::default()
        }],
        log_path: "app/1.log".into(),
        tty: true,
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_period: 100_000,
                cpu_quota: 50_000,
                cpu_shares: 512,
                memory_limit_in_bytes: 64 << 20,
                oom_score_adj: 100,
                cpuset_cpus: "0".into(),
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                capabilities: Some(Capability {
                    add_capabilities: vec!["NET_ADMIN".into()],
                    drop_capabilities: vec!["MKNOD".into()],
                    ..Default::default()
                }),
                seccomp: Some(SecurityProfile {
                    profile_type: 0,
                    localhost_ref: String::new(),
                }),
                supplemental_groups: vec![10, 20],
                run_as_user: Some(cri_api::v1::Int64Value { value: 1000 }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

fn tar_layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut entry = |path: &str, kind: tar::EntryType, data: &[u8], link: Option<&str>| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(0o755);
        h.set_size(data.len() as u64);
        match link {
            Some(l) => b.append_link(&mut h, path, l).expect("link entry"),
            None => b.append_data(&mut h, path, data).expect("entry"),
        }
    };
    entry("etc/", tar::EntryType::Directory, b"", None);
    entry("etc/motd", tar::EntryType::Regular, b"hi\n", None);
    entry("etc/link", tar::EntryType::Symlink, b"", Some("/etc/motd"));
    entry("etc/hard", tar::EntryType::Link, b"", Some("etc/motd"));
    entry("etc/.wh.gone", tar::EntryType::Regular, b"", None);
    entry("var/.wh..wh..opq", tar::EntryType::Regular, b"", None);
    b.into_inner().expect("tar")
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let d = dir.join(target);
    std::fs::create_dir_all(&d)?;
    std::fs::write(d.join(name), bytes)
}

fn main() -> anyhow::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: fuzz_seeds DIR"))?;
    let dir = Path::new(&dir);
    let create = CreateContainerRequest {
        pod_sandbox_id: "f".repeat(64),
        config: Some(container()),
        sandbox_config: Some(pod()),
    };
    write(dir, "cri_container", "typical", &create.encode_to_vec())?;
    let run = RunPodSandboxRequest {
        config: Some(pod()),
        runtime_handler: "runc".into(),
    };
    write(dir, "cri_sandbox", "typical", &run.encode_to_vec())?;
    let conflist = serde_json::json!({"cniVersion": "1.0.0", "name": "n", "plugins": [
        {"type": "bridge", "bridge": "b0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/24"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": true}}]});
    write(
        dir,
        "cni_parse",
        "conflist",
        conflist.to_string().as_bytes(),
    )?;
    let result = serde_json::json!({"cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "mac": "0a:58:0a:01:00:02", "sandbox": "/run/netns/x"}],
        "ips": [{"address": "10.1.0.2/24", "gateway": "10.1.0.1", "interface": 0}]});
    write(dir, "cni_parse", "result", result.to_string().as_bytes())?;
    let digest = format!("sha256:{}", "a".repeat(64));
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": 10},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": 10}]});
    write(
        dir,
        "image_documents",
        "manifest",
        manifest.to_string().as_bytes(),
    )?;
    let index = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": digest, "size": 10,
                       "platform": {"os": "linux", "architecture": "amd64"}}]});
    write(
        dir,
        "image_documents",
        "index",
        index.to_string().as_bytes(),
    )?;
    let config = serde_json::json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [digest]}, "config": {"Cmd": ["/bin/sh"]}});
    write(
        dir,
        "image_documents",
        "config",
        config.to_string().as_bytes(),
    )?;
    let tar = tar_layer();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar)?;
    for (pick, bytes) in [
        (0u8, tar.clone()),
        (1, gz.finish()?),
        (2, zstd::encode_all(&tar[..], 1)?),
    ] {
        let mut seed = vec![pick];
        seed.extend_from_slice(&bytes);
        write(dir, "layer_unpack", &format!("layer-{pick}"), &seed)?;
    }
    for (name, header) in [
        (
            "bearer",
            r#"Bearer realm="https://auth.local/token",service="registry",scope="repository:a/b:pull""#,
        ),
        ("basic", r#"Basic realm="registry""#),
    ] {
        write(dir, "auth_challenge", name, header.as_bytes())?;
    }
    let image = crust::image::store::ImageRecord {
        id: digest.clone(),
        repo_tags: vec!["registry.local/app:1".into()],
        repo_digests: vec![],
        manifest_digest: digest.clone(),
        layers: vec![],
        size: 10,
        config,
    };
    let path = dir.join("record_load").join("image");
    std::fs::create_dir_all(dir.join("record_load"))?;
    crust::store::write_record(&path, crust::image::store::IMAGE_RECORD_VERSION, &image)?;
    Ok(())
}
