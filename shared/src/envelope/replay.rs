//! Replay protection: sequence numbers and a clock-skew bound. Pure state, no clock, no I/O.
//!
//! A valid tag proves who sent a message and on which topic, but not that it is new: anyone
//! watching the broker could publish a captured envelope again. The receiver therefore accepts
//! each sender's `seq` only if it is higher than every `seq` it accepted before
//! ([`ReplayGuard`]), and can bound how old `sent_at_ms` may be ([`check_clock_skew`]) so a
//! receiver that lost its guard state (fresh install) still refuses old captures.

use std::collections::HashMap;

use super::WireError;

/// Default bound for [`check_clock_skew`]: five minutes either way.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;

/// The highest `seq` accepted from each sender, keyed by node id.
///
/// The sender is identified by the envelope's `node_id`: each side only receives one direction
/// of a node's channel (the coordinator its events, the agent its commands), so node id alone
/// names the sending counter.
///
/// Design: strictly increasing, not a sliding window. MQTT delivers one client's QoS 1
/// messages on a topic in order, and senders retransmit their outbox in `seq` order, so a
/// lower `seq` is a duplicate (already handled) or a replay. A receiver that sees
/// [`WireError::Replayed`] for an authentic envelope should still acknowledge it: the sender
/// is retransmitting because an earlier acknowledgement was lost.
#[derive(Debug, Clone, Default)]
pub struct ReplayGuard {
    last: HashMap<u64, u64>,
}

impl ReplayGuard {
    /// A guard that has accepted nothing yet.
    pub fn new() -> Self {
        ReplayGuard::default()
    }

    /// A guard that resumes from persisted `(node_id, last accepted seq)` pairs.
    pub fn with_last_accepted(pairs: impl IntoIterator<Item = (u64, u64)>) -> Self {
        ReplayGuard {
            last: pairs.into_iter().collect(),
        }
    }

    /// Whether `seq` from `node_id` would be accepted, without recording it. Use this before
    /// doing the work, then [`accept`](Self::accept) once the work is durable.
    pub fn check(&self, node_id: u64, seq: u64) -> Result<(), WireError> {
        match self.last.get(&node_id) {
            Some(&last) if seq <= last => Err(WireError::Replayed { node_id, seq, last }),
            _ => Ok(()),
        }
    }

    /// Checks `seq` and, if it is new, records it as the sender's latest.
    pub fn accept(&mut self, node_id: u64, seq: u64) -> Result<(), WireError> {
        self.check(node_id, seq)?;
        self.last.insert(node_id, seq);
        Ok(())
    }

    /// The highest `seq` accepted from `node_id`, to persist alongside the receiver's state.
    pub fn last_accepted(&self, node_id: u64) -> Option<u64> {
        self.last.get(&node_id).copied()
    }

    /// Forgets a sender (node deleted, or re-provisioned with a fresh counter and a new key).
    pub fn forget(&mut self, node_id: u64) -> Option<u64> {
        self.last.remove(&node_id)
    }
}

/// Refuses an envelope whose `sent_at_ms` is more than `max_skew_ms` away from `now_ms`, in
/// either direction. Both times are Unix milliseconds; the caller reads the clock.
///
/// `sent_at_ms` is when the envelope was sealed, so a sender re-seals (same `seq`, fresh
/// `sent_at_ms`) when it retransmits from its outbox; the event's own time lives in the body.
pub fn check_clock_skew(sent_at_ms: u64, now_ms: u64, max_skew_ms: u64) -> Result<(), WireError> {
    if sent_at_ms.abs_diff(now_ms) > max_skew_ms {
        return Err(WireError::ClockSkew {
            sent_at_ms,
            now_ms,
            max_skew_ms,
        });
    }
    Ok(())
}

/// A sender's `seq` counter.
///
/// Persist the last `seq` used and [`resume`](Self::resume) from it. As a fallback for a sender
/// that lost that state, the counter never starts below `now_ms × 1000`: the receiver's guard
/// then still sees higher numbers than before, as long as the sender's clock did not go back
/// and it never averaged more than 1000 messages per millisecond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqCounter {
    next: u64,
}

impl SeqCounter {
    /// Continues after `last_used` (if any was persisted), at or above `now_ms × 1000`.
    pub fn resume(last_used: Option<u64>, now_ms: u64) -> Self {
        let after_last = last_used.map_or(0, |seq| seq.saturating_add(1));
        SeqCounter {
            next: after_last.max(now_ms.saturating_mul(1000)),
        }
    }

    /// Takes the next sequence number.
    pub fn next_seq(&mut self) -> u64 {
        let seq = self.next;
        self.next = self.next.saturating_add(1);
        seq
    }

    /// The number [`next_seq`](Self::next_seq) will return, without taking it.
    pub fn peek(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_strictly_increasing_seq_per_sender() {
        let mut guard = ReplayGuard::new();
        guard.accept(7, 1).unwrap();
        guard.accept(7, 2).unwrap();
        guard.accept(7, 10).unwrap();
        // Another node's counter is independent.
        guard.accept(8, 1).unwrap();
        assert_eq!(guard.last_accepted(7), Some(10));
        assert_eq!(guard.last_accepted(8), Some(1));
        assert_eq!(guard.last_accepted(9), None);
    }

    #[test]
    fn rejects_duplicates_and_older_seq() {
        let mut guard = ReplayGuard::new();
        guard.accept(7, 5).unwrap();
        for seq in [5, 4, 0] {
            let err = guard.accept(7, seq).unwrap_err();
            assert!(
                matches!(err, WireError::Replayed { node_id: 7, seq: s, last: 5 } if s == seq),
                "{err}"
            );
        }
        // A refused seq leaves the guard unchanged.
        assert_eq!(guard.last_accepted(7), Some(5));
        guard.accept(7, 6).unwrap();
    }

    #[test]
    fn check_does_not_record() {
        let mut guard = ReplayGuard::new();
        guard.check(7, 3).unwrap();
        guard.check(7, 3).unwrap();
        guard.accept(7, 3).unwrap();
        assert!(guard.check(7, 3).is_err());
    }

    #[test]
    fn resumes_from_persisted_state_and_forgets() {
        let mut guard = ReplayGuard::with_last_accepted([(7, 100), (8, 3)]);
        assert!(guard.accept(7, 100).is_err());
        guard.accept(7, 101).unwrap();
        assert_eq!(guard.forget(8), Some(3));
        guard.accept(8, 1).unwrap();
    }

    #[test]
    fn random_sequences_only_accept_new_maxima() {
        // Property-style: whatever order seqs arrive in, exactly the running maxima pass.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..50 {
            let mut guard = ReplayGuard::new();
            let mut max = None;
            for _ in 0..200 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let seq = state % 64;
                let expect_ok = max.is_none_or(|m| seq > m);
                assert_eq!(
                    guard.accept(1, seq).is_ok(),
                    expect_ok,
                    "seq {seq} max {max:?}"
                );
                if expect_ok {
                    max = Some(seq);
                }
            }
        }
    }

    #[test]
    fn clock_skew_is_bounded_both_ways() {
        let now = 1_700_000_000_000;
        check_clock_skew(now, now, 1000).unwrap();
        check_clock_skew(now - 1000, now, 1000).unwrap();
        check_clock_skew(now + 1000, now, 1000).unwrap();
        assert!(matches!(
            check_clock_skew(now - 1001, now, 1000),
            Err(WireError::ClockSkew {
                max_skew_ms: 1000,
                ..
            })
        ));
        assert!(check_clock_skew(now + 1001, now, 1000).is_err());
        assert!(check_clock_skew(0, u64::MAX, DEFAULT_MAX_CLOCK_SKEW_MS).is_err());
    }

    #[test]
    fn seq_counter_resumes_above_persisted_and_clock() {
        let mut counter = SeqCounter::resume(None, 5);
        assert_eq!(counter.next_seq(), 5000);
        assert_eq!(counter.next_seq(), 5001);
        assert_eq!(counter.peek(), 5002);
        // Persisted state ahead of the clock wins.
        assert_eq!(SeqCounter::resume(Some(9_999), 5).peek(), 10_000);
        // A clock ahead of persisted state wins.
        assert_eq!(SeqCounter::resume(Some(10), 5).peek(), 5000);
        assert_eq!(
            SeqCounter::resume(Some(u64::MAX), u64::MAX).peek(),
            u64::MAX
        );
    }
}
