//! The undo stack used by multi-step verbs (RunPodSandbox first).
//!
//! Each completed step pushes how to undo it. On failure the steps are undone in reverse order by an
//! executor the caller provides; every step is attempted even if an earlier undo failed, and the
//! failures are returned so the caller can keep the object around (NOTREADY) for a later Stop/Remove.
//! The caller runs this on a fresh deadline in a task of its own, never on a cancelled request.

use std::future::Future;

/// Steps to undo, most recent last.
#[derive(Debug)]
pub struct Rollback<S> {
    steps: Vec<S>,
}

impl<S> Default for Rollback<S> {
    fn default() -> Self {
        Rollback { steps: Vec::new() }
    }
}

impl<S: std::fmt::Debug> Rollback<S> {
    /// Records that `step` has been done and how to undo it.
    pub fn push(&mut self, step: S) {
        self.steps.push(step);
    }

    /// The steps recorded so far, oldest first.
    pub fn steps(&self) -> &[S] {
        &self.steps
    }

    /// Success: nothing is undone.
    pub fn commit(self) {}

    /// Undoes every step in reverse; returns the steps whose undo failed, with their errors.
    pub async fn unwind<E, F, Fut>(self, mut undo: F) -> Vec<(S, E)>
    where
        F: FnMut(&S) -> Fut,
        Fut: Future<Output = Result<(), E>>,
        E: std::fmt::Display,
    {
        let mut failed = Vec::new();
        for step in self.steps.into_iter().rev() {
            match undo(&step).await {
                Ok(()) => tracing::debug!(?step, "undone"),
                Err(e) => {
                    tracing::warn!(?step, error = %e, "undo step failed");
                    failed.push((step, e));
                }
            }
        }
        crate::metrics::global().rolled_back(failed.len());
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[tokio::test]
    async fn unwinds_in_reverse_and_keeps_going_after_a_failure() {
        let mut rb = Rollback::default();
        rb.push("a");
        rb.push("b");
        rb.push("c");
        let seen = Mutex::new(Vec::new());
        let failed = rb
            .unwind(|s: &&str| {
                seen.lock().unwrap().push(*s);
                let r = if *s == "b" { Err("b broke") } else { Ok(()) };
                async move { r }
            })
            .await;
        assert_eq!(*seen.lock().unwrap(), vec!["c", "b", "a"]);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].0, "b");
    }
}
