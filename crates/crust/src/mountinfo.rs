//! /proc/self/mountinfo: the mounts with their mount points (octal escapes undone) and optional
//! fields (`shared:N`, `master:N`), the mount a path lives on, and whether a path is a mount
//! point. Blocking reads.

use std::{
    io,
    path::{Path, PathBuf},
};

/// One mount of /proc/self/mountinfo: its mount point and optional fields (`shared:N`,
/// `master:N`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_point: PathBuf,
    pub optional: Vec<String>,
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Parses /proc/<pid>/mountinfo.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            Some(MountInfo {
                mount_point: PathBuf::from(unescape(fields.get(4)?)),
                optional: fields.get(6..sep)?.iter().map(|s| s.to_string()).collect(),
            })
        })
        .collect()
}

/// The mount `path` lives on: the longest mount point above it (the last one mounted wins).
pub fn mount_of<'a>(mounts: &'a [MountInfo], path: &Path) -> Option<&'a MountInfo> {
    mounts
        .iter()
        .filter(|m| path.starts_with(&m.mount_point))
        .max_by_key(|m| m.mount_point.as_os_str().len())
        .and_then(|best| {
            mounts
                .iter()
                .rev()
                .find(|m| m.mount_point == best.mount_point)
        })
}

/// True when `path` is a mount point listed in /proc/self/mountinfo.
pub fn is_mountpoint(path: &Path) -> io::Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(parse(&info).iter().any(|m| m.mount_point == path))
}
