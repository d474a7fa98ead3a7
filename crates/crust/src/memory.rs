//! crustd's heap footprint. glibc malloc keeps freed memory in per-thread arenas and returns little
//! of it to the kernel, so a daemon that once served a burst (100 pods, a large pull) stays at its
//! high-water mark. Two remedies: at most [`ARENAS`] arenas (crustd is I/O bound; more arenas buy
//! nothing but retained memory), and a trim of every arena once the daemon has been quiet for a
//! while after activity (one `malloc_trim` per quiet period, never while RPCs keep coming).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

/// Upper bound on malloc arenas.
pub const ARENAS: i32 = 2;

/// How long crustd must be quiet before it trims.
pub const QUIET: Duration = Duration::from_secs(2);

/// Count of finished RPCs (and other bursts of work), for the idle trimmer.
static ACTIVITY: AtomicU64 = AtomicU64::new(0);

/// Records that some work finished (called for every RPC).
pub fn note_activity() {
    ACTIVITY.fetch_add(1, Ordering::Relaxed);
}

/// Caps the number of malloc arenas; call before any thread starts.
pub fn limit_arenas() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets an allocator tunable; no memory is touched.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}

/// Trims the heap once after each burst of activity followed by `quiet` (give or take half of it)
/// without any: the count is sampled every `quiet / 2` and must stand still for a whole sample.
pub fn spawn_idle_trim(quiet: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut trimmer = IdleTrim::default();
        loop {
            tokio::time::sleep(quiet / 2).await;
            if trimmer.tick(ACTIVITY.load(Ordering::Relaxed)) {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        }
    })
}

/// Decides when to trim: the activity count did not move for a whole tick, and it moved since the
/// last trim (the first quiet tick after start-up counts as after activity: recovery allocates).
#[derive(Debug, Default)]
struct IdleTrim {
    seen: Option<u64>,
    trimmed: Option<u64>,
}

impl IdleTrim {
    fn tick(&mut self, now: u64) -> bool {
        let quiet = self.seen == Some(now);
        self.seen = Some(now);
        if quiet && self.trimmed != Some(now) {
            self.trimmed = Some(now);
            return true;
        }
        false
    }
}

fn trim() {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: malloc_trim only releases free heap pages; it is thread-safe.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(
            released = released != 0,
            "heap trimmed after a quiet period"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_once_per_quiet_period_after_activity() {
        let mut t = IdleTrim::default();
        assert!(!t.tick(0), "first look: nothing known yet");
        assert!(t.tick(0), "quiet after start-up: trim once");
        assert!(!t.tick(0), "still quiet: already trimmed");
        assert!(!t.tick(5), "busy");
        assert!(!t.tick(9), "still busy");
        assert!(t.tick(9), "quiet again: trim");
        assert!(!t.tick(9));
    }
}
