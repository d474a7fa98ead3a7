//! Resource usage from cgroups (v1, as on this host, and v2), for ContainerStats and
//! PodSandboxStats: CPU time, memory (usage, working set = usage - inactive file, RSS, page
//! faults) and process count; network counters of a pod from its netns (`net/dev` read inside it).

use std::{collections::BTreeMap, path::Path};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// One cgroup's counters; `None` where the file is missing (e.g. a gone cgroup).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CgroupUsage {
    pub cpu_ns: Option<u64>,
    pub memory_usage: Option<u64>,
    pub working_set: Option<u64>,
    pub rss: Option<u64>,
    pub page_faults: Option<u64>,
    pub major_page_faults: Option<u64>,
    pub processes: Option<u64>,
    /// Page cache (v1 `total_cache`, v2 `file`).
    pub cache: Option<u64>,
    /// Swap in use and its limit (`None`: no swap accounting / unlimited).
    pub swap: Option<u64>,
    pub swap_limit: Option<u64>,
    /// PSI (cgroup v2 only).
    pub pressure: Option<super::pressure::Pressure>,
}

impl CgroupUsage {
    /// Field-wise sum (a pod: its pause plus its containers).
    pub fn plus(self, other: CgroupUsage) -> CgroupUsage {
        let sum = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        CgroupUsage {
            cpu_ns: sum(self.cpu_ns, other.cpu_ns),
            memory_usage: sum(self.memory_usage, other.memory_usage),
            working_set: sum(self.working_set, other.working_set),
            rss: sum(self.rss, other.rss),
            page_faults: sum(self.page_faults, other.page_faults),
            major_page_faults: sum(self.major_page_faults, other.major_page_faults),
            processes: sum(self.processes, other.processes),
            cache: sum(self.cache, other.cache),
            swap: sum(self.swap, other.swap),
            swap_limit: None,
            // Stall times of separate cgroups do not add up; a pod's comes from its own cgroup.
            pressure: None,
        }
    }
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn key_values(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// True on a unified (v2-only) hierarchy.
pub fn is_v2() -> bool {
    Path::new(CGROUP_ROOT).join("cgroup.controllers").is_file()
}

/// The usage of the cgroup at `cgroups_path` (cgroupfs path, e.g. `/crust/<id>`).
pub fn cgroup_usage(cgroups_path: &str) -> CgroupUsage {
    let rel = cgroups_path.trim_start_matches('/');
    if is_v2() {
        usage_v2(&Path::new(CGROUP_ROOT).join(rel))
    } else {
        usage_v1(Path::new(CGROUP_ROOT), rel)
    }
}

fn usage_v1(root: &Path, rel: &str) -> CgroupUsage {
    let memory = root.join("memory").join(rel);
    let stat = key_values(&memory.join("memory.stat"));
    let usage = read_u64(&memory.join("memory.usage_in_bytes"));
    let inactive = stat.get("total_inactive_file").copied().unwrap_or(0);
    CgroupUsage {
        cpu_ns: read_u64(&root.join("cpuacct").join(rel).join("cpuacct.usage")),
        memory_usage: usage,
        working_set: usage.map(|u| u.saturating_sub(inactive)),
        rss: stat.get("total_rss").copied(),
        page_faults: stat.get("total_pgfault").copied(),
        major_page_faults: stat.get("total_pgmajfault").copied(),
        processes: read_u64(&root.join("pids").join(rel).join("pids.current")),
        cache: stat.get("total_cache").copied(),
        swap: super::pressure::swap_v1(&memory).0,
        swap_limit: super::pressure::swap_v1(&memory).1,
        pressure: None,
    }
}

fn usage_v2(dir: &Path) -> CgroupUsage {
    let cpu = key_values(&dir.join("cpu.stat"));
    let stat = key_values(&dir.join("memory.stat"));
    let usage = read_u64(&dir.join("memory.current"));
    let inactive = stat.get("inactive_file").copied().unwrap_or(0);
    CgroupUsage {
        cpu_ns: cpu.get("usage_usec").map(|u| u * 1000),
        memory_usage: usage,
        working_set: usage.map(|u| u.saturating_sub(inactive)),
        rss: stat.get("anon").copied(),
        page_faults: stat.get("pgfault").copied(),
        major_page_faults: stat.get("pgmajfault").copied(),
        processes: read_u64(&dir.join("pids.current")),
        cache: stat.get("file").copied(),
        swap: super::pressure::swap_v2(dir).0,
        swap_limit: super::pressure::swap_v2(dir).1,
        pressure: Some(super::pressure::read_v2(dir)),
    }
}

/// The PSI of the cgroup at `cgroups_path` (v2 only; `None` on v1).
pub fn pressure(cgroups_path: &str) -> Option<super::pressure::Pressure> {
    is_v2().then(|| {
        super::pressure::read_v2(&Path::new(CGROUP_ROOT).join(cgroups_path.trim_start_matches('/')))
    })
}

/// True when the kernel's OOM killer killed a process of the cgroup.
pub fn oom_killed(cgroups_path: &str) -> bool {
    let rel = cgroups_path.trim_start_matches('/');
    let (file, key) = if is_v2() {
        (
            Path::new(CGROUP_ROOT).join(rel).join("memory.events"),
            "oom_kill",
        )
    } else {
        (
            Path::new(CGROUP_ROOT)
                .join("memory")
                .join(rel)
                .join("memory.oom_control"),
            "oom_kill",
        )
    };
    key_values(&file).get(key).is_some_and(|n| *n > 0)
}

/// Counters of one network interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfaceUsage {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// The interfaces (but `lo`) of the network namespace pinned at `netns`, read on a short-lived
/// thread that enters it (no process need be in it: a pinned sandbox has none). Call from a
/// blocking context. Empty when the namespace cannot be entered.
pub fn network_usage(netns: &std::path::Path) -> Vec<InterfaceUsage> {
    let netns = netns.to_path_buf();
    let read = move || -> std::io::Result<String> {
        let ns = std::fs::File::open(&netns)?;
        nix::sched::setns(
            std::os::fd::AsFd::as_fd(&ns),
            nix::sched::CloneFlags::CLONE_NEWNET,
        )?;
        std::fs::read_to_string("/proc/thread-self/net/dev")
    };
    let text = std::thread::Builder::new()
        .name("crust-netstat".into())
        .spawn(read)
        .ok()
        .and_then(|t| t.join().ok())
        .and_then(Result::ok)
        .unwrap_or_default();
    parse_net_dev(&text)
}

fn parse_net_dev(text: &str) -> Vec<InterfaceUsage> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.len() >= 11 && name.trim() != "lo").then(|| InterfaceUsage {
                name: name.trim().to_string(),
                rx_bytes: f[0],
                rx_packets: f[1],
                rx_errors: f[2],
                rx_dropped: f[3],
                tx_bytes: f[8],
                tx_packets: f[9],
                tx_errors: f[10],
                tx_dropped: f[11],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  eth0:    2000      20    3    0    0     0          0         0     4000      40    5    0    0     0       0          0\n";
        let u = parse_net_dev(text);
        assert_eq!(
            u,
            [InterfaceUsage {
                name: "eth0".into(),
                rx_bytes: 2000,
                rx_packets: 20,
                rx_errors: 3,
                rx_dropped: 0,
                tx_bytes: 4000,
                tx_packets: 40,
                tx_errors: 5,
                tx_dropped: 0,
            }]
        );
    }

    #[test]
    fn v2_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("cpu.stat"), "usage_usec 250\nuser_usec 200\n").unwrap();
        std::fs::write(t.path().join("memory.current"), "4096\n").unwrap();
        std::fs::write(
            t.path().join("memory.stat"),
            "anon 1000\ninactive_file 96\npgfault 9\npgmajfault 2\n",
        )
        .unwrap();
        std::fs::write(t.path().join("pids.current"), "3\n").unwrap();
        let u = usage_v2(t.path());
        assert_eq!(u.cpu_ns, Some(250_000));
        assert_eq!(
            (u.memory_usage, u.working_set, u.rss),
            (Some(4096), Some(4000), Some(1000))
        );
        assert_eq!(
            (u.page_faults, u.major_page_faults, u.processes),
            (Some(9), Some(2), Some(3))
        );
    }

    #[test]
    fn v1_files() {
        let t = tempfile::tempdir().unwrap();
        let mem = t.path().join("memory/p/c");
        std::fs::create_dir_all(&mem).unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(
            mem.join("memory.stat"),
            "total_inactive_file 300\ntotal_rss 500\ntotal_pgfault 7\ntotal_pgmajfault 1\n",
        )
        .unwrap();
        let cpu = t.path().join("cpuacct/p/c");
        std::fs::create_dir_all(&cpu).unwrap();
        std::fs::write(cpu.join("cpuacct.usage"), "123456\n").unwrap();
        let u = usage_v1(t.path(), "p/c");
        assert_eq!(u.cpu_ns, Some(123_456));
        assert_eq!(
            (u.memory_usage, u.working_set, u.rss),
            (Some(1000), Some(700), Some(500))
        );
        assert_eq!(u.processes, None);
        let both = u.plus(u);
        assert_eq!((both.cpu_ns, both.processes), (Some(246_912), None));
    }
}
