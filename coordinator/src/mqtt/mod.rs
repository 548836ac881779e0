//! The MQTT side of the coordinator: the embedded broker and the relay that carries work to
//! devices and their events back.
//!
//! ```text
//!  API handler ──RelayRequest──▶ relay task ──publish cmd──▶ broker ──▶ agent
//!                                   ▲   │
//!     link task (owns EventLoop) ───┘   └─ store (job states, logs) ─▶ LiveEvent broadcast
//!                                          └─ public JSON topics (jobs/+/state, plans/+/term)
//! ```
//!
//! # Layout
//! - `broker.rs`: the embedded rumqttd broker and its authentication.
//! - `link.rs`: the task that owns rumqttc's `EventLoop` and reconnects with backoff.
//! - `relay.rs`: the relay task: verifies and applies agent events, acknowledges them.
//! - `dispatch.rs`: building dispatches, timeouts, the pending TTL.

pub mod broker;
mod dispatch;
mod link;
mod relay;

use std::sync::Arc;
use std::time::Duration;

use sortie_shared::TopicPrefix;
use tokio::sync::{broadcast, mpsc};

pub use relay::run as run_relay;

use crate::model::Job;
use crate::store::StoredLogLine;

/// Where and how the coordinator reaches the broker.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT user name, if the broker wants one.
    pub username: Option<String>,
    /// MQTT password.
    pub password: Option<String>,
    /// Prefix of the private topics.
    pub prefix: TopicPrefix,
    /// A job's time limit when its plan sets no `extra.timeout_s` (None: no limit).
    pub default_timeout: Option<Duration>,
    /// How long a job may wait for an offline node before it times out.
    pub pending_ttl: Duration,
    /// A node that sent no heartbeat for this long is offline.
    pub heartbeat_timeout: Duration,
}

/// What the API asks of the relay.
#[derive(Debug, Clone)]
pub enum RelayRequest {
    /// A job was created: dispatch it if its node is online.
    JobCreated(Job),
    /// A dispatched job was cancelled: tell its node now.
    Cancel {
        /// The job, now `canceling`.
        job: Job,
        /// Why, for the agent's log.
        reason: String,
    },
    /// Send a command that is not about a job (stream start and stop).
    NodeCommand {
        /// The node.
        node_id: u64,
        /// The command.
        command: sortie_shared::Command,
    },
}

/// Something that just happened, for live views (log follow, later the event stream).
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// New log lines of a job.
    Log {
        /// Global job id.
        job_id: u64,
        /// The lines, in order.
        lines: Arc<Vec<StoredLogLine>>,
    },
    /// A job changed state.
    Job(Arc<Job>),
}

/// The API's handle on the relay.
#[derive(Debug, Clone)]
pub struct RelayHandle {
    requests: Option<mpsc::Sender<RelayRequest>>,
    live: broadcast::Sender<LiveEvent>,
}

impl RelayHandle {
    /// A handle and the receiving end the relay task consumes.
    pub fn new() -> (RelayHandle, mpsc::Receiver<RelayRequest>) {
        let (tx, rx) = mpsc::channel(4096);
        let (live, _) = broadcast::channel(4096);
        (
            RelayHandle {
                requests: Some(tx),
                live,
            },
            rx,
        )
    }

    /// A handle with no relay behind it (router tests): requests go nowhere.
    pub fn detached() -> RelayHandle {
        let (live, _) = broadcast::channel(16);
        RelayHandle {
            requests: None,
            live,
        }
    }

    /// Passes a request to the relay. A relay that is gone (shutting down) is not an error for
    /// the caller: the job is stored and the next start picks it up.
    pub async fn send(&self, request: RelayRequest) {
        if let Some(tx) = &self.requests {
            if tx.send(request).await.is_err() {
                tracing::warn!("the MQTT relay is not running; the request waits for its restart");
            }
        }
    }

    /// Subscribes to live events.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.live.subscribe()
    }

    /// Publishes a live event to subscribers (if any).
    pub(crate) fn publish_live(&self, event: LiveEvent) {
        let _ = self.live.send(event);
    }
}
