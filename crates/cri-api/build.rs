//! Generates the CRI v1 code from `proto/api.proto` with protox (no system protoc).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/api.proto");
    let fds = protox::compile(["api.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // serde for the operator CLI and tests: crictl-style JSON/YAML pod and container configs
        // (snake_case field names, enums as numbers, absent fields defaulted).
        .message_attribute(
            ".",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .enum_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        // Environment values are bytes since v0.34; configs write them as text.
        .field_attribute(
            ".runtime.v1.KeyValue.value",
            "#[serde(with = \"crate::text_bytes\")]",
        )
        // The registry secrets (`debug_redact` in the proto) never show in Debug output.
        .skip_debug([".runtime.v1.AuthConfig"])
        .compile_fds(fds)?;
    Ok(())
}
