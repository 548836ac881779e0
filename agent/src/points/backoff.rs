//! When to restart a point's source after it failed: exponential backoff with jitter, reset
//! once the source has run healthily for a while. Pure state, no clock: callers pass the time.

use std::time::Duration;

use rand::Rng;

/// The restart timing of a point's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Delay after the first failure.
    pub first: Duration,
    /// The delay doubles up to this.
    pub max: Duration,
    /// A source that ran healthily this long starts again from `first`.
    pub healthy_after: Duration,
}

impl Default for RestartPolicy {
    /// 1 s doubling to 30 s; reset after 30 s of healthy running.
    fn default() -> Self {
        RestartPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(30),
            healthy_after: Duration::from_secs(30),
        }
    }
}

/// Consecutive failures of one source.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RestartPolicy,
    failures: u32,
}

impl Backoff {
    /// No failure yet.
    pub fn new(policy: RestartPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
        }
    }

    /// The source failed after producing data for `healthy_for` (zero if it never did); returns
    /// how long to wait before starting it again.
    pub fn failed(&mut self, healthy_for: Duration) -> Duration {
        if healthy_for >= self.policy.healthy_after {
            self.failures = 0;
        }
        let full = self
            .policy
            .first
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.policy.max);
        self.failures = self.failures.saturating_add(1);
        // Jitter: 75–100 % of the full delay, so sources that failed together (a shared camera,
        // a fleet rebooted at once) do not retry in lockstep.
        let millis = full.as_millis() as u64;
        Duration::from_millis(rand::thread_rng().gen_range(millis * 3 / 4..=millis))
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// A delay as people read it in a health message: `800 ms`, `1.9 s`, `30 s`.
pub fn human(delay: Duration) -> String {
    let ms = delay.as_millis();
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 10_000 {
        format!("{:.1} s", delay.as_secs_f64())
    } else {
        format!("{} s", (ms + 500) / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_cap_with_jitter_and_resets_after_healthy_running() {
        let mut backoff = Backoff::new(RestartPolicy::default());
        let within = |d: Duration, full: u64| {
            let full = Duration::from_secs(full);
            assert!(d <= full && d >= full * 3 / 4, "{d:?} vs {full:?}");
        };
        for full in [1, 2, 4, 8, 16, 30, 30, 30] {
            within(backoff.failed(Duration::from_secs(29)), full);
        }
        assert_eq!(backoff.failures(), 8);
        within(backoff.failed(Duration::from_secs(30)), 1);
        within(backoff.failed(Duration::ZERO), 2);
    }

    #[test]
    fn delays_read_well() {
        assert_eq!(human(Duration::from_millis(800)), "800 ms");
        assert_eq!(human(Duration::from_millis(1940)), "1.9 s");
        assert_eq!(human(Duration::from_millis(29_600)), "30 s");
    }
}
