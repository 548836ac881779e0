//! `PointHealth` events: journaled (so the coordinator hears of a failing camera even if the
//! link was down when it failed), but only on transitions, never once per sample or per retry
//! of the same failure.

use std::time::Duration;

use sortie_shared::Event;

use super::backoff::human;
use crate::journal::Journal;

/// What was last reported for a point. Pure: decides whether a report is news.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthState {
    last: Option<Reported>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reported {
    Healthy,
    /// The failure's reason, without the retry delay (which changes every attempt).
    Unhealthy(String),
}

impl HealthState {
    /// The source produces data: `Some("started")` unless that is what was last reported.
    pub fn healthy(&mut self) -> Option<String> {
        if self.last == Some(Reported::Healthy) {
            return None;
        }
        self.last = Some(Reported::Healthy);
        Some("started".to_owned())
    }

    /// The source failed for `reason` and is retried after `retry` (if it is): the message to
    /// report, unless the same failure was the last thing reported (a source that keeps failing
    /// the same way says so once, not on every attempt).
    pub fn unhealthy(&mut self, reason: &str, retry: Option<Duration>) -> Option<String> {
        let reported = Reported::Unhealthy(reason.to_owned());
        if self.last.as_ref() == Some(&reported) {
            return None;
        }
        self.last = Some(reported);
        Some(match retry {
            Some(delay) => format!("{reason}; restarting in {}", human(delay)),
            None => reason.to_owned(),
        })
    }
}

/// Reports one point's health to the journal.
#[derive(Debug)]
pub struct HealthReporter {
    point: String,
    journal: Journal,
    state: HealthState,
}

impl HealthReporter {
    /// A reporter for `point` that has reported nothing yet.
    pub fn new(point: &str, journal: Journal) -> Self {
        HealthReporter {
            point: point.to_owned(),
            journal,
            state: HealthState::default(),
        }
    }

    /// The point's name.
    pub fn point(&self) -> &str {
        &self.point
    }

    /// The source produces data.
    pub async fn healthy(&mut self) {
        if let Some(message) = self.state.healthy() {
            tracing::info!(point = %self.point, "point source started");
            self.append(true, message).await;
        }
    }

    /// The source failed (logged every time; journaled when it is news).
    pub async fn unhealthy(&mut self, reason: &str, retry: Option<Duration>) {
        let retry_in = retry.map(human);
        tracing::warn!(point = %self.point, %reason, retry_in, "point source failed");
        if let Some(message) = self.state.unhealthy(reason, retry) {
            self.append(false, message).await;
        }
    }

    async fn append(&self, healthy: bool, message: String) {
        let event = Event::PointHealth {
            point: self.point.clone(),
            healthy,
            message,
            at_ms: crate::now_ms(),
        };
        if let Err(e) = self.journal.append(vec![event]).await {
            tracing::error!(point = %self.point, error = %e, "journaling a point's health");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transitions_and_new_failures_are_reported() {
        let mut state = HealthState::default();
        let s = Duration::from_secs;
        assert_eq!(state.healthy().as_deref(), Some("started"));
        assert_eq!(state.healthy(), None);
        assert_eq!(
            state.unhealthy("exited with code 1", Some(s(4))).as_deref(),
            Some("exited with code 1; restarting in 4.0 s")
        );
        // The same failure on the next attempt is not news, whatever the delay.
        assert_eq!(state.unhealthy("exited with code 1", Some(s(8))), None);
        assert_eq!(
            state
                .unhealthy("exited with code 2", Some(s(16)))
                .as_deref(),
            Some("exited with code 2; restarting in 16 s")
        );
        assert_eq!(state.healthy().as_deref(), Some("started"));
        assert!(state.unhealthy("exited with code 2", None).is_some());
    }
}
