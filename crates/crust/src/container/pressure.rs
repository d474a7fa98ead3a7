//! Pressure stall information (PSI) and swap of a cgroup, for ContainerStats and PodSandboxStats
//! (CRI v0.34+). PSI exists only on cgroup v2 (`cpu.pressure`, `memory.pressure`,
//! `io.pressure`): on v1 it is absent, never zero. Swap comes from `memory.swap.current` /
//! `memory.swap.max` (v2) or `memory.memsw.usage_in_bytes` less `memory.usage_in_bytes` (v1,
//! when swap accounting is on).

use std::path::Path;

/// One line of a pressure file: `some` or `full`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PsiData {
    /// Total stall time in microseconds.
    pub total: u64,
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
}

/// The `some` and `full` lines of a pressure file (`full` is absent for CPU on old kernels).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Psi {
    pub some: Option<PsiData>,
    pub full: Option<PsiData>,
}

/// PSI for CPU, memory and IO of one cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pressure {
    pub cpu: Option<Psi>,
    pub memory: Option<Psi>,
    pub io: Option<Psi>,
}

fn parse_line(line: &str) -> Option<PsiData> {
    let mut data = PsiData::default();
    for field in line.split_whitespace().skip(1) {
        let (k, v) = field.split_once('=')?;
        match k {
            "total" => data.total = v.parse().ok()?,
            "avg10" => data.avg10 = v.parse().ok()?,
            "avg60" => data.avg60 = v.parse().ok()?,
            "avg300" => data.avg300 = v.parse().ok()?,
            _ => {}
        }
    }
    Some(data)
}

/// Parses a pressure file's text; `None` when it holds neither line.
pub fn parse(text: &str) -> Option<Psi> {
    let line = |kind: &str| {
        text.lines()
            .find(|l| l.starts_with(kind))
            .and_then(parse_line)
    };
    let psi = Psi {
        some: line("some "),
        full: line("full "),
    };
    (psi.some.is_some() || psi.full.is_some()).then_some(psi)
}

/// The PSI of the v2 cgroup directory `dir` (each part `None` where its file is missing).
pub fn read_v2(dir: &Path) -> Pressure {
    let file = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .ok()
            .and_then(|t| parse(&t))
    };
    Pressure {
        cpu: file("cpu.pressure"),
        memory: file("memory.pressure"),
        io: file("io.pressure"),
    }
}

/// Swap in use and the limit (`None` = unlimited), v2.
pub fn swap_v2(dir: &Path) -> (Option<u64>, Option<u64>) {
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).ok();
    let usage = read("memory.swap.current").and_then(|s| s.trim().parse().ok());
    let limit = read("memory.swap.max").and_then(|s| s.trim().parse().ok());
    (usage, limit)
}

/// Swap in use and the limit, v1 (memsw counts memory plus swap); `None` without accounting.
pub fn swap_v1(memory_dir: &Path) -> (Option<u64>, Option<u64>) {
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(memory_dir.join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    let (Some(memsw), Some(mem)) = (
        read("memory.memsw.usage_in_bytes"),
        read("memory.usage_in_bytes"),
    ) else {
        return (None, None);
    };
    let limit = match (
        read("memory.memsw.limit_in_bytes"),
        read("memory.limit_in_bytes"),
    ) {
        (Some(sw), Some(m)) if sw < (1 << 62) => Some(sw.saturating_sub(m)),
        _ => None,
    };
    (Some(memsw.saturating_sub(mem)), limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_fixture_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cpu.pressure"),
            "some avg10=1.50 avg60=0.25 avg300=0.00 total=123456\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=42\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("io.pressure"),
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("memory.swap.current"), "4096\n").unwrap();
        std::fs::write(dir.path().join("memory.swap.max"), "max\n").unwrap();
        let p = read_v2(dir.path());
        let cpu = p.cpu.unwrap();
        assert_eq!(
            cpu.some.unwrap(),
            PsiData {
                total: 123456,
                avg10: 1.5,
                avg60: 0.25,
                avg300: 0.0
            }
        );
        assert_eq!(cpu.full.unwrap().total, 42);
        assert!(p.memory.is_none(), "a missing file is absent, not zero");
        assert_eq!(p.io.unwrap().some.unwrap().total, 7);
        assert!(p.io.unwrap().full.is_none());
        assert_eq!(swap_v2(dir.path()), (Some(4096), None));
        assert_eq!(parse("garbage"), None);
    }

    #[test]
    fn v1_swap_needs_memsw() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(swap_v1(dir.path()), (None, None));
        std::fs::write(dir.path().join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(dir.path().join("memory.memsw.usage_in_bytes"), "1500\n").unwrap();
        std::fs::write(dir.path().join("memory.limit_in_bytes"), "10000\n").unwrap();
        std::fs::write(dir.path().join("memory.memsw.limit_in_bytes"), "12000\n").unwrap();
        assert_eq!(swap_v1(dir.path()), (Some(500), Some(2000)));
    }
}
