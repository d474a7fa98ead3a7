//! One shim's Task service over ttrpc: the calls crust makes for a pod's sandbox and containers,
//! each bounded by a deadline.

use std::time::Duration;

use containerd_shim_protos::{api, shim_async::TaskClient};
use ttrpc::{asynchronous::Client, context};

use crate::ShimError;

/// How long one call may take (Wait has none: it returns when the process exits).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected shim.
#[derive(Clone)]
pub struct Shim {
    address: String,
    task: TaskClient,
}

impl std::fmt::Debug for Shim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shim")
            .field("address", &self.address)
            .finish()
    }
}

/// An OCI process spec (JSON) as the Any an ExecProcessRequest carries.
pub fn process_spec(json: &[u8]) -> containerd_shim_protos::protobuf::well_known_types::any::Any {
    containerd_shim_protos::protobuf::well_known_types::any::Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
        value: json.to_vec(),
        ..Default::default()
    }
}

/// OCI LinuxResources (JSON) as the Any an UpdateTaskRequest carries.
pub fn linux_resources(
    json: &[u8],
) -> containerd_shim_protos::protobuf::well_known_types::any::Any {
    containerd_shim_protos::protobuf::well_known_types::any::Any {
        type_url: "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources".into(),
        value: json.to_vec(),
        ..Default::default()
    }
}

/// The runc shim's runtime options as the Any a CreateTaskRequest carries.
pub fn runc_options(
    options: &containerd_shim_protos::shim::oci::Options,
) -> containerd_shim_protos::protobuf::well_known_types::any::Any {
    use containerd_shim_protos::protobuf::Message as _;
    containerd_shim_protos::protobuf::well_known_types::any::Any {
        type_url: "containerd.runc.v1.Options".into(),
        value: options.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

fn deadline() -> context::Context {
    context::with_timeout(CALL_TIMEOUT.as_nanos() as i64)
}

fn err(call: &'static str) -> impl FnOnce(ttrpc::Error) -> ShimError {
    move |source| ShimError::Ttrpc { call, source }
}

impl Shim {
    /// Connects to the shim serving `address` (`unix://...`).
    pub async fn connect(address: &str) -> Result<Shim, ShimError> {
        let client = Client::connect(address).await.map_err(err("connect"))?;
        Ok(Shim {
            address: address.to_string(),
            task: TaskClient::new(client),
        })
    }

    /// The address this client is connected to.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Connect: the shim's pid and the task's (0 before Create).
    pub async fn info(&self, id: &str) -> Result<api::ConnectResponse, ShimError> {
        let req = api::ConnectRequest {
            id: id.to_string(),
            ..Default::default()
        };
        self.task
            .connect(deadline(), &req)
            .await
            .map_err(err("Connect"))
    }

    /// Create: the task's init pid.
    pub async fn create(&self, req: &api::CreateTaskRequest) -> Result<u32, ShimError> {
        let resp = self
            .task
            .create(deadline(), req)
            .await
            .map_err(err("Create"))?;
        Ok(resp.pid)
    }

    /// Start the task (`exec_id` empty) or one of its execs: the pid.
    pub async fn start(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let req = api::StartRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let resp = self
            .task
            .start(deadline(), &req)
            .await
            .map_err(err("Start"))?;
        Ok(resp.pid)
    }

    /// Kill with `signal` (`all`: every process of the task).
    pub async fn kill(
        &self,
        id: &str,
        exec_id: &str,
        signal: u32,
        all: bool,
    ) -> Result<(), ShimError> {
        let req = api::KillRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            signal,
            all,
            ..Default::default()
        };
        self.task
            .kill(deadline(), &req)
            .await
            .map_err(err("Kill"))?;
        Ok(())
    }

    /// Wait until the task (or exec) exits: its exit status.
    pub async fn wait(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        Ok(self.wait_exit(id, exec_id).await?.0)
    }

    /// Wait, with the exit time: `(exit status, exited at in ns since the epoch)`.
    pub async fn wait_exit(&self, id: &str, exec_id: &str) -> Result<(u32, i64), ShimError> {
        let req = api::WaitRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let resp = self
            .task
            .wait(context::Context::default(), &req)
            .await
            .map_err(err("Wait"))?;
        let at = resp
            .exited_at
            .as_ref()
            .map_or(0, |t| t.seconds * 1_000_000_000 + i64::from(t.nanos));
        Ok((resp.exit_status, at))
    }

    /// State of the task (or exec).
    pub async fn state(&self, id: &str, exec_id: &str) -> Result<api::StateResponse, ShimError> {
        let req = api::StateRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        self.task
            .state(deadline(), &req)
            .await
            .map_err(err("State"))
    }

    /// Delete the exited task (or exec): its exit status.
    pub async fn delete(&self, id: &str, exec_id: &str) -> Result<u32, ShimError> {
        let req = api::DeleteRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            ..Default::default()
        };
        let resp = self
            .task
            .delete(deadline(), &req)
            .await
            .map_err(err("Delete"))?;
        Ok(resp.exit_status)
    }

    /// Exec: registers process `exec_id` in task `id` from its OCI process spec (JSON); start it
    /// with [`Shim::start`].
    pub async fn exec(&self, req: &api::ExecProcessRequest) -> Result<(), ShimError> {
        self.task.exec(deadline(), req).await.map_err(err("Exec"))?;
        Ok(())
    }

    /// Pids: every process of the task.
    pub async fn pids(&self, id: &str) -> Result<Vec<u32>, ShimError> {
        let req = api::PidsRequest {
            id: id.to_string(),
            ..Default::default()
        };
        let resp = self
            .task
            .pids(deadline(), &req)
            .await
            .map_err(err("Pids"))?;
        Ok(resp.processes.iter().map(|p| p.pid).collect())
    }

    /// ResizePty of the task's or an exec's terminal.
    pub async fn resize_pty(
        &self,
        id: &str,
        exec_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), ShimError> {
        let req = api::ResizePtyRequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            width,
            height,
            ..Default::default()
        };
        self.task
            .resize_pty(deadline(), &req)
            .await
            .map_err(err("ResizePty"))?;
        Ok(())
    }

    /// CloseIO: closes the process's stdin.
    pub async fn close_stdin(&self, id: &str, exec_id: &str) -> Result<(), ShimError> {
        let req = api::CloseIORequest {
            id: id.to_string(),
            exec_id: exec_id.to_string(),
            stdin: true,
            ..Default::default()
        };
        self.task
            .close_io(deadline(), &req)
            .await
            .map_err(err("CloseIO"))?;
        Ok(())
    }

    /// Update: new OCI LinuxResources for the task.
    pub async fn update(&self, req: &api::UpdateTaskRequest) -> Result<(), ShimError> {
        self.task
            .update(deadline(), req)
            .await
            .map_err(err("Update"))?;
        Ok(())
    }

    /// Stats: the task's cgroup metrics, as the shim encodes them (an Any).
    pub async fn stats(&self, id: &str) -> Result<api::StatsResponse, ShimError> {
        let req = api::StatsRequest {
            id: id.to_string(),
            ..Default::default()
        };
        self.task
            .stats(deadline(), &req)
            .await
            .map_err(err("Stats"))
    }

    /// Shutdown: the shim exits once it holds no task (`now`: at once).
    pub async fn shutdown(&self, id: &str, now: bool) -> Result<(), ShimError> {
        let req = api::ShutdownRequest {
            id: id.to_string(),
            now,
            ..Default::default()
        };
        match self.task.shutdown(deadline(), &req).await {
            // The shim may exit before it answers (the connection ends: closed or early EOF).
            Ok(_)
            | Err(ttrpc::Error::RemoteClosed)
            | Err(ttrpc::Error::LocalClosed)
            | Err(ttrpc::Error::Socket(_)) => Ok(()),
            Err(source) => Err(ShimError::Ttrpc {
                call: "Shutdown",
                source,
            }),
        }
    }
}
