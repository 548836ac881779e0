//! Coordinator → agent: the `Command` family, published on `{prefix}/nodes/{node_id}/cmd`.
//!
//! ```text
//!  coordinator                      agent
//!      │ ── Dispatch(job) ──────────▶ │  download files, check sha256, start
//!      │ ◀───────────── Accepted ──── │
//!      │ ── Cancel(job, reason) ────▶ │  stop the process
//!      │ ◀── Finished(Cancelled) ──── │
//!      │ ── Ping(nonce) ────────────▶ │
//!      │ ◀──────────── Pong(nonce) ── │
//!      │ ── Ack(seq) ───────────────▶ │  drop events ≤ seq from the outbox
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::JobRef;

/// What the coordinator tells an agent.
///
/// Append-only: new variants go at the end (postcard encodes the variant index); the fields
/// of existing variants are frozen (see [`crate::messages`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Run a job.
    Dispatch(JobDispatch),
    /// Stop a job.
    Cancel(CancelRequest),
    /// Liveness probe; the agent answers with [`Event::Pong`](super::Event::Pong) carrying the
    /// same nonce.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Cumulative acknowledgement: every event with `seq` at or below this one has been
    /// processed (or refused for good) and can leave the agent's outbox.
    Ack {
        /// The highest event `seq` the coordinator is done with.
        seq: u64,
    },
    /// Someone watches a video point: start its source (if not running) and send its tags on
    /// `{prefix}/nodes/{id}/live/{point}`. The coordinator repeats this while viewers remain;
    /// the agent stops the stream by itself when `lease_s` passes without one, so a coordinator
    /// that died never leaves a drone streaming.
    StreamStart {
        /// The point's name.
        point: String,
        /// Seconds the request holds.
        lease_s: u32,
    },
    /// The last viewer of a video point left: stop streaming it (unless it is always on).
    StreamStop {
        /// The point's name.
        point: String,
    },
}

impl Command {
    /// The job the command is about, if any.
    pub fn job(&self) -> Option<JobRef> {
        match self {
            Command::Dispatch(dispatch) => Some(dispatch.job),
            Command::Cancel(cancel) => Some(cancel.job),
            Command::Ping { .. }
            | Command::Ack { .. }
            | Command::StreamStart { .. }
            | Command::StreamStop { .. } => None,
        }
    }
}

/// Everything an agent needs to run a job, with no further question to the coordinator except
/// downloading the files.
///
/// Frozen: postcard carries no field names, so a new field would break older receivers. Add a
/// new variant carrying a new struct instead, or bump the protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDispatch {
    /// The job.
    pub job: JobRef,
    /// The plan's files merged with the job's own (the job's win for the same role).
    pub files: Vec<PlanFile>,
    /// The plan's `extra` merged with the job's inputs (the inputs win for the same key).
    pub extra: BTreeMap<String, String>,
    /// Stop the job as `Timeout` after this many seconds of running; `None` for no limit.
    pub timeout_s: Option<u64>,
    /// Stop the job as `Error` when the agent has lost the broker for this long; `None` to
    /// keep running offline (the agent reports from its outbox when it reconnects).
    pub abort_on_link_loss_s: Option<u64>,
}

/// One file of a job, to fetch from the coordinator's blob store.
///
/// Frozen: postcard carries no field names, so a new field would break older receivers. Add a
/// new variant carrying a new struct instead, or bump the protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanFile {
    /// What the file is for (`script`, `mission`, ...), unique within the job.
    pub role: String,
    /// The blob to download.
    pub blob_id: u64,
    /// The blob's sanitized file name (no directories), to save it under.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lower-case hex; the agent refuses a download that differs.
    pub sha256: String,
}

/// A request to stop a job.
///
/// Frozen: postcard carries no field names, so a new field would break older receivers. Add a
/// new variant carrying a new struct instead, or bump the protocol version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelRequest {
    /// The job.
    pub job: JobRef,
    /// Why, for the job's record (`cancelled by alice`).
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::testing::{assert_round_trip, JOB};

    fn dispatch() -> JobDispatch {
        JobDispatch {
            job: JOB,
            files: vec![PlanFile {
                role: "script".into(),
                blob_id: 55,
                name: "survey.py".into(),
                size: 2048,
                sha256: "ab".repeat(32),
            }],
            extra: BTreeMap::from([("altitude".into(), "120".into())]),
            timeout_s: Some(600),
            abort_on_link_loss_s: None,
        }
    }

    #[test]
    fn dispatch_round_trips() {
        assert_round_trip(Command::Dispatch(dispatch()));
        // Empty collections and the other option states too.
        assert_round_trip(Command::Dispatch(JobDispatch {
            files: vec![],
            extra: BTreeMap::new(),
            timeout_s: None,
            abort_on_link_loss_s: Some(30),
            ..dispatch()
        }));
    }

    #[test]
    fn cancel_round_trips() {
        assert_round_trip(Command::Cancel(CancelRequest {
            job: JOB,
            reason: "cancelled by alice ✈".into(),
        }));
    }

    #[test]
    fn ping_round_trips() {
        assert_round_trip(Command::Ping { nonce: u64::MAX });
    }

    #[test]
    fn ack_round_trips() {
        assert_round_trip(Command::Ack { seq: 0 });
    }

    #[test]
    fn stream_commands_round_trip() {
        assert_round_trip(Command::StreamStart {
            point: "camera".into(),
            lease_s: 30,
        });
        assert_round_trip(Command::StreamStop {
            point: "camera".into(),
        });
    }

    #[test]
    fn job_names_the_job() {
        assert_eq!(Command::Dispatch(dispatch()).job(), Some(JOB));
        assert_eq!(Command::Ack { seq: 1 }.job(), None);
    }
}
