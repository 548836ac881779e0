//! Sortie's device agent: takes jobs from the coordinator over MQTT, runs them, streams their
//! output, and reports how they ended — surviving broker outages and its own restarts.
//!
//! ```text
//!  coordinator ── Dispatch/Cancel/Ping/Ack/StreamStart/StreamStop ──▶ broker ──▶ agent ──▶ job process group
//!  coordinator ◀── Accepted/Started/LogBatch/Output/Finished/Heartbeat/Pong/PointHealth ── outbox (sled)
//!  coordinator ◀── StreamChunk (video points, while watched; not journaled) ── points
//!  watchers    ◀── nodes/{id}/msg/{point} (telemetry, retained) ── points ◀── hardware (hal)
//! ```
//!
//! Every event is written to a journal on disk before it is published and stays there until
//! the coordinator acknowledges it, so nothing is lost across outages or restarts. Commands are
//! authenticated with the node's key and checked against a persisted replay guard. Live data
//! (telemetry samples, video) is never queued for a link that is down: it is worth nothing late.
//!
//! # Layout
//! - [`config`]: the TOML / environment / flag configuration and its checks.
//! - [`agent`]: [`run`], which wires the tasks of one agent together and shuts them down.
//! - [`link`]: the task owning the MQTT event loop (reconnects, status, last will).
//! - [`outbox`]: publishes the journal's unacknowledged events in `seq` order.
//! - [`commands`]: authenticates incoming commands and routes them.
//! - [`supervisor`]: the job queue, cancels and tombstones; one job at a time.
//! - [`job`]: one job's life: files, environment, process, logs, stop path, outputs.
//! - [`journal`]: sled storage of job records, the outbox, `seq` and the replay guard.
//! - [`recovery`]: what a restart does with interrupted jobs; retention.
//! - [`heartbeat`]: periodic liveness events.
//! - [`points`]: the node's telemetry and video points: sources (hardware, commands, files, the
//!   demo clip), their supervision and health, publishing.
//! - [`hardware`]: the hardware layer on a thread of its own, the `hal.sock` socket jobs drive
//!   it through, and the `sortie-agent hal` client.
//! - [`blobs`]: the coordinator's blob API (download, upload).
//! - [`process`]: a job's process group, its output lines, and stopping it.
//! - [`swarm`]: many agents in one process, a simulated fleet.

pub mod agent;
pub mod blobs;
pub mod commands;
pub mod config;
pub mod hardware;
pub mod heartbeat;
pub mod job;
pub mod journal;
pub mod link;
pub mod outbox;
pub mod points;
pub mod process;
pub mod recovery;
pub mod supervisor;
pub mod swarm;
pub mod swarm_register;

#[cfg(test)]
mod testing;

pub use agent::{run, AgentError};
pub use config::{AgentConfig, ConfigError, ConfigLayer, DEFAULT_CONFIG};

/// The current time as Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
