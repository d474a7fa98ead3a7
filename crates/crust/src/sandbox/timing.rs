//! Per-step timing of one RunPodSandbox: how long each step took, logged at debug level as one
//! line when the sandbox is ready, so an operator (or `crust bench`) can see where a pod start
//! spends its time beside the floor's netns / CNI / runc figures.

use std::{fmt::Write, time::Instant};

use super::RunStep;

/// Laps of one run, in the order they happened.
#[derive(Debug)]
pub struct StepTimes {
    started: Instant,
    last: Instant,
    laps: Vec<(RunStep, u128)>,
}

impl Default for StepTimes {
    fn default() -> Self {
        let now = Instant::now();
        StepTimes {
            started: now,
            last: now,
            laps: Vec::with_capacity(8),
        }
    }
}

impl StepTimes {
    /// Ends the lap of `step` (time since the previous lap).
    pub fn lap(&mut self, step: RunStep) {
        let now = Instant::now();
        self.laps
            .push((step, now.duration_since(self.last).as_micros()));
        self.last = now;
    }

    /// Each lap: its step's key and duration.
    pub fn laps(&self) -> impl Iterator<Item = (&'static str, std::time::Duration)> + '_ {
        self.laps
            .iter()
            .map(|(step, us)| (step.key(), std::time::Duration::from_micros(*us as u64)))
    }

    /// `persist=812 files=95 ... total=61234` (microseconds).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for (step, us) in &self.laps {
            let _ = write!(out, "{}={us} ", step.key());
        }
        let _ = write!(out, "total={}", self.started.elapsed().as_micros());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_lists_laps_in_order_and_the_total() {
        let mut t = StepTimes::default();
        t.lap(RunStep::Persist);
        t.lap(RunStep::Netns);
        let s = t.summary();
        let keys: Vec<&str> = s
            .split(' ')
            .map(|kv| kv.split('=').next().unwrap())
            .collect();
        assert_eq!(keys, ["persist", "netns", "total"]);
    }
}
