//! ListMetricDescriptors, ListPodSandboxMetrics and StreamPodSandboxMetrics (KEP-2371: what lets
//! kubelet serve `/metrics/cadvisor` without cAdvisor). The metrics carry cAdvisor's names and
//! meanings, from the same cgroup (v1 and v2) and netns readings as the stats RPCs: CPU, memory
//! (usage, working set, RSS, cache, swap, page faults), processes, writable-layer bytes, start
//! time and resource specs per container; per pod its cgroup totals and network counters per
//! interface. Values are integers (the CRI type): seconds are whole seconds.

use cri_api::v1::{
    ContainerMetrics, ListMetricDescriptorsRequest, ListMetricDescriptorsResponse,
    ListPodSandboxMetricsRequest, ListPodSandboxMetricsResponse, Metric, MetricDescriptor,
    MetricType, PodSandboxMetrics, StreamPodSandboxMetricsRequest, StreamPodSandboxMetricsResponse,
    UInt64Value,
};
use tonic::{Request, Response, Status};

use super::{batch, container_stats::blocking, CriService};
use crate::{
    container::{record::ContainerRecord, stats::network_usage, usage::Usage},
    sandbox::{NetworkMode, SandboxRecord},
};

/// The labels every metric has first: the cgroup's id, the runtime's name for it, its image.
const BASE: [&str; 3] = ["id", "name", "image"];

/// (name, help, extra label keys, type) of every metric crust reports.
const DESCRIPTORS: [(&str, &str, &[&str], MetricType); 24] = [
    (
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed in seconds.",
        &[],
        MetricType::Counter,
    ),
    (
        "container_memory_usage_bytes",
        "Current memory usage in bytes, including all memory regardless of when it was accessed",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_memory_working_set_bytes",
        "Current working set in bytes.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_memory_rss",
        "Size of RSS in bytes.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_memory_cache",
        "Number of bytes of page cache memory.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_memory_swap",
        "Container swap usage in bytes.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_memory_failures_total",
        "Cumulative count of memory allocation failures.",
        &["failure_type", "scope"],
        MetricType::Counter,
    ),
    (
        "container_processes",
        "Number of processes running inside the container.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_fs_usage_bytes",
        "Number of bytes that are consumed by the container on this filesystem.",
        &["device"],
        MetricType::Gauge,
    ),
    (
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_last_seen",
        "Last time a container was seen by the exporter",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_spec_memory_limit_bytes",
        "Memory limit for the container.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_spec_memory_swap_limit_bytes",
        "Memory swap limit for the container.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_spec_cpu_shares",
        "CPU share of the container.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_spec_cpu_quota",
        "CPU quota of the container.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_spec_cpu_period",
        "CPU period of the container.",
        &[],
        MetricType::Gauge,
    ),
    (
        "container_network_receive_bytes_total",
        "Cumulative count of bytes received",
        &["interface"],
        MetricType::Counter,
    ),
    (
        "container_network_receive_packets_total",
        "Cumulative count of packets received",
        &["interface"],
        MetricType::Counter,
    ),
    (
        "container_network_receive_errors_total",
        "Cumulative count of errors encountered while receiving",
        &["interface"],
        MetricType::Counter,
    ),
    (
        "container_network_receive_packets_dropped_total",
        "Cumulative count of packets dropped while receiving",
        &["interface"],
        MetricType::Counter,
    ),
    (
        "container_network_transmit_bytes_total",
        "Cumulative count of bytes transmitted",
        &["interface"],
        MetricType::Counter,
    ),
    (
        "container_network_transmit_packets_total",
        "Cumulative count of packets transmitted",
        &["interface"],
        MetricType::Counter,
    ),
    (
        "container_network_transmit_errors_total",
        "Cumulative count of errors encountered while transmitting",
        &["interface"],
        MetricType::Counter,
    ),
    (
        "container_network_transmit_packets_dropped_total",
        "Cumulative count of packets dropped while transmitting",
        &["interface"],
        MetricType::Counter,
    ),
];

/// Every descriptor: base labels first, then the metric's own.
pub fn descriptors() -> Vec<MetricDescriptor> {
    DESCRIPTORS
        .iter()
        .map(|(name, help, extra, _)| MetricDescriptor {
            name: name.to_string(),
            help: help.to_string(),
            label_keys: BASE
                .iter()
                .chain(extra.iter())
                .map(|s| s.to_string())
                .collect(),
        })
        .collect()
}

/// Metrics of one cgroup (or pod), labelled by its base label values.
struct Sink<'a> {
    base: [&'a str; 3],
    out: Vec<Metric>,
}

impl Sink<'_> {
    fn put(&mut self, name: &str, extra: &[&str], value: Option<u64>) {
        let Some(value) = value else { return };
        let kind = DESCRIPTORS
            .iter()
            .find(|d| d.0 == name)
            .map_or(MetricType::Gauge, |d| d.3);
        self.out.push(Metric {
            name: name.to_string(),
            timestamp: 0,
            metric_type: kind as i32,
            label_values: self
                .base
                .iter()
                .chain(extra)
                .map(|s| s.to_string())
                .collect(),
            value: Some(UInt64Value { value }),
        });
    }

    /// CPU, memory and process metrics of a usage sample.
    fn usage(&mut self, u: &Usage) {
        let c = &u.cgroup;
        self.put(
            "container_cpu_usage_seconds_total",
            &[],
            c.cpu_ns.map(|n| n / 1_000_000_000),
        );
        self.put("container_memory_usage_bytes", &[], c.memory_usage);
        self.put("container_memory_working_set_bytes", &[], c.working_set);
        self.put("container_memory_rss", &[], c.rss);
        self.put("container_memory_cache", &[], c.cache);
        self.put("container_memory_swap", &[], c.swap);
        let failures = "container_memory_failures_total";
        self.put(failures, &["pgfault", "container"], c.page_faults);
        self.put(failures, &["pgmajfault", "container"], c.major_page_faults);
        self.put("container_processes", &[], c.processes);
        self.put(
            "container_last_seen",
            &[],
            u64::try_from(u.timestamp_ns / 1_000_000_000).ok(),
        );
    }
}

fn container_metrics(svc: &CriService, r: &ContainerRecord) -> ContainerMetrics {
    let u = svc.containers.container_usage(r);
    let mut sink = Sink {
        base: [&r.id, &r.name, &r.image],
        out: Vec::new(),
    };
    sink.usage(&u);
    if let Some((bytes, _)) = u.writable {
        let device = svc.config.root.join("containers").display().to_string();
        sink.put("container_fs_usage_bytes", &[&device], Some(bytes));
    }
    let started = u64::try_from(r.started_at_ns / 1_000_000_000)
        .ok()
        .filter(|s| *s > 0);
    sink.put("container_start_time_seconds", &[], started);
    if let Some(res) = r.config.linux.as_ref().and_then(|l| l.resources.as_ref()) {
        let positive = |v: i64| u64::try_from(v).ok().filter(|v| *v > 0);
        sink.put(
            "container_spec_memory_limit_bytes",
            &[],
            positive(res.memory_limit_in_bytes),
        );
        sink.put(
            "container_spec_memory_swap_limit_bytes",
            &[],
            positive(res.memory_swap_limit_in_bytes),
        );
        sink.put("container_spec_cpu_shares", &[], positive(res.cpu_shares));
        sink.put("container_spec_cpu_quota", &[], positive(res.cpu_quota));
        sink.put("container_spec_cpu_period", &[], positive(res.cpu_period));
    }
    ContainerMetrics {
        container_id: r.id.clone(),
        metrics: sink.out,
    }
}

/// The network counters of a READY pod-network pod, per interface (not `lo`).
fn network(sink: &mut Sink<'_>, pod: &SandboxRecord) {
    let Some(netns) = pod.netns.as_deref() else {
        return;
    };
    if pod.network_mode != NetworkMode::Cni || !pod.state.is_ready() {
        return;
    }
    for i in network_usage(netns) {
        let name = [i.name.as_str()];
        let put = |sink: &mut Sink<'_>, metric: &str, v: u64| sink.put(metric, &name, Some(v));
        put(sink, "container_network_receive_bytes_total", i.rx_bytes);
        put(
            sink,
            "container_network_receive_packets_total",
            i.rx_packets,
        );
        put(sink, "container_network_receive_errors_total", i.rx_errors);
        put(
            sink,
            "container_network_receive_packets_dropped_total",
            i.rx_dropped,
        );
        put(sink, "container_network_transmit_bytes_total", i.tx_bytes);
        put(
            sink,
            "container_network_transmit_packets_total",
            i.tx_packets,
        );
        put(sink, "container_network_transmit_errors_total", i.tx_errors);
        put(
            sink,
            "container_network_transmit_packets_dropped_total",
            i.tx_dropped,
        );
    }
}

/// The metrics of one pod: its cgroup totals and network, and each container's. Blocking reads.
fn pod_metrics(svc: &CriService, pod: &SandboxRecord) -> PodSandboxMetrics {
    let u = svc.containers.pod_usage(pod);
    let image = svc.config.sandbox_image.clone();
    let mut sink = Sink {
        base: [&pod.id, &pod.name, &image],
        out: Vec::new(),
    };
    sink.usage(&u);
    network(&mut sink, pod);
    PodSandboxMetrics {
        pod_sandbox_id: pod.id.clone(),
        metrics: sink.out,
        container_metrics: svc
            .containers
            .of_pod(&pod.id)
            .iter()
            .map(|c| container_metrics(svc, &c.snapshot()))
            .collect(),
    }
}

async fn items(svc: &CriService) -> Result<Vec<PodSandboxMetrics>, Status> {
    let pods: Vec<SandboxRecord> = svc
        .sandboxes
        .store()
        .all()
        .iter()
        .map(|s| s.snapshot())
        .filter(|p| p.state.is_ready())
        .collect();
    // Gathered live, so every timestamp stays 0 (as the CRI asks).
    blocking(svc, move |svc| {
        pods.iter().map(|p| pod_metrics(svc, p)).collect()
    })
    .await
}

pub(super) async fn list_descriptors(
    _req: Request<ListMetricDescriptorsRequest>,
) -> Result<Response<ListMetricDescriptorsResponse>, Status> {
    Ok(Response::new(ListMetricDescriptorsResponse {
        descriptors: descriptors(),
    }))
}

pub(super) async fn list(
    svc: &CriService,
    _req: Request<ListPodSandboxMetricsRequest>,
) -> Result<Response<ListPodSandboxMetricsResponse>, Status> {
    Ok(Response::new(ListPodSandboxMetricsResponse {
        pod_metrics: items(svc).await?,
    }))
}

pub(super) async fn stream(
    svc: &CriService,
    _req: Request<StreamPodSandboxMetricsRequest>,
) -> Result<Response<batch::BatchStream<StreamPodSandboxMetricsResponse>>, Status> {
    let metrics = items(svc).await?;
    Ok(Response::new(batch::stream(
        metrics,
        |pod_sandbox_metrics| StreamPodSandboxMetricsResponse {
            pod_sandbox_metrics,
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_are_unique_and_typed_like_cadvisor() {
        let d = descriptors();
        let mut names: Vec<&str> = d.iter().map(|d| d.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), d.len());
        for (name, _, _, kind) in DESCRIPTORS {
            let counter = name.ends_with("_total");
            assert_eq!(kind == MetricType::Counter, counter, "{name}");
        }
        let net = d
            .iter()
            .find(|d| d.name == "container_network_receive_bytes_total")
            .unwrap();
        assert_eq!(net.label_keys, ["id", "name", "image", "interface"]);
    }

    #[test]
    fn a_metric_has_a_value_per_label_key() {
        let mut sink = Sink {
            base: ["i", "n", "img"],
            out: Vec::new(),
        };
        sink.put(
            "container_memory_failures_total",
            &["pgfault", "container"],
            Some(3),
        );
        sink.put("container_memory_rss", &[], None);
        assert_eq!(sink.out.len(), 1, "absent readings are left out, not zero");
        let m = &sink.out[0];
        assert_eq!(m.label_values, ["i", "n", "img", "pgfault", "container"]);
        assert_eq!(m.metric_type, MetricType::Counter as i32);
    }
}
