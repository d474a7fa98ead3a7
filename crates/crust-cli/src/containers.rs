//! `crust create/start/ps/inspect/stop/rm/logs/exec/stats`: the container side of the CLI, as
//! crictl has it.

use std::{io::Write as _, path::PathBuf, time::Duration};

use cri_api::v1::{
    runtime_service_client::RuntimeServiceClient, ContainerConfig, ContainerFilter, ContainerState,
    ContainerStatsFilter, ContainerStatusRequest, CreateContainerRequest, ExecSyncRequest,
    ListContainerStatsRequest, ListContainersRequest, PodSandboxConfig, RemoveContainerRequest,
    StartContainerRequest, StopContainerRequest,
};
use tonic::transport::Channel;

use crate::{parse_config, print_json};

type Client = RuntimeServiceClient<Channel>;

fn state_name(state: i32) -> &'static str {
    match ContainerState::try_from(state) {
        Ok(ContainerState::ContainerCreated) => "Created",
        Ok(ContainerState::ContainerRunning) => "Running",
        Ok(ContainerState::ContainerExited) => "Exited",
        _ => "Unknown",
    }
}

/// CreateContainer from crictl-style JSON/YAML configs.
pub async fn create(
    mut c: Client,
    pod: String,
    ctr: PathBuf,
    pod_config: PathBuf,
) -> anyhow::Result<()> {
    let config: ContainerConfig = parse_config(&ctr)?;
    let sandbox_config: PodSandboxConfig = parse_config(&pod_config)?;
    let id = c
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod,
            config: Some(config),
            sandbox_config: Some(sandbox_config),
        })
        .await?
        .into_inner()
        .container_id;
    println!("{id}");
    Ok(())
}

pub async fn start(mut c: Client, ids: Vec<String>) -> anyhow::Result<()> {
    for id in ids {
        c.start_container(StartContainerRequest {
            container_id: id.clone(),
        })
        .await?;
        println!("{id}");
    }
    Ok(())
}

pub async fn stop(mut c: Client, ids: Vec<String>, timeout: i64) -> anyhow::Result<()> {
    for id in ids {
        c.stop_container(StopContainerRequest {
            container_id: id.clone(),
            timeout,
        })
        .await?;
        println!("{id}");
    }
    Ok(())
}

pub async fn rm(mut c: Client, ids: Vec<String>) -> anyhow::Result<()> {
    for id in ids {
        c.remove_container(RemoveContainerRequest {
            container_id: id.clone(),
        })
        .await?;
        println!("{id}");
    }
    Ok(())
}

/// ListContainers as a table (or ids, or JSON).
pub async fn ps(mut c: Client, pod: Option<String>, quiet: bool, json: bool) -> anyhow::Result<()> {
    let filter = ContainerFilter {
        pod_sandbox_id: pod.unwrap_or_default(),
        ..Default::default()
    };
    let list = c
        .list_containers(ListContainersRequest {
            filter: Some(filter),
        })
        .await?
        .into_inner()
        .containers;
    if json {
        return print_json(&list);
    }
    if quiet {
        list.iter().for_each(|x| println!("{}", x.id));
        return Ok(());
    }
    println!(
        "{:<13}  {:<40}  {:<8}  {:<20}  POD",
        "CONTAINER", "IMAGE", "STATE", "NAME"
    );
    for x in &list {
        let name = x.metadata.as_ref().map_or("", |m| m.name.as_str());
        let image = x.image.as_ref().map_or("", |i| i.image.as_str());
        println!(
            "{:<13}  {image:<40}  {:<8}  {name:<20}  {}",
            &x.id[..13.min(x.id.len())],
            state_name(x.state),
            &x.pod_sandbox_id[..13.min(x.pod_sandbox_id.len())]
        );
    }
    Ok(())
}

/// ContainerStatus with its verbose `info` parsed.
async fn verbose_status(
    c: &mut Client,
    id: &str,
) -> anyhow::Result<(Option<cri_api::v1::ContainerStatus>, serde_json::Value)> {
    let r = c
        .container_status(ContainerStatusRequest {
            container_id: id.to_string(),
            verbose: true,
        })
        .await?
        .into_inner();
    let info = r
        .info
        .get("info")
        .and_then(|i| serde_json::from_str(i).ok())
        .unwrap_or_default();
    Ok((r.status, info))
}

/// ContainerStatus (verbose) as JSON.
pub async fn inspect(mut c: Client, id: String) -> anyhow::Result<()> {
    let (status, info) = verbose_status(&mut c, &id).await?;
    print_json(&serde_json::json!({ "status": status, "info": info }))
}

/// The text of CRI log records: P pieces are joined to the next record.
pub fn log_text(records: &str) -> String {
    let mut out = String::new();
    for line in records.lines() {
        let mut parts = line.splitn(4, ' ');
        let (_ts, _stream, tag, text) = (parts.next(), parts.next(), parts.next(), parts.next());
        out.push_str(text.unwrap_or(""));
        if tag != Some("P") {
            out.push('\n');
        }
    }
    out
}

/// Prints the container's log; `follow` keeps printing until the container exits.
pub async fn logs(mut c: Client, id: String, follow: bool) -> anyhow::Result<()> {
    let status = |c: &mut Client| {
        let mut c = c.clone();
        let id = id.clone();
        async move {
            c.container_status(ContainerStatusRequest {
                container_id: id,
                verbose: false,
            })
            .await
            .map(|r| r.into_inner().status.unwrap_or_default())
        }
    };
    let first = status(&mut c).await?;
    if first.log_path.is_empty() {
        anyhow::bail!("container {id} has no log path (its pod has no log_directory)");
    }
    let path = PathBuf::from(&first.log_path);
    let mut offset = 0usize;
    loop {
        let data = std::fs::read_to_string(&path).unwrap_or_default();
        // Only whole records; a record being written is printed next round.
        let end = data.rfind('\n').map_or(0, |i| i + 1);
        if end > offset {
            print!("{}", log_text(&data[offset..end]));
            std::io::stdout().flush()?;
            offset = end;
        }
        if !follow || status(&mut c).await?.state != ContainerState::ContainerRunning as i32 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// ExecSync: prints stdout and stderr and exits with the command's code.
pub async fn exec(mut c: Client, id: String, cmd: Vec<String>, timeout: i64) -> anyhow::Result<()> {
    let r = c
        .exec_sync(ExecSyncRequest {
            container_id: id,
            cmd,
            timeout,
        })
        .await?
        .into_inner();
    std::io::stdout().write_all(&r.stdout)?;
    std::io::stderr().write_all(&r.stderr)?;
    std::process::exit(r.exit_code);
}

/// Attaches to a running container through its shim's socket (on this node): prints its output
/// as it comes and, with `stdin`, sends this terminal's input; ends when the container does.
pub async fn attach(mut c: Client, id: String, stdin: bool) -> anyhow::Result<()> {
    let (_, info) = verbose_status(&mut c, &id).await?;
    let socket = info["attachSocket"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("crustd did not name an attach socket for {id}"))?;
    let stream = crust_shim::attach::connect(std::path::Path::new(socket))
        .map_err(|e| anyhow::anyhow!("attach socket {socket}: {e}"))?;
    if stdin {
        let mut input = stream.try_clone()?;
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut input);
        });
    }
    tokio::task::spawn_blocking(move || print_frames(stream)).await??;
    Ok(())
}

/// Copies the shim's output frames to stdout/stderr until the socket closes.
fn print_frames(mut stream: std::os::unix::net::UnixStream) -> anyhow::Result<()> {
    while let Some((kind, data)) = crust_shim::attach::read_frame(&mut stream)? {
        if kind == 2 {
            std::io::stderr().write_all(&data)?;
        } else {
            std::io::stdout().write_all(&data)?;
            std::io::stdout().flush()?;
        }
    }
    Ok(())
}

/// ListContainerStats as a table (or JSON).
pub async fn stats(mut c: Client, pod: Option<String>, json: bool) -> anyhow::Result<()> {
    let filter = ContainerStatsFilter {
        pod_sandbox_id: pod.unwrap_or_default(),
        ..Default::default()
    };
    let stats = c
        .list_container_stats(ListContainerStatsRequest {
            filter: Some(filter),
        })
        .await?
        .into_inner()
        .stats;
    if json {
        return print_json(&stats);
    }
    println!(
        "{:<13}  {:>10}  {:>12}  {:>12}",
        "CONTAINER", "CPU(ms)", "MEM(MB)", "DISK(MB)"
    );
    for s in &stats {
        let id = s.attributes.as_ref().map_or("", |a| a.id.as_str());
        let cpu = s
            .cpu
            .as_ref()
            .and_then(|c| c.usage_core_nano_seconds.as_ref())
            .map_or(0, |v| v.value);
        let mem = s
            .memory
            .as_ref()
            .and_then(|m| m.working_set_bytes.as_ref())
            .map_or(0, |v| v.value);
        let disk = s
            .writable_layer
            .as_ref()
            .and_then(|w| w.used_bytes.as_ref())
            .map_or(0, |v| v.value);
        println!(
            "{:<13}  {:>10.1}  {:>12.1}  {:>12.1}",
            &id[..13.min(id.len())],
            cpu as f64 / 1e6,
            mem as f64 / 1e6,
            disk as f64 / 1e6
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::log_text;

    #[test]
    fn joins_partial_records() {
        let records = "2026-01-01T00:00:00.000000000Z stdout P hel\n2026-01-01T00:00:00.000000001Z stdout F lo\n2026-01-01T00:00:00.000000002Z stderr F x y\n";
        assert_eq!(log_text(records), "hello\nx y\n");
    }
}
