//! Prometheus metrics (prometheus-client), served on `[metrics] address` when set: per CRI RPC
//! a counter by gRPC code and a latency histogram, RunPodSandbox per-step durations (so a stall
//! shows at its step), CNI plugin calls by plugin, command and result, image pull bytes and
//! durations, rollbacks and failed undos, and at scrape time pods and containers by state,
//! running shims and crustd's own process figures ([`collect`]). Labels take values from fixed
//! sets or the operator's configuration (RPC names, codes, steps, plugin types): never pod ids.
//!
//! Recording goes to one process-wide [`Metrics`] ([`global`]), cheap whether or not anything
//! scrapes it.

pub mod collect;
pub mod server;

use std::{
    sync::{Mutex, OnceLock},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcCode {
    method: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Method {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Step {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginCall {
    plugin: String,
    command: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.5 ms to ~16 s in doublings: RPCs and steps on this scale.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 50 ms to ~27 min: image pulls.
fn pull_latency() -> Histogram {
    Histogram::new(exponential_buckets(0.05, 2.0, 16))
}

/// Everything crust records.
pub struct Metrics {
    registry: Mutex<Registry>,
    rpc_requests: Family<RpcCode, Counter>,
    rpc_seconds: Histograms<Method>,
    run_step_seconds: Histograms<Step>,
    cni_seconds: Histograms<PluginCall>,
    pull_bytes: Counter,
    pull_seconds: Histograms<Outcome>,
    rollbacks: Counter,
    undo_failures: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn ok_or_error(ok: bool) -> &'static str {
    if ok {
        "success"
    } else {
        "error"
    }
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Mutex::new(Registry::default()),
            rpc_requests: Family::default(),
            rpc_seconds: Family::new_with_constructor(latency),
            run_step_seconds: Family::new_with_constructor(latency),
            cni_seconds: Family::new_with_constructor(latency),
            pull_bytes: Counter::default(),
            pull_seconds: Family::new_with_constructor(pull_latency),
            rollbacks: Counter::default(),
            undo_failures: Counter::default(),
        };
        m.register();
        m
    }

    fn register(&self) {
        let mut r = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        r.register(
            "crust_grpc_requests",
            "CRI calls by method and gRPC code",
            self.rpc_requests.clone(),
        );
        r.register(
            "crust_grpc_request_duration_seconds",
            "CRI call latency by method",
            self.rpc_seconds.clone(),
        );
        r.register(
            "crust_sandbox_run_step_duration_seconds",
            "RunPodSandbox steps: persist (write-ahead record), netns, network (CNI ADD), files, create, start, finish (ready record)",
            self.run_step_seconds.clone(),
        );
        r.register(
            "crust_cni_plugin_duration_seconds",
            "CNI plugin executions by plugin type, command and result",
            self.cni_seconds.clone(),
        );
        r.register(
            "crust_image_pull_bytes",
            "Blob bytes downloaded from registries",
            self.pull_bytes.clone(),
        );
        r.register(
            "crust_image_pull_duration_seconds",
            "PullImage duration by result",
            self.pull_seconds.clone(),
        );
        r.register(
            "crust_rollbacks",
            "Failed operations undone by their undo stack",
            self.rollbacks.clone(),
        );
        r.register(
            "crust_rollback_undo_failures",
            "Undo steps that failed (what they held stays for Stop/Remove)",
            self.undo_failures.clone(),
        );
        r.register_collector(Box::new(collect::Scraped));
    }

    /// One CRI call ended with `code` (`Ok` for success) after `elapsed`.
    pub fn rpc(&self, method: &'static str, code: tonic::Code, elapsed: Duration) {
        let code = format!("{code:?}");
        self.rpc_requests
            .get_or_create(&RpcCode { method, code })
            .inc();
        self.rpc_seconds
            .get_or_create(&Method { method })
            .observe(elapsed.as_secs_f64());
    }

    /// One RunPodSandbox step (its key, e.g. `netns`) took `elapsed`.
    pub fn run_step(&self, step: &'static str, elapsed: Duration) {
        self.run_step_seconds
            .get_or_create(&Step { step })
            .observe(elapsed.as_secs_f64());
    }

    /// One CNI plugin execution.
    pub fn cni(&self, plugin: &str, command: &'static str, ok: bool, elapsed: Duration) {
        let labels = PluginCall {
            plugin: plugin.to_string(),
            command,
            result: ok_or_error(ok),
        };
        self.cni_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// `bytes` of one blob arrived from a registry.
    pub fn pulled_bytes(&self, bytes: u64) {
        self.pull_bytes.inc_by(bytes);
    }

    /// One PullImage ended.
    pub fn pull(&self, ok: bool, elapsed: Duration) {
        self.pull_seconds
            .get_or_create(&Outcome {
                result: ok_or_error(ok),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// An undo stack ran after a failure; `failed` of its steps could not be undone.
    pub fn rolled_back(&self, failed: usize) {
        self.rollbacks.inc();
        self.undo_failures.inc_by(failed as u64);
    }

    /// The text exposition (OpenMetrics) of everything, scrape-time figures included.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
            tracing::warn!("metrics could not be encoded");
        }
        out
    }
}

/// The classic Prometheus text format (0.0.4) of an OpenMetrics exposition, for scrapers and
/// tools that do not ask for OpenMetrics (`promtool check metrics`, curl): counters are named
/// with their `_total` in HELP and TYPE, and `# UNIT` / `# EOF` go.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            (counters.contains(name) && !name.ends_with("_total"))
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_show_in_the_exposition_with_bounded_labels() {
        let m = Metrics::new();
        m.rpc("RunPodSandbox", tonic::Code::Ok, Duration::from_millis(40));
        m.rpc(
            "RunPodSandbox",
            tonic::Code::InvalidArgument,
            Duration::from_millis(1),
        );
        m.run_step("netns", Duration::from_millis(3));
        m.cni("bridge", "ADD", true, Duration::from_millis(20));
        m.pulled_bytes(1234);
        m.pull(false, Duration::from_secs(1));
        m.rolled_back(2);
        let text = m.render();
        for line in [
            r#"crust_grpc_requests_total{method="RunPodSandbox",code="Ok"} 1"#,
            r#"crust_grpc_requests_total{method="RunPodSandbox",code="InvalidArgument"} 1"#,
            r#"crust_sandbox_run_step_duration_seconds_count{step="netns"} 1"#,
            r#"crust_cni_plugin_duration_seconds_count{plugin="bridge",command="ADD",result="success"} 1"#,
            "crust_image_pull_bytes_total 1234",
            r#"crust_image_pull_duration_seconds_count{result="error"} 1"#,
            "crust_rollbacks_total 1",
            "crust_rollback_undo_failures_total 2",
            "process_resident_memory_bytes ",
            "# EOF",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
        let classic = to_text_format(&text);
        assert!(
            classic.contains("# TYPE crust_rollbacks_total counter\n"),
            "{classic}"
        );
        assert!(
            classic.contains("# HELP crust_grpc_requests_total CRI calls"),
            "{classic}"
        );
        assert!(
            classic.contains("# TYPE process_open_fds gauge\n"),
            "{classic}"
        );
        assert!(!classic.contains("# EOF"), "{classic}");
    }
}
