//! Writing a pod's sysctls in the namespaces of the calling thread (`/proc/sys` shows the
//! writer's network, IPC and UTS namespaces), for namespaces crustd made itself: a pinned
//! sandbox's IPC/UTS namespaces and its netns. Callers run on a thread that entered them.

use std::{
    io,
    path::{Path, PathBuf},
};

/// The `/proc/sys` file of a sysctl: the first separator decides, as sysctl(8) has it (with
/// dots, a `/` stands for a dot in a name such as an interface `eth0.100`).
pub fn path(name: &str) -> PathBuf {
    let dotted = name
        .find(['.', '/'])
        .is_none_or(|i| name.as_bytes()[i] == b'.');
    let rel: String = if dotted {
        name.chars()
            .map(|c| match c {
                '.' => '/',
                '/' => '.',
                c => c,
            })
            .collect()
    } else {
        name.to_string()
    };
    Path::new("/proc/sys").join(rel)
}

/// Writes `value` to the sysctl `name` as this thread's namespaces see it.
pub fn write(name: &str, value: &str) -> io::Result<()> {
    std::fs::write(path(name), value)
        .map_err(|e| io::Error::new(e.kind(), format!("sysctl {name} = {value:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_first_separator() {
        let p = |n| path(n).display().to_string();
        assert_eq!(
            p("kernel.shm_rmid_forced"),
            "/proc/sys/kernel/shm_rmid_forced"
        );
        assert_eq!(
            p("net.ipv4.conf.eth0/100.forwarding"),
            "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
        );
        assert_eq!(
            p("net/ipv4/conf/eth0.100/forwarding"),
            "/proc/sys/net/ipv4/conf/eth0.100/forwarding"
        );
    }
}
