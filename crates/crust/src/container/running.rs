//! The verbs on a running container that leave its lifecycle alone: where a streaming Exec or
//! Attach goes, ExecSync, ReopenContainerLog and UpdateContainerResources.

use std::{path::PathBuf, sync::Arc, time::Duration};

use cri_api::v1::ContainerConfig;

use super::{
    exec,
    manager::{io, ContainerManager},
    record::Container,
    state::ContainerState,
    validate, ContainerError,
};

impl ContainerManager {
    /// The container with `key`, which must be running.
    fn running(&self, key: &str, what: &'static str) -> Result<Arc<Container>, ContainerError> {
        let c = self.lookup(key)?;
        let state = c.snapshot().state;
        if state != ContainerState::Running {
            return Err(ContainerError::WrongState {
                id: c.id.clone(),
                state: format!("{state:?}"),
                what,
            });
        }
        Ok(c)
    }

    /// Where a streaming Exec runs: the running container's runtime, root and a scratch dir.
    pub fn exec_target(&self, key: &str) -> Result<crate::streaming::ExecTarget, ContainerError> {
        let c = self.running(key, "exec needs a running container")?;
        let record = c.snapshot();
        Ok(crate::streaming::ExecTarget {
            runtime: self.runtime(&record.runtime_handler)?.cli().clone(),
            container_id: c.id.clone(),
            scratch: self.dir(&c.id),
            shim: self.options.shim.clone(),
            task: self.task_runtime(&c),
        })
    }

    /// Where an Attach to a running container goes, with its config (stdin, tty).
    pub fn attach_target(
        &self,
        key: &str,
    ) -> Result<(crate::streaming::AttachTarget, ContainerConfig), ContainerError> {
        let c = self.running(key, "only a running container can be attached to")?;
        let config = c.snapshot().config;
        let task = self
            .task_runtime(&c)
            .map(|runtime| crate::streaming::TaskAttach {
                runtime,
                container_id: c.id.clone(),
                stdin_once: config.stdin_once,
            });
        let socket = self.dir(&c.id).join(crust_shim::attach::SOCKET);
        Ok((crate::streaming::AttachTarget { socket, task }, config))
    }

    /// ExecSync: runs `cmd` in the running container; `timeout_s` 0 = no timeout.
    pub async fn exec_sync(
        &self,
        key: &str,
        cmd: &[String],
        timeout_s: i64,
    ) -> Result<exec::ExecOutput, ContainerError> {
        validate::check_argv(cmd)?;
        let c = self.running(key, "exec needs a running container")?;
        let record = c.snapshot();
        let timeout = Duration::from_secs(timeout_s.max(0) as u64);
        let runtime = self.runtime(&record.runtime_handler)?;
        if let Some(done) = runtime.exec_sync(&c.id, cmd, timeout).await {
            return Ok(done?);
        }
        exec::exec_sync(runtime.cli(), &c.id, cmd, timeout, &self.dir(&c.id)).await
    }

    /// ReopenContainerLog: the shim reopens the log path (kubelet renamed the old file away);
    /// returns once the new file exists.
    pub async fn reopen_log(&self, key: &str) -> Result<(), ContainerError> {
        let c = self.running(key, "only a running container's log can be reopened")?;
        let record = c.snapshot();
        let Some(watch) = c.watch() else {
            return Ok(());
        };
        if self.task_runtime(&c).is_some() {
            if !super::task::signal_logger(&self.dir(&c.id)) {
                return Err(ContainerError::Shim(
                    "the container's task-io (its log writer) is not running".into(),
                ));
            }
        } else if let Some(shim) = watch.process() {
            shim.signal(libc::SIGUSR1)
                .map_err(io("signal the shim of", &self.dir(&c.id)))?;
        }
        if record.log_path.is_empty() {
            return Ok(());
        }
        let path = PathBuf::from(&record.log_path);
        for _ in 0..100 {
            if path.exists() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err(ContainerError::Shim(format!(
            "log {} was not reopened within 1 s",
            path.display()
        )))
    }

    /// UpdateContainerResources: applied by the runtime to a created or running container, and
    /// kept in the record.
    pub async fn update_resources(
        &self,
        key: &str,
        resources: cri_api::v1::LinuxContainerResources,
    ) -> Result<(), ContainerError> {
        let c = self.lookup(key)?;
        let _op = c.op.clone().lock_owned().await;
        let mut record = c.snapshot();
        if !record.state.may_run() {
            return Err(ContainerError::WrongState {
                id: c.id.clone(),
                state: format!("{:?}", record.state),
                what: "resources of a stopped container cannot change",
            });
        }
        record
            .config
            .linux
            .get_or_insert_with(Default::default)
            .resources = Some(resources);
        let mut json = super::spec::resources(&record.config);
        if let Some(map) = json.as_object_mut() {
            map.remove("devices");
        }
        let file = self.dir(&c.id).join("resources.json");
        std::fs::write(&file, json.to_string()).map_err(io("write", &file))?;
        self.runtime(&record.runtime_handler)?
            .update(&c.id, &file)
            .await?;
        c.change(|r| r.config.linux = record.config.linux.clone());
        self.persist(&c).await
    }
}
