//! The gRPC surface: [`CriService`] implements `runtime.v1.RuntimeService` and
//! `runtime.v1.ImageService` by dispatching each RPC to its own file (validate, convert, call a
//! manager, convert back). RPCs not built yet answer UNIMPLEMENTED naming the RPC.

pub mod admin_import;
mod attach;
mod batch;
mod container_create;
mod container_list;
mod container_remove;
mod container_reopen_log;
mod container_start;
mod container_stats;
mod container_status;
mod container_stop;
mod container_update;
mod events;
mod exec;
mod exec_sync;
mod image_fs_info;
mod image_list;
mod image_pull;
mod image_remove;
mod image_status;
pub mod instrument;
mod pod_metrics;
mod pod_stats;
mod port_forward;
mod runtime_config;
mod runtime_status;
mod sandbox_list;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_status;
mod sandbox_stop;
mod sandbox_update_resources;
mod version;

use std::sync::Arc;

use cri_api::v1::{image_service_server::ImageService, runtime_service_server::RuntimeService, *};
use tonic::{Request, Response, Status};

pub use sandbox_list::matches as pod_filter_matches;
pub use version::RUNTIME_API_VERSION;

use crate::{
    config::Config,
    container::ContainerManager,
    events::EventBus,
    image::{pull::Puller, store::ImageStore},
    sandbox::SandboxManager,
};

/// The CRI service state shared by all RPCs (cheap to clone: handles only).
#[derive(Debug, Clone)]
pub struct CriService {
    pub(crate) sandboxes: Arc<SandboxManager>,
    pub(crate) events: EventBus,
    pub(crate) config: Arc<Config>,
    pub(crate) images: Arc<ImageStore>,
    pub(crate) puller: Arc<Puller>,
    pub(crate) containers: Arc<ContainerManager>,
    pub(crate) streaming: Arc<crate::streaming::Streaming>,
}

impl CriService {
    /// A service over the given manager, bus and image puller (with its store).
    pub fn new(
        sandboxes: Arc<SandboxManager>,
        events: EventBus,
        config: Arc<Config>,
        puller: Arc<Puller>,
        containers: Arc<ContainerManager>,
        streaming: Arc<crate::streaming::Streaming>,
    ) -> CriService {
        CriService {
            streaming,
            sandboxes,
            events,
            config,
            images: Arc::clone(puller.store()),
            puller,
            containers,
        }
    }
}

#[tonic::async_trait]
impl RuntimeService for CriService {
    type GetContainerEventsStream = events::EventStream;
    type StreamPodSandboxesStream = batch::BatchStream<StreamPodSandboxesResponse>;
    type StreamContainersStream = batch::BatchStream<StreamContainersResponse>;
    type StreamContainerStatsStream = batch::BatchStream<StreamContainerStatsResponse>;
    type StreamPodSandboxStatsStream = batch::BatchStream<StreamPodSandboxStatsResponse>;
    type StreamPodSandboxMetricsStream = batch::BatchStream<StreamPodSandboxMetricsResponse>;

    async fn stream_pod_sandboxes(
        &self,
        req: Request<StreamPodSandboxesRequest>,
    ) -> Result<Response<Self::StreamPodSandboxesStream>, Status> {
        instrument::call("StreamPodSandboxes", sandbox_list::stream(self, req)).await
    }

    async fn stream_containers(
        &self,
        req: Request<StreamContainersRequest>,
    ) -> Result<Response<Self::StreamContainersStream>, Status> {
        instrument::call("StreamContainers", container_list::stream(self, req)).await
    }

    async fn stream_container_stats(
        &self,
        req: Request<StreamContainerStatsRequest>,
    ) -> Result<Response<Self::StreamContainerStatsStream>, Status> {
        instrument::call("StreamContainerStats", container_stats::stream(self, req)).await
    }

    async fn stream_pod_sandbox_stats(
        &self,
        req: Request<StreamPodSandboxStatsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxStatsStream>, Status> {
        instrument::call("StreamPodSandboxStats", pod_stats::stream(self, req)).await
    }

    async fn stream_pod_sandbox_metrics(
        &self,
        req: Request<StreamPodSandboxMetricsRequest>,
    ) -> Result<Response<Self::StreamPodSandboxMetricsStream>, Status> {
        instrument::call("StreamPodSandboxMetrics", pod_metrics::stream(self, req)).await
    }

    async fn version(
        &self,
        req: Request<VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        instrument::call("Version", version::handle(req)).await
    }

    async fn run_pod_sandbox(
        &self,
        req: Request<RunPodSandboxRequest>,
    ) -> Result<Response<RunPodSandboxResponse>, Status> {
        instrument::call("RunPodSandbox", sandbox_run::handle(self, req)).await
    }

    async fn stop_pod_sandbox(
        &self,
        req: Request<StopPodSandboxRequest>,
    ) -> Result<Response<StopPodSandboxResponse>, Status> {
        instrument::call("StopPodSandbox", sandbox_stop::handle(self, req)).await
    }

    async fn remove_pod_sandbox(
        &self,
        req: Request<RemovePodSandboxRequest>,
    ) -> Result<Response<RemovePodSandboxResponse>, Status> {
        instrument::call("RemovePodSandbox", sandbox_remove::handle(self, req)).await
    }

    async fn pod_sandbox_status(
        &self,
        req: Request<PodSandboxStatusRequest>,
    ) -> Result<Response<PodSandboxStatusResponse>, Status> {
        instrument::call("PodSandboxStatus", sandbox_status::handle(self, req)).await
    }

    async fn list_pod_sandbox(
        &self,
        req: Request<ListPodSandboxRequest>,
    ) -> Result<Response<ListPodSandboxResponse>, Status> {
        instrument::call("ListPodSandbox", sandbox_list::handle(self, req)).await
    }

    async fn create_container(
        &self,
        req: Request<CreateContainerRequest>,
    ) -> Result<Response<CreateContainerResponse>, Status> {
        container_create::handle(self, req).await
    }

    async fn start_container(
        &self,
        req: Request<StartContainerRequest>,
    ) -> Result<Response<StartContainerResponse>, Status> {
        container_start::handle(self, req).await
    }

    async fn stop_container(
        &self,
        req: Request<StopContainerRequest>,
    ) -> Result<Response<StopContainerResponse>, Status> {
        container_stop::handle(self, req).await
    }

    async fn remove_container(
        &self,
        req: Request<RemoveContainerRequest>,
    ) -> Result<Response<RemoveContainerResponse>, Status> {
        container_remove::handle(self, req).await
    }

    async fn list_containers(
        &self,
        req: Request<ListContainersRequest>,
    ) -> Result<Response<ListContainersResponse>, Status> {
        container_list::handle(self, req).await
    }

    async fn container_status(
        &self,
        req: Request<ContainerStatusRequest>,
    ) -> Result<Response<ContainerStatusResponse>, Status> {
        container_status::handle(self, req).await
    }

    async fn update_container_resources(
        &self,
        req: Request<UpdateContainerResourcesRequest>,
    ) -> Result<Response<UpdateContainerResourcesResponse>, Status> {
        container_update::handle(self, req).await
    }

    async fn reopen_container_log(
        &self,
        req: Request<ReopenContainerLogRequest>,
    ) -> Result<Response<ReopenContainerLogResponse>, Status> {
        container_reopen_log::handle(self, req).await
    }

    async fn exec_sync(
        &self,
        req: Request<ExecSyncRequest>,
    ) -> Result<Response<ExecSyncResponse>, Status> {
        exec_sync::handle(self, req).await
    }

    async fn exec(&self, req: Request<ExecRequest>) -> Result<Response<ExecResponse>, Status> {
        instrument::call("Exec", exec::handle(self, req)).await
    }

    async fn attach(
        &self,
        req: Request<AttachRequest>,
    ) -> Result<Response<AttachResponse>, Status> {
        instrument::call("Attach", attach::handle(self, req)).await
    }

    async fn port_forward(
        &self,
        req: Request<PortForwardRequest>,
    ) -> Result<Response<PortForwardResponse>, Status> {
        instrument::call("PortForward", port_forward::handle(self, req)).await
    }

    async fn container_stats(
        &self,
        req: Request<ContainerStatsRequest>,
    ) -> Result<Response<ContainerStatsResponse>, Status> {
        container_stats::one(self, req).await
    }

    async fn list_container_stats(
        &self,
        req: Request<ListContainerStatsRequest>,
    ) -> Result<Response<ListContainerStatsResponse>, Status> {
        container_stats::list(self, req).await
    }

    async fn pod_sandbox_stats(
        &self,
        req: Request<PodSandboxStatsRequest>,
    ) -> Result<Response<PodSandboxStatsResponse>, Status> {
        pod_stats::one(self, req).await
    }

    async fn list_pod_sandbox_stats(
        &self,
        req: Request<ListPodSandboxStatsRequest>,
    ) -> Result<Response<ListPodSandboxStatsResponse>, Status> {
        pod_stats::list(self, req).await
    }

    async fn update_runtime_config(
        &self,
        req: Request<UpdateRuntimeConfigRequest>,
    ) -> Result<Response<UpdateRuntimeConfigResponse>, Status> {
        instrument::call("UpdateRuntimeConfig", runtime_config::update(self, req)).await
    }

    async fn status(
        &self,
        req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        instrument::call("Status", runtime_status::handle(self, req)).await
    }

    async fn checkpoint_container(
        &self,
        _req: Request<CheckpointContainerRequest>,
    ) -> Result<Response<CheckpointContainerResponse>, Status> {
        // Checkpointing needs CRIU; Debian 12's criu 3.17 cannot dump on the 6.x kernels crust is
        // tested on, so crust offers no checkpoint it could not restore.
        Err(Status::unimplemented(
            "crust does not implement CheckpointContainer: it needs CRIU, and Debian 12's criu 3.17 cannot dump processes on this node's kernel",
        ))
    }

    async fn get_container_events(
        &self,
        req: Request<GetEventsRequest>,
    ) -> Result<Response<Self::GetContainerEventsStream>, Status> {
        instrument::call("GetContainerEvents", events::handle(self, req)).await
    }

    async fn list_metric_descriptors(
        &self,
        req: Request<ListMetricDescriptorsRequest>,
    ) -> Result<Response<ListMetricDescriptorsResponse>, Status> {
        instrument::call("ListMetricDescriptors", pod_metrics::list_descriptors(req)).await
    }

    async fn list_pod_sandbox_metrics(
        &self,
        req: Request<ListPodSandboxMetricsRequest>,
    ) -> Result<Response<ListPodSandboxMetricsResponse>, Status> {
        instrument::call("ListPodSandboxMetrics", pod_metrics::list(self, req)).await
    }

    async fn runtime_config(
        &self,
        req: Request<RuntimeConfigRequest>,
    ) -> Result<Response<RuntimeConfigResponse>, Status> {
        instrument::call("RuntimeConfig", runtime_config::get(req)).await
    }

    async fn update_pod_sandbox_resources(
        &self,
        req: Request<UpdatePodSandboxResourcesRequest>,
    ) -> Result<Response<UpdatePodSandboxResourcesResponse>, Status> {
        instrument::call(
            "UpdatePodSandboxResources",
            sandbox_update_resources::handle(self, req),
        )
        .await
    }
}

#[tonic::async_trait]
impl ImageService for CriService {
    type StreamImagesStream = batch::BatchStream<StreamImagesResponse>;

    async fn stream_images(
        &self,
        req: Request<StreamImagesRequest>,
    ) -> Result<Response<Self::StreamImagesStream>, Status> {
        instrument::call("StreamImages", image_list::stream(self, req)).await
    }

    async fn list_images(
        &self,
        req: Request<ListImagesRequest>,
    ) -> Result<Response<ListImagesResponse>, Status> {
        instrument::call("ListImages", image_list::handle(self, req)).await
    }

    async fn image_status(
        &self,
        req: Request<ImageStatusRequest>,
    ) -> Result<Response<ImageStatusResponse>, Status> {
        instrument::call("ImageStatus", image_status::handle(self, req)).await
    }

    async fn pull_image(
        &self,
        req: Request<PullImageRequest>,
    ) -> Result<Response<PullImageResponse>, Status> {
        image_pull::handle(self, req).await
    }

    async fn remove_image(
        &self,
        req: Request<RemoveImageRequest>,
    ) -> Result<Response<RemoveImageResponse>, Status> {
        instrument::call("RemoveImage", image_remove::handle(self, req)).await
    }

    async fn image_fs_info(
        &self,
        req: Request<ImageFsInfoRequest>,
    ) -> Result<Response<ImageFsInfoResponse>, Status> {
        instrument::call("ImageFsInfo", image_fs_info::handle(self, req)).await
    }
}
