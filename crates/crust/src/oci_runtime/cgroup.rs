//! The cgroup a runtime leaves behind after `delete`: runsc keeps a started container's v1
//! cgroups; runc keeps a cgroup it could not empty in time (its rmdir gives up after a few
//! tries on a busy host, and a `runc create` cut short after joining the cgroup leaves one with
//! no state to delete). What is ours to clear is exactly the object's own `cgroups_path`: any
//! process still in it is killed, then the directory is removed in every hierarchy. Blocking.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How often an emptied cgroup's rmdir is retried while its last processes exit.
const TRIES: u32 = 8;

/// Removes the cgroup `cgroups_path` in every hierarchy it exists in, killing what is left in
/// it first. Missing directories are fine; one still busy after the retries is logged and left
/// (the leak checks see it). Blocking: sleeps between tries.
pub fn remove_leftover(cgroups_path: &str) {
    let Some(rel) = relative(cgroups_path) else {
        return;
    };
    for dir in hierarchies().into_iter().map(|h| h.join(rel)) {
        remove_one(&dir);
    }
}

/// `cgroups_path` without its leading `/`; `None` for the root or a path that climbs.
fn relative(cgroups_path: &str) -> Option<&str> {
    let rel = cgroups_path.trim_start_matches('/');
    let climbs = rel
        .split('/')
        .any(|c| c == ".." || c == "." || c.is_empty());
    (!rel.is_empty() && !climbs).then_some(rel)
}

/// The mounted hierarchies: the root itself on a unified host, else every controller directory
/// (the `unified` one of a hybrid host included; symlinked aliases such as `cpu` skipped).
fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").is_file() {
        return vec![root.to_path_buf()];
    }
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

fn remove_one(dir: &Path) {
    let mut delay = Duration::from_millis(5);
    for attempt in 1..=TRIES {
        match std::fs::remove_dir(dir) {
            Ok(()) => {
                tracing::debug!(cgroup = %dir.display(), attempt, "removed a cgroup the runtime left");
                return;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == TRIES => {
                tracing::warn!(cgroup = %dir.display(), error = %e, "cannot remove the cgroup the runtime left");
            }
            Err(_) => {
                kill_members(dir);
                std::thread::sleep(delay);
                delay *= 2;
            }
        }
    }
}

/// SIGKILL to every process still in the cgroup at `dir` (what the runtime's delete missed).
fn kill_members(dir: &Path) {
    let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) else {
        return;
    };
    for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        tracing::info!(cgroup = %dir.display(), pid, "killing a process left in a deleted container's cgroup");
        // SAFETY: kill has no memory preconditions; the pid came from the cgroup itself.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_clean_relative_path_is_touched() {
        assert_eq!(relative("/crust/abc"), Some("crust/abc"));
        assert_eq!(relative("crust/abc"), Some("crust/abc"));
        assert_eq!(relative("/"), None);
        assert_eq!(relative(""), None);
        assert_eq!(relative("/crust/../etc"), None);
        assert_eq!(relative("/crust/./x"), None);
        assert_eq!(relative("/crust//x"), None);
    }

    #[test]
    fn a_busy_cgroup_is_emptied_and_removed() {
        let rel = format!("crust-unit-{}", std::process::id());
        let hierarchies = hierarchies();
        let Some(pids) = hierarchies
            .iter()
            .find(|h| h.ends_with("pids") || h.as_path() == Path::new(CGROUP_ROOT))
        else {
            return; // no cgroupfs here
        };
        let dir = pids.join(&rel);
        if std::fs::create_dir(&dir).is_err() {
            return; // not root
        }
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        std::fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        let reaper = std::thread::spawn(move || child.wait().unwrap());
        remove_leftover(&format!("/{rel}"));
        assert!(!dir.exists(), "{} left", dir.display());
        assert!(!reaper.join().unwrap().success(), "the member was killed");
    }
}
