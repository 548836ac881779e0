//! The job state machine.
//!
//! ```text
//!            dispatch          start
//!  pending ──────────▶ dispatched ─────▶ running ──▶ success | failure | error | timeout
//!     │                    │                │
//!     │ cancel             │ cancel         │ cancel
//!     ▼                    ▼                ▼
//!  cancelled           canceling ─────────────────▶ cancelled  (agent confirms)
//! ```
//!
//! A pending job has not left the coordinator, so cancelling it needs no one's confirmation and
//! it goes straight to `cancelled`. Once a job is dispatched the agent owns it: a cancel moves it
//! to `canceling`, and only the agent's confirmation (or its own final report, if the job ended
//! first) makes it final.

use serde::{Deserialize, Serialize};

/// Where a job is in its life. Serialized in lower case (`"pending"`, `"canceling"`, ...), the
/// form the REST API shows and the MQTT JSON topics publish.
///
/// Design: on the wire (postcard) enums are encoded by index, so variants are append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    /// Stored by the coordinator, not yet sent to the node (for example, the node is offline).
    Pending,
    /// Sent to the node's agent; not yet started.
    Dispatched,
    /// The agent started the job's process.
    Running,
    /// A cancel was requested after dispatch; waiting for the agent to confirm.
    Canceling,
    /// Ended with exit code 0.
    Success,
    /// Ended with a non-zero exit code.
    Failure,
    /// Could not run or was interrupted (bad plan files, agent restarted, ...).
    Error,
    /// Stopped by a cancel.
    Cancelled,
    /// Ran longer than its time limit and was stopped.
    Timeout,
}

/// Something that happens to a job. Each side feeds these to [`JobState::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobEvent {
    /// The coordinator handed the job to the node's agent.
    Dispatch,
    /// The agent started the job's process.
    Start,
    /// The process exited with code 0.
    Succeed,
    /// The process exited with a non-zero code.
    Fail,
    /// The job could not run, or was interrupted.
    Error,
    /// The job exceeded its time limit.
    TimeOut,
    /// Someone asked for the job to stop.
    Cancel,
    /// The agent confirmed the job is stopped.
    CancelConfirmed,
}

/// An event that is not legal in the job's current state. The state is left unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} job cannot take the event {event:?}")]
pub struct IllegalTransition {
    /// The state the job was in.
    pub from: JobState,
    /// The event that was refused.
    pub event: JobEvent,
}

impl JobState {
    /// Every state, in declaration order.
    pub const ALL: [JobState; 9] = [
        JobState::Pending,
        JobState::Dispatched,
        JobState::Running,
        JobState::Canceling,
        JobState::Success,
        JobState::Failure,
        JobState::Error,
        JobState::Cancelled,
        JobState::Timeout,
    ];

    /// The state after `event`, or why it is refused. Pure: no clock, no I/O.
    pub fn apply(self, event: JobEvent) -> Result<JobState, IllegalTransition> {
        use JobEvent as E;
        use JobState as S;
        let next = match (self, event) {
            (S::Pending, E::Dispatch) => S::Dispatched,
            (S::Pending, E::Cancel) => S::Cancelled,
            // An agent that restarts may report a job it never acknowledged as started.
            (S::Pending | S::Dispatched, E::Start) => S::Running,
            (S::Dispatched | S::Running, E::Cancel) => S::Canceling,
            (S::Dispatched | S::Running, E::Error) => S::Error,
            (S::Pending, E::Error) => S::Error,
            (S::Running, E::Succeed) => S::Success,
            (S::Running, E::Fail) => S::Failure,
            (S::Pending | S::Dispatched | S::Running, E::TimeOut) => S::Timeout,
            (S::Canceling, E::CancelConfirmed) => S::Cancelled,
            // The job ended on its own before the cancel reached it: the real outcome wins.
            (S::Canceling, E::Succeed) => S::Success,
            (S::Canceling, E::Fail) => S::Failure,
            (S::Canceling, E::Error) => S::Error,
            (S::Canceling, E::TimeOut) => S::Timeout,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(next)
    }

    /// True once the job can never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobState::Success
                | JobState::Failure
                | JobState::Error
                | JobState::Cancelled
                | JobState::Timeout
        )
    }

    /// True while the job occupies its plan (it counts as the plan's running job).
    pub fn is_active(self) -> bool {
        !self.is_terminal()
    }

    /// The lower-case name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Dispatched => "dispatched",
            JobState::Running => "running",
            JobState::Canceling => "canceling",
            JobState::Success => "success",
            JobState::Failure => "failure",
            JobState::Error => "error",
            JobState::Cancelled => "cancelled",
            JobState::Timeout => "timeout",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = UnknownJobState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobState::ALL
            .into_iter()
            .find(|state| state.as_str() == s)
            .ok_or_else(|| UnknownJobState(s.to_owned()))
    }
}

/// A string that names no job state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job state {0:?}")]
pub struct UnknownJobState(pub String);

#[cfg(test)]
mod tests {
    use super::*;
    use JobEvent as E;
    use JobState as S;

    const EVENTS: [JobEvent; 8] = [
        E::Dispatch,
        E::Start,
        E::Succeed,
        E::Fail,
        E::Error,
        E::TimeOut,
        E::Cancel,
        E::CancelConfirmed,
    ];

    #[test]
    fn happy_path_reaches_success() {
        let s = S::Pending.apply(E::Dispatch).unwrap();
        let s = s.apply(E::Start).unwrap();
        assert_eq!(s, S::Running);
        assert_eq!(s.apply(E::Succeed).unwrap(), S::Success);
        assert_eq!(S::Running.apply(E::Fail).unwrap(), S::Failure);
        assert_eq!(S::Running.apply(E::TimeOut).unwrap(), S::Timeout);
    }

    #[test]
    fn cancel_before_dispatch_is_final_at_once() {
        assert_eq!(S::Pending.apply(E::Cancel).unwrap(), S::Cancelled);
    }

    #[test]
    fn cancel_after_dispatch_waits_for_the_agent() {
        let s = S::Running.apply(E::Cancel).unwrap();
        assert_eq!(s, S::Canceling);
        assert!(s.is_active());
        assert_eq!(s.apply(E::CancelConfirmed).unwrap(), S::Cancelled);
        // The job finished on its own before the cancel reached it.
        assert_eq!(S::Canceling.apply(E::Succeed).unwrap(), S::Success);
    }

    #[test]
    fn terminal_states_accept_nothing() {
        for state in S::ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in EVENTS {
                let err = state.apply(event).unwrap_err();
                assert_eq!(err, IllegalTransition { from: state, event });
            }
        }
    }

    #[test]
    fn illegal_transitions_are_refused() {
        assert!(S::Pending.apply(E::Succeed).is_err());
        assert!(S::Pending.apply(E::CancelConfirmed).is_err());
        assert!(S::Dispatched.apply(E::Succeed).is_err());
        assert!(S::Running.apply(E::Dispatch).is_err());
        assert!(S::Canceling.apply(E::Cancel).is_err());
        assert!(S::Canceling.apply(E::Start).is_err());
    }

    #[test]
    fn every_transition_leads_somewhere_legal() {
        // Exhaustive: a legal transition never goes back to pending, and every non-terminal
        // state has a way to end.
        for state in S::ALL {
            for event in EVENTS {
                if let Ok(next) = state.apply(event) {
                    assert_ne!(next, S::Pending, "{state} --{event:?}--> pending");
                }
            }
            if state.is_active() {
                assert!(EVENTS
                    .iter()
                    .any(|e| state.apply(*e).is_ok_and(|n| n.is_terminal())));
            }
        }
    }

    #[test]
    fn names_round_trip_through_json_and_from_str() {
        for state in S::ALL {
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(json, format!("\"{}\"", state.as_str()));
            assert_eq!(state.as_str().parse::<S>().unwrap(), state);
        }
        assert!("paused".parse::<S>().is_err());
    }
}
