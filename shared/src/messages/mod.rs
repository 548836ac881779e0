//! The messages of the private channel, one module per family.
//!
//! ```text
//!  coordinator                         broker                           agent
//!      │ ── Command (…/nodes/{id}/cmd) ──▶ │ ──────────────────────────▶ │
//!      │ ◀────────────────────────────── │ ◀── Event (…/nodes/{id}/evt) ── │
//! ```
//!
//! A job's life on the wire: `Dispatch` → `Accepted` → `Started` → `LogBatch`/`Progress`/
//! `Output`* → `Finished`; a `Cancel` in between ends in `Finished { outcome: Cancelled }`
//! (or the job's real outcome, if it ended first). The coordinator answers every event it has
//! processed with a cumulative `Ack`, and the agent keeps events in its outbox until then.
//!
//! Wire rules for every type here: postcard is not self-describing. Fields are encoded in
//! declaration order with no names, and enum variants by index. So:
//! - enums are append-only: new variants go at the end, none is reordered or removed;
//! - structs (and variants' fields) are frozen: a new field would shift or trail the bytes
//!   an older receiver expects, so it takes a new variant (`Dispatch2(JobDispatch2)`) or a
//!   new [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION);
//! - no serde attribute that changes the shape (`skip_serializing_if`, `flatten`,
//!   `untagged`, `default`) is used.
//!
//! An older receiver cannot decode a variant it does not know, so a sender only uses a new
//! variant once the peer is known to understand it (the agent reports its version in every
//! `Heartbeat`). `tests/fixtures/*.hex` pins the bytes of every variant.

mod command;
mod event;
mod stream;

pub use command::{CancelRequest, Command, JobDispatch, PlanFile};
pub use event::{Event, LogLine, LogStream, Outcome};
pub use stream::{MediaTag, StreamChunk};

use std::fmt;

use serde::{Deserialize, Serialize};

/// Names one job everywhere on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobRef {
    /// Globally unique job id (the REST API's `id`).
    pub id: u64,
    /// The plan the job is a run of.
    pub plan_id: u64,
    /// The run's number within its plan, from 1 (the REST API's `job_id`).
    pub job_seq: u64,
}

impl fmt::Display for JobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "job {} (plan {} run {})",
            self.id, self.plan_id, self.job_seq
        )
    }
}

/// The body of an [`Envelope`](crate::Envelope): a command or an event.
///
/// Design: one body type for both directions rather than two envelope types, so there is one
/// `seal`/`open`, one fixture format and one error path, and the first body byte (0 or 1)
/// says which direction a message was meant for. Direction is still enforced: the tag binds
/// the topic, so a command cannot be reflected onto an `evt` topic, and a receiver refuses the
/// other family (see [`Message::into_event`], [`Message::into_command`]).
///
/// Append-only: new variants go at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Message {
    /// Coordinator → agent.
    Command(Command),
    /// Agent → coordinator.
    Event(Event),
    /// Agent → coordinator, live video on `{prefix}/nodes/{id}/live/{point}` (not journaled).
    Stream(StreamChunk),
}

impl Message {
    /// The event, or the message back if it is a command (the coordinator's receive path).
    pub fn into_event(self) -> Result<Event, Message> {
        match self {
            Message::Event(event) => Ok(event),
            other => Err(other),
        }
    }

    /// The command, or the message back if it is an event (the agent's receive path).
    pub fn into_command(self) -> Result<Command, Message> {
        match self {
            Message::Command(command) => Ok(command),
            other => Err(other),
        }
    }

    /// The job the message is about, if any.
    pub fn job(&self) -> Option<JobRef> {
        match self {
            Message::Command(command) => command.job(),
            Message::Event(event) => event.job(),
            Message::Stream(_) => None,
        }
    }
}

impl From<Command> for Message {
    fn from(command: Command) -> Self {
        Message::Command(command)
    }
}

impl From<Event> for Message {
    fn from(event: Event) -> Self {
        Message::Event(event)
    }
}

/// Round-trip checks shared by the message modules' tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::{open, seal, Envelope, NodeKey};

    /// A job reference used across tests.
    pub const JOB: JobRef = JobRef {
        id: 1001,
        plan_id: 12,
        job_seq: 3,
    };

    /// Asserts `body` survives postcard, a sealed envelope and JSON unchanged.
    pub fn assert_round_trip(body: impl Into<Message>) {
        let body = body.into();
        let bytes = postcard::to_stdvec(&body).unwrap();
        assert_eq!(postcard::from_bytes::<Message>(&bytes).unwrap(), body);

        let key = NodeKey::generate();
        let envelope = Envelope::new(7, 42, 1_700_000_000_000, body.clone());
        let topic = "sortie/v1/nodes/7/evt";
        assert_eq!(
            open(&seal(&envelope, topic, &key), topic, &key).unwrap(),
            envelope
        );

        let json = serde_json::to_string(&body).unwrap();
        assert_eq!(serde_json::from_str::<Message>(&json).unwrap(), body);
    }
}

#[cfg(test)]
mod tests {
    use super::testing::JOB;
    use super::*;

    #[test]
    fn direction_helpers_split_the_families() {
        let command = Message::from(Command::Ping { nonce: 1 });
        let event = Message::from(Event::Pong { nonce: 1 });
        assert!(command.clone().into_event().is_err());
        assert!(event.clone().into_command().is_err());
        assert_eq!(command.into_command().unwrap(), Command::Ping { nonce: 1 });
        assert_eq!(event.into_event().unwrap(), Event::Pong { nonce: 1 });
    }

    #[test]
    fn family_is_the_first_body_byte() {
        let command = postcard::to_stdvec(&Message::from(Command::Ack { seq: 9 })).unwrap();
        let event = postcard::to_stdvec(&Message::from(Event::Accepted { job: JOB })).unwrap();
        assert_eq!(command[0], 0);
        assert_eq!(event[0], 1);
    }

    #[test]
    fn job_ref_reads_well_in_logs() {
        assert_eq!(JOB.to_string(), "job 1001 (plan 12 run 3)");
        let message = Message::from(Event::Accepted { job: JOB });
        assert_eq!(message.job(), Some(JOB));
        assert_eq!(Message::from(Command::Ping { nonce: 0 }).job(), None);
    }
}
