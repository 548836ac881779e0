//! Whether a video point should stream: always, or while a viewer's lease holds. Pure state, no
//! clock: callers pass the time.
//!
//! ```text
//!  StreamStart(lease_s) ──▶ wanted until now + lease_s (each renewal moves it)
//!  StreamStop ────────────▶ not wanted (unless always_on)
//!  lease passes unrenewed ─▶ not wanted: a coordinator that died never leaves a drone streaming
//! ```

use std::time::Duration;

use tokio::time::Instant;

/// Shortest and longest lease honoured: a zero lease would expire before the source started,
/// and an endless one would defeat the point of leasing.
pub const LEASE_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));

/// Who wants a video point to stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Demand {
    always_on: bool,
    until: Option<Instant>,
}

impl Demand {
    /// Nobody watches yet; `always_on` points are wanted regardless.
    pub fn new(always_on: bool) -> Self {
        Demand {
            always_on,
            until: None,
        }
    }

    /// A viewer asked for the stream (a start or a renewal) for `lease_s` seconds from `now`.
    pub fn start(&mut self, now: Instant, lease_s: u32) {
        let lease = Duration::from_secs(lease_s.into()).clamp(LEASE_RANGE.0, LEASE_RANGE.1);
        self.until = Some(now + lease);
    }

    /// The last viewer left.
    pub fn stop(&mut self) {
        self.until = None;
    }

    /// Whether the point should stream at `now`.
    pub fn wanted(&self, now: Instant) -> bool {
        self.always_on || self.until.is_some_and(|until| now < until)
    }

    /// When the current lease runs out, if one holds and matters (not for `always_on`).
    pub fn expires_at(&self) -> Option<Instant> {
        self.until.filter(|_| !self.always_on)
    }

    /// Forgets a lease that has run out (so [`expires_at`](Self::expires_at) stops firing).
    pub fn expire(&mut self, now: Instant) {
        if self.until.is_some_and(|until| now >= until) {
            self.until = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_starts_renews_and_expires() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut demand = Demand::new(false);
        assert!(!demand.wanted(t0));
        assert_eq!(demand.expires_at(), None);

        demand.start(t0, 30);
        assert!(demand.wanted(t0 + s(29)));
        assert!(!demand.wanted(t0 + s(30)));
        assert_eq!(demand.expires_at(), Some(t0 + s(30)));

        // A renewal at 20 s holds it to 50 s.
        demand.start(t0 + s(20), 30);
        assert!(demand.wanted(t0 + s(49)));
        assert!(!demand.wanted(t0 + s(50)));

        demand.expire(t0 + s(49));
        assert!(demand.expires_at().is_some());
        demand.expire(t0 + s(50));
        assert_eq!(demand.expires_at(), None);
        assert!(!demand.wanted(t0 + s(50)));
    }

    #[test]
    fn stop_ends_the_lease_at_once() {
        let t0 = Instant::now();
        let mut demand = Demand::new(false);
        demand.start(t0, 30);
        demand.stop();
        assert!(!demand.wanted(t0));
        assert_eq!(demand.expires_at(), None);
    }

    #[test]
    fn always_on_ignores_stop_and_expiry() {
        let t0 = Instant::now();
        let mut demand = Demand::new(true);
        assert!(demand.wanted(t0));
        demand.start(t0, 5);
        assert_eq!(demand.expires_at(), None);
        demand.stop();
        assert!(demand.wanted(t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn leases_are_clamped() {
        let t0 = Instant::now();
        let mut demand = Demand::new(false);
        demand.start(t0, 0);
        assert!(demand.wanted(t0));
        assert_eq!(demand.expires_at(), Some(t0 + LEASE_RANGE.0));
        demand.start(t0, u32::MAX);
        assert_eq!(demand.expires_at(), Some(t0 + LEASE_RANGE.1));
    }
}
