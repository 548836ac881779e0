//! Agent → coordinator: the `Event` family, published on `{prefix}/nodes/{node_id}/evt`.
//!
//! ```text
//!  agent                                              coordinator
//!    │ ── Accepted ─────────────────────────────────▶ │  dispatched
//!    │ ── Started(pid) ─────────────────────────────▶ │  running
//!    │ ── LogBatch / Progress / Output … ───────────▶ │  plans/{id}/term, blobs
//!    │ ── Finished(outcome) ────────────────────────▶ │  success | failure | …
//!    │ ── Heartbeat (every few seconds) ────────────▶ │  last_seen, reconcile running jobs
//!    │ ◀───────────────────────────────── Ack(seq) ── │
//! ```
//!
//! Events carry their own times (`started_at_ms`, `at_ms`, `finished_at_ms`): an event may sit
//! in the agent's outbox while the link is down, and the envelope's `sent_at_ms` is when it was
//! last sent, not when it happened.

use serde::{Deserialize, Serialize};

use super::JobRef;
use crate::job::{JobEvent, JobState};

/// What an agent reports.
///
/// Append-only: new variants go at the end (postcard encodes the variant index); the fields
/// of existing variants are frozen (see [`crate::messages`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The agent took the job (files are being fetched); it will start or finish it.
    Accepted {
        /// The job.
        job: JobRef,
    },
    /// The job's process started.
    Started {
        /// The job.
        job: JobRef,
        /// Process id on the device.
        pid: u32,
        /// When it started, Unix milliseconds.
        started_at_ms: u64,
    },
    /// Consecutive lines of the job's output.
    LogBatch {
        /// The job.
        job: JobRef,
        /// Index of `lines[0]` in the job's log, from 0, so the receiver can spot gaps and
        /// repeats.
        first_line: u64,
        /// The lines, in order.
        lines: Vec<LogLine>,
    },
    /// The job's own progress report.
    Progress {
        /// The job.
        job: JobRef,
        /// 0 to 100; receivers clamp larger values.
        percent: u8,
        /// What it is doing.
        message: String,
    },
    /// The agent uploaded one of the job's output files to the blob store.
    Output {
        /// The job.
        job: JobRef,
        /// What the file is (`report`, `photos`, ...).
        role: String,
        /// The uploaded blob.
        blob_id: u64,
    },
    /// The job ended. Its last event.
    Finished {
        /// The job.
        job: JobRef,
        /// How it ended.
        outcome: Outcome,
        /// The process's exit code, if it exited (not when it could not start, or was killed
        /// by a signal).
        exit_code: Option<i32>,
        /// Why, for the job's record (`exit code 3`, `sha256 mismatch for script`).
        reason: Option<String>,
        /// When it ended, Unix milliseconds.
        finished_at_ms: u64,
    },
    /// The agent is alive; sent periodically and right after connecting.
    Heartbeat {
        /// Seconds since the agent started.
        uptime_s: u64,
        /// Every job the agent is running, so the coordinator can reconcile after a gap.
        running_jobs: Vec<JobRef>,
        /// The agent's version (`CARGO_PKG_VERSION`).
        agent_version: String,
    },
    /// The answer to [`Command::Ping`](super::Command::Ping).
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// A point's source changed health: it started, or it failed and is restarted with
    /// backoff. Journaled like job events, so the coordinator learns about a failing camera
    /// even if the link was down when it happened.
    PointHealth {
        /// The point's name.
        point: String,
        /// True once the source produces data again.
        healthy: bool,
        /// What happened (`started`, `exited with code 1; restarting in 2 s`).
        message: String,
        /// When, Unix milliseconds.
        at_ms: u64,
    },
}

impl Event {
    /// The job the event is about, if any.
    pub fn job(&self) -> Option<JobRef> {
        match self {
            Event::Accepted { job }
            | Event::Started { job, .. }
            | Event::LogBatch { job, .. }
            | Event::Progress { job, .. }
            | Event::Output { job, .. }
            | Event::Finished { job, .. } => Some(*job),
            Event::Heartbeat { .. } | Event::Pong { .. } | Event::PointHealth { .. } => None,
        }
    }
}

/// One line of a job's output, without its line terminator.
///
/// Frozen: postcard carries no field names, so a new field would break older receivers. Add a
/// new variant carrying a new struct instead, or bump the protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// Which stream it came from.
    pub stream: LogStream,
    /// When the agent read it, Unix milliseconds.
    pub at_ms: u64,
    /// The text (lossily decoded as UTF-8).
    pub text: String,
}

/// A process output stream. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// How a job ended, as the agent saw it. Append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Exited with code 0.
    Success,
    /// Exited with a non-zero code.
    Failure,
    /// Could not run, or was interrupted (download failed, agent restarted, link lost).
    Error,
    /// Stopped by a [`Command::Cancel`](super::Command::Cancel).
    Cancelled,
    /// Stopped for running past its `timeout_s`.
    Timeout,
}

impl Outcome {
    /// The outcome of a process that exited with `code`.
    pub fn from_exit_code(code: i32) -> Self {
        if code == 0 {
            Outcome::Success
        } else {
            Outcome::Failure
        }
    }

    /// The event to feed the job's state machine. `Cancelled` confirms a cancel, so it is only
    /// legal from `canceling`: the coordinator should treat an unrequested one as an error.
    pub fn job_event(self) -> JobEvent {
        match self {
            Outcome::Success => JobEvent::Succeed,
            Outcome::Failure => JobEvent::Fail,
            Outcome::Error => JobEvent::Error,
            Outcome::Cancelled => JobEvent::CancelConfirmed,
            Outcome::Timeout => JobEvent::TimeOut,
        }
    }

    /// The final state a job with this outcome ends in.
    pub fn job_state(self) -> JobState {
        match self {
            Outcome::Success => JobState::Success,
            Outcome::Failure => JobState::Failure,
            Outcome::Error => JobState::Error,
            Outcome::Cancelled => JobState::Cancelled,
            Outcome::Timeout => JobState::Timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::testing::{assert_round_trip, JOB};

    const OUTCOMES: [Outcome; 5] = [
        Outcome::Success,
        Outcome::Failure,
        Outcome::Error,
        Outcome::Cancelled,
        Outcome::Timeout,
    ];

    #[test]
    fn accepted_round_trips() {
        assert_round_trip(Event::Accepted { job: JOB });
    }

    #[test]
    fn started_round_trips() {
        assert_round_trip(Event::Started {
            job: JOB,
            pid: 4242,
            started_at_ms: 1_700_000_000_123,
        });
    }

    #[test]
    fn log_batch_round_trips() {
        let lines = vec![
            LogLine {
                stream: LogStream::Stdout,
                at_ms: 1,
                text: "taking off".into(),
            },
            LogLine {
                stream: LogStream::Stderr,
                at_ms: 2,
                text: String::new(),
            },
        ];
        assert_round_trip(Event::LogBatch {
            job: JOB,
            first_line: 1_000,
            lines,
        });
    }

    #[test]
    fn progress_round_trips() {
        assert_round_trip(Event::Progress {
            job: JOB,
            percent: 100,
            message: "landing".into(),
        });
    }

    #[test]
    fn output_round_trips() {
        assert_round_trip(Event::Output {
            job: JOB,
            role: "photos".into(),
            blob_id: 77,
        });
    }

    #[test]
    fn finished_round_trips_for_every_outcome() {
        for outcome in OUTCOMES {
            assert_round_trip(Event::Finished {
                job: JOB,
                outcome,
                exit_code: Some(-1),
                reason: Some("exit code -1".into()),
                finished_at_ms: 9,
            });
        }
        assert_round_trip(Event::Finished {
            job: JOB,
            outcome: Outcome::Error,
            exit_code: None,
            reason: None,
            finished_at_ms: 0,
        });
    }

    #[test]
    fn heartbeat_round_trips() {
        assert_round_trip(Event::Heartbeat {
            uptime_s: 3600,
            running_jobs: vec![JOB],
            agent_version: "0.1.0".into(),
        });
    }

    #[test]
    fn pong_round_trips() {
        assert_round_trip(Event::Pong { nonce: 17 });
    }

    #[test]
    fn outcomes_drive_the_job_to_their_state() {
        for outcome in OUTCOMES {
            // A cancel confirmation comes after a cancel; every other outcome ends a running job.
            let from = if outcome == Outcome::Cancelled {
                JobState::Canceling
            } else {
                JobState::Running
            };
            assert_eq!(from.apply(outcome.job_event()), Ok(outcome.job_state()));
            assert!(outcome.job_state().is_terminal());
        }
        assert_eq!(Outcome::from_exit_code(0), Outcome::Success);
        assert_eq!(Outcome::from_exit_code(3), Outcome::Failure);
    }

    #[test]
    fn job_names_the_job() {
        assert_eq!(Event::Pong { nonce: 1 }.job(), None);
        assert_eq!(Event::Accepted { job: JOB }.job(), Some(JOB));
    }
}
