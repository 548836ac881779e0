//! The one table of every MQTT topic Sortie uses. Building, parsing, subscription filters and
//! the table in `docs/mqtt.md` all come from [`TOPICS`].

use std::fmt;

/// Which topic, without its ids. Declared in the order of [`TOPICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicKind {
    /// `{prefix}/nodes/{node_id}/cmd`: sealed [`Command`](crate::Command)s to one agent.
    NodeCommands,
    /// `{prefix}/nodes/{node_id}/evt`: sealed [`Event`](crate::Event)s from one agent.
    NodeEvents,
    /// `nodes/{node_id}/status`: [`NodeStatusPayload`](crate::NodeStatusPayload).
    NodeStatus,
    /// `plans/{plan_id}/running`: [`PlanRunningPayload`](crate::PlanRunningPayload).
    PlanRunning,
    /// `plans/{plan_id}/term`: the plan's job output as text ([`term_text`](crate::term_text)).
    PlanTerm,
    /// `jobs/{job_id}/state`: [`JobStatePayload`](crate::JobStatePayload), one per transition.
    JobStateChange,
    /// `nodes/{node_id}/msg/{point}`: one telemetry point's latest value, JSON.
    NodeTelemetry,
    /// `{prefix}/nodes/{node_id}/live/{point}`: sealed [`StreamChunk`](crate::StreamChunk)s of
    /// one video point.
    NodeStream,
}

impl TopicKind {
    /// Every kind, in table order.
    pub const ALL: [TopicKind; 8] = [
        TopicKind::NodeCommands,
        TopicKind::NodeEvents,
        TopicKind::NodeStatus,
        TopicKind::PlanRunning,
        TopicKind::PlanTerm,
        TopicKind::JobStateChange,
        TopicKind::NodeTelemetry,
        TopicKind::NodeStream,
    ];

    /// This kind's row of [`TOPICS`].
    pub fn spec(self) -> &'static TopicSpec {
        &TOPICS[self as usize]
    }
}

/// Who publishes a topic and who reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The coordinator publishes; one agent subscribes.
    CoordinatorToAgent,
    /// An agent publishes; the coordinator subscribes.
    AgentToCoordinator,
    /// An agent (or the broker, for its last will) publishes; anyone may watch.
    AgentToWatchers,
    /// The coordinator publishes; anyone may watch.
    CoordinatorToWatchers,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::CoordinatorToAgent => "coordinator → agent",
            Direction::AgentToCoordinator => "agent → coordinator",
            Direction::AgentToWatchers => "agent → watchers",
            Direction::CoordinatorToWatchers => "coordinator → watchers",
        })
    }
}

/// MQTT delivery guarantee. Our own type so this crate needs no MQTT client; the binaries
/// map it to their client's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QoS {
    /// QoS 0: fire and forget.
    AtMostOnce = 0,
    /// QoS 1: delivered, possibly more than once.
    AtLeastOnce = 1,
    /// QoS 2: delivered exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// The level as MQTT numbers it.
    pub fn level(self) -> u8 {
        self as u8
    }
}

/// How a topic's payload is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PayloadKind {
    /// A sealed [`Envelope`](crate::Envelope): postcard + HMAC-SHA256, see [`crate::envelope`].
    Envelope,
    /// UTF-8 JSON, for anyone watching.
    Json,
    /// UTF-8 plain text, for anyone watching.
    Text,
}

impl fmt::Display for PayloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PayloadKind::Envelope => "binary envelope",
            PayloadKind::Json => "JSON",
            PayloadKind::Text => "text",
        })
    }
}

/// One row of [`TOPICS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicSpec {
    /// Which topic.
    pub kind: TopicKind,
    /// The topic with placeholders: `{prefix}` (the configured private prefix, possibly
    /// several levels), one numeric `{node_id}`, `{plan_id}` or `{job_id}`, and `{point}`.
    pub pattern: &'static str,
    /// Who publishes, who reads.
    pub direction: Direction,
    /// Publish with this QoS (subscribers ask for the same).
    pub qos: QoS,
    /// Publish with the retain flag.
    pub retained: bool,
    /// Payload encoding.
    pub payload: PayloadKind,
    /// What it carries, for the docs.
    pub summary: &'static str,
}

impl TopicSpec {
    /// True for the authenticated, prefixed node channel topics.
    pub fn is_private(&self) -> bool {
        self.payload == PayloadKind::Envelope
    }
}

/// Every topic. Design notes, row by row:
/// - `cmd`/`evt` are QoS 1 and never retained: the envelope's `seq` already rejects
///   duplicates, and a retained command would be re-run by every reconnecting agent.
/// - `status` is retained so a new watcher sees every node at once; the agent's last will
///   publishes the `offline` payload on the same topic.
/// - `jobs/{id}/state` is not retained: it is a stream of changes, and retaining one message
///   per job forever would grow the broker without bound (`plans/{id}/running` is the
///   retained current view).
/// - `term` and telemetry are QoS 0: a lost line or sample is replaced by the next one.
/// - `live` is QoS 0 and not journaled: a late video frame is worth nothing, and QoS 1 would
///   make a slow uplink queue video instead of dropping it.
pub const TOPICS: [TopicSpec; 8] = [
    TopicSpec {
        kind: TopicKind::NodeCommands,
        pattern: "{prefix}/nodes/{node_id}/cmd",
        direction: Direction::CoordinatorToAgent,
        qos: QoS::AtLeastOnce,
        retained: false,
        payload: PayloadKind::Envelope,
        summary: "commands to one agent (dispatch, cancel, ping, ack)",
    },
    TopicSpec {
        kind: TopicKind::NodeEvents,
        pattern: "{prefix}/nodes/{node_id}/evt",
        direction: Direction::AgentToCoordinator,
        qos: QoS::AtLeastOnce,
        retained: false,
        payload: PayloadKind::Envelope,
        summary: "events from one agent (job progress, heartbeat, pong)",
    },
    TopicSpec {
        kind: TopicKind::NodeStatus,
        pattern: "nodes/{node_id}/status",
        direction: Direction::AgentToWatchers,
        qos: QoS::AtLeastOnce,
        retained: true,
        payload: PayloadKind::Json,
        summary: "`{\"status\":\"online\"|\"offline\",\"last_seen\":RFC 3339}`, also the last will",
    },
    TopicSpec {
        kind: TopicKind::PlanRunning,
        pattern: "plans/{plan_id}/running",
        direction: Direction::CoordinatorToWatchers,
        qos: QoS::AtLeastOnce,
        retained: true,
        payload: PayloadKind::Json,
        summary: "the plan's running job (as on `jobs/{job_id}/state`), or `{}` when idle",
    },
    TopicSpec {
        kind: TopicKind::PlanTerm,
        pattern: "plans/{plan_id}/term",
        direction: Direction::CoordinatorToWatchers,
        qos: QoS::AtMostOnce,
        retained: false,
        payload: PayloadKind::Text,
        summary: "the running job's output lines, each ending in `\\n`",
    },
    TopicSpec {
        kind: TopicKind::JobStateChange,
        pattern: "jobs/{job_id}/state",
        direction: Direction::CoordinatorToWatchers,
        qos: QoS::AtLeastOnce,
        retained: false,
        payload: PayloadKind::Json,
        summary: "one message per state transition of the job",
    },
    TopicSpec {
        kind: TopicKind::NodeTelemetry,
        pattern: "nodes/{node_id}/msg/{point}",
        direction: Direction::AgentToWatchers,
        qos: QoS::AtMostOnce,
        retained: true,
        payload: PayloadKind::Json,
        summary: "latest value of one telemetry point: `{\"at\":RFC 3339,\"value\":…}`",
    },
    TopicSpec {
        kind: TopicKind::NodeStream,
        pattern: "{prefix}/nodes/{node_id}/live/{point}",
        direction: Direction::AgentToCoordinator,
        qos: QoS::AtMostOnce,
        retained: false,
        payload: PayloadKind::Envelope,
        summary: "FLV tags of one video point while someone watches",
    },
];

/// The topic table as Markdown, the form `docs/mqtt.md` embeds (a test keeps them equal).
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| Topic | Direction | QoS | Retained | Payload | Carries |\n\
         |---|---|---|---|---|---|\n",
    );
    for spec in &TOPICS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} |\n",
            spec.pattern,
            spec.direction,
            spec.qos.level(),
            if spec.retained { "yes" } else { "no" },
            spec.payload,
            spec.summary.replace('|', "\\|"),
        ));
    }
    out
}
