//! The protocol both halves of Sortie speak.
//!
//! This crate is types only: it knows nothing of tokio, MQTT clients, storage or HTTP, so the
//! coordinator, the agent and the tests can all depend on it without pulling those in. It
//! defines what goes on the wire and where; the binaries decide when.
//!
//! ```text
//!  coordinator ── {prefix}/nodes/{id}/cmd: seal(Envelope{Command}) ──▶ broker ──▶ agent
//!  coordinator ◀── {prefix}/nodes/{id}/evt: seal(Envelope{Event}) ─── broker ◀── agent
//!  watchers    ◀── nodes/{id}/status, plans/{id}/…, jobs/{id}/state (JSON, text)
//! ```
//!
//! # Layout
//! - [`job`]: the job state machine, as one enum with pure transition methods. Both the
//!   coordinator (tracking a job it dispatched) and the agent (running it) drive their state
//!   through [`job::JobState::apply`], so the two sides cannot disagree on what is legal.
//! - [`envelope`]: the [`Envelope`] every private message travels in, starting with
//!   [`PROTOCOL_VERSION`]; [`seal`] and [`open`] (postcard + HMAC-SHA256 over the bytes and
//!   the topic, with a per-node [`NodeKey`]); replay protection ([`ReplayGuard`],
//!   [`SeqCounter`], [`check_clock_skew`]); [`WireError`].
//! - [`messages`]: the envelope bodies, one module per family: [`Command`] (coordinator →
//!   agent) and [`Event`] (agent → coordinator), joined in [`Message`].
//! - [`topics`]: one table, [`TOPICS`], of every MQTT topic with its direction, QoS, retain
//!   flag and payload kind; [`Topic`] builds and parses topic strings from it.
//! - [`flv`]: the FLV container drones stream video in, I/O-free: an incremental validating
//!   reader, the writer, and the stream plumbing both binaries use (timestamp rewriting for
//!   looped sources, the late-join cache for viewers, the byte-bounded uplink queue).
//! - [`payloads`]: the JSON and text payloads of the public topics ([`NodeStatusPayload`],
//!   [`JobStatePayload`], [`PlanRunningPayload`], [`term_text`]).
//!
//! `docs/mqtt.md` describes the same protocol for people; `tests/fixtures/*.hex` pins its
//! bytes.

pub mod envelope;
pub mod flv;
pub mod job;
pub mod messages;
pub mod payloads;
pub mod topics;

pub use envelope::{
    check_clock_skew, open, seal, Envelope, InvalidNodeKey, NodeKey, ReplayGuard, SeqCounter,
    WireError, DEFAULT_MAX_CLOCK_SKEW_MS, MAX_ENVELOPE_BYTES, NODE_KEY_LEN, PROTOCOL_VERSION,
    TAG_LEN,
};
pub use job::{IllegalTransition, JobEvent, JobState, UnknownJobState};
pub use messages::{
    CancelRequest, Command, Event, JobDispatch, JobRef, LogLine, LogStream, MediaTag, Message,
    Outcome, PlanFile, StreamChunk,
};
pub use payloads::{
    term_text, JobStatePayload, JsonPayload, NodeStatus, NodeStatusPayload, PlanRunningPayload,
    TelemetryPayload,
};
pub use topics::{
    markdown_table, Direction, PayloadKind, PointName, QoS, Topic, TopicError, TopicKind,
    TopicPrefix, TopicSpec, DEFAULT_PREFIX, PUBLIC_ROOTS, TOPICS,
};
