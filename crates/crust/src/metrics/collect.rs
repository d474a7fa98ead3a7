//! Figures read at scrape time: pods and containers by state and running shims (from the
//! daemon's stores, through the source the daemon sets), and crustd's own process metrics from
//! /proc/self (the names Prometheus client libraries use).

use std::sync::OnceLock;

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};

/// What the stores hold now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateCounts {
    /// Pods by CRI state name (`SANDBOX_READY`, ...).
    pub pods: Vec<(&'static str, i64)>,
    /// Containers by CRI state name (`CONTAINER_RUNNING`, ...).
    pub containers: Vec<(&'static str, i64)>,
    /// Live crust-shim processes.
    pub shims: i64,
}

type Source = Box<dyn Fn() -> StateCounts + Send + Sync>;

static SOURCE: OnceLock<Source> = OnceLock::new();

/// Sets where pod, container and shim counts come from (once, by the daemon).
pub fn set_source(source: Source) {
    let _ = SOURCE.set(source);
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct State {
    state: &'static str,
}

/// The scrape-time collector registered with the registry.
#[derive(Debug)]
pub struct Scraped;

fn gauge(e: &mut DescriptorEncoder, name: &str, help: &str, v: i64) -> std::fmt::Result {
    ConstGauge::new(v).encode(e.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

fn by_state(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: &[(&'static str, i64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (state, n) in counts {
        let labels = State { state };
        ConstGauge::new(*n).encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scraped {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        if let Some(source) = SOURCE.get() {
            let counts = source();
            by_state(&mut e, "crust_pods", "Pod sandboxes by state", &counts.pods)?;
            by_state(
                &mut e,
                "crust_containers",
                "Containers by state",
                &counts.containers,
            )?;
            gauge(
                &mut e,
                "crust_shims_running",
                "Live crust-shim processes",
                counts.shims,
            )?;
        }
        let p = Process::read();
        let cpu = ConstCounter::new(p.cpu_seconds);
        cpu.encode(e.encode_descriptor(
            "process_cpu_seconds",
            "User and system CPU time of crustd",
            None,
            MetricType::Counter,
        )?)?;
        gauge(
            &mut e,
            "process_resident_memory_bytes",
            "Resident memory of crustd",
            p.rss_bytes,
        )?;
        gauge(
            &mut e,
            "process_open_fds",
            "Open file descriptors of crustd",
            p.open_fds,
        )?;
        gauge(&mut e, "process_threads", "Threads of crustd", p.threads)?;
        gauge(
            &mut e,
            "process_start_time_seconds",
            "Start of crustd since the Unix epoch",
            p.start_time_seconds,
        )?;
        Ok(())
    }
}

/// crustd's figures from /proc/self.
#[derive(Debug, Default)]
struct Process {
    cpu_seconds: f64,
    rss_bytes: i64,
    open_fds: i64,
    threads: i64,
    start_time_seconds: i64,
}

impl Process {
    fn read() -> Process {
        // SAFETY: sysconf has no preconditions.
        let (tick, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command's closing parenthesis, from field 3 (state) on.
        let fields: Vec<&str> = stat
            .rsplit_once(") ")
            .map_or(vec![], |(_, rest)| rest.split(' ').collect());
        let field = |n: usize| {
            fields
                .get(n - 3)
                .and_then(|v| v.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let boot = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| {
                    l.strip_prefix("btime ")
                        .and_then(|v| v.trim().parse::<i64>().ok())
                })
            })
            .unwrap_or(0);
        let tick = tick.max(1);
        Process {
            cpu_seconds: (field(14) + field(15)) as f64 / tick as f64,
            rss_bytes: field(24) * page.max(1),
            open_fds: std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as i64),
            threads: field(20),
            start_time_seconds: boot + field(22) / tick,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_figures_are_read() {
        let p = Process::read();
        assert!(p.rss_bytes > 1 << 20, "{p:?}");
        assert!(p.threads >= 1 && p.open_fds >= 3, "{p:?}");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            p.start_time_seconds <= now && p.start_time_seconds > now - 3600,
            "{p:?}"
        );
    }
}
