//! Every MQTT topic, built and parsed from one table ([`TOPICS`]).
//!
//! ```text
//!  coordinator ── {prefix}/nodes/{node_id}/cmd ──▶ broker ──▶ agent        (sealed envelopes)
//!  coordinator ◀── {prefix}/nodes/{node_id}/evt ── broker ◀── agent
//!  watchers    ◀── nodes/…, plans/…, jobs/… ─────── broker ◀── coordinator, agents  (JSON, text)
//! ```
//!
//! The private topics live under a configurable [`TopicPrefix`] (default `sortie/v1`) so
//! several fleets can share a broker; the public ones keep gosd's names so existing watchers
//! work unchanged.

mod names;
mod table;

pub use names::{
    PointName, TopicError, TopicPrefix, DEFAULT_PREFIX, MAX_POINT_NAME_BYTES, MAX_TOPIC_BYTES,
    PUBLIC_ROOTS,
};
pub use table::{markdown_table, Direction, PayloadKind, QoS, TopicKind, TopicSpec, TOPICS};

use names::{check_chars, parse_id};

/// One concrete topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `{prefix}/nodes/{node_id}/cmd`
    NodeCommands {
        /// The agent's node.
        node_id: u64,
    },
    /// `{prefix}/nodes/{node_id}/evt`
    NodeEvents {
        /// The agent's node.
        node_id: u64,
    },
    /// `nodes/{node_id}/status`
    NodeStatus {
        /// The node.
        node_id: u64,
    },
    /// `plans/{plan_id}/running`
    PlanRunning {
        /// The plan.
        plan_id: u64,
    },
    /// `plans/{plan_id}/term`
    PlanTerm {
        /// The plan.
        plan_id: u64,
    },
    /// `jobs/{job_id}/state`
    JobStateChange {
        /// The job's global id.
        job_id: u64,
    },
    /// `nodes/{node_id}/msg/{point}`
    NodeTelemetry {
        /// The node.
        node_id: u64,
        /// The point.
        point: PointName,
    },
    /// `{prefix}/nodes/{node_id}/live/{point}`
    NodeStream {
        /// The node.
        node_id: u64,
        /// The video point.
        point: PointName,
    },
}

/// One level of a [`TopicSpec::pattern`].
enum Level<'a> {
    Prefix,
    Id,
    Point,
    Literal(&'a str),
}

impl<'a> Level<'a> {
    fn of(level: &'a str) -> Self {
        match level {
            "{prefix}" => Level::Prefix,
            "{node_id}" | "{plan_id}" | "{job_id}" => Level::Id,
            "{point}" => Level::Point,
            literal => Level::Literal(literal),
        }
    }
}

impl Topic {
    /// Which topic this is.
    pub fn kind(&self) -> TopicKind {
        match self {
            Topic::NodeCommands { .. } => TopicKind::NodeCommands,
            Topic::NodeEvents { .. } => TopicKind::NodeEvents,
            Topic::NodeStatus { .. } => TopicKind::NodeStatus,
            Topic::PlanRunning { .. } => TopicKind::PlanRunning,
            Topic::PlanTerm { .. } => TopicKind::PlanTerm,
            Topic::JobStateChange { .. } => TopicKind::JobStateChange,
            Topic::NodeTelemetry { .. } => TopicKind::NodeTelemetry,
            Topic::NodeStream { .. } => TopicKind::NodeStream,
        }
    }

    /// Its row of the table: direction, QoS, retain flag, payload.
    pub fn spec(&self) -> &'static TopicSpec {
        self.kind().spec()
    }

    /// The numeric id in the topic (node, plan or job, as the kind says).
    pub fn id(&self) -> u64 {
        match *self {
            Topic::NodeCommands { node_id }
            | Topic::NodeEvents { node_id }
            | Topic::NodeStatus { node_id }
            | Topic::NodeTelemetry { node_id, .. }
            | Topic::NodeStream { node_id, .. } => node_id,
            Topic::PlanRunning { plan_id } | Topic::PlanTerm { plan_id } => plan_id,
            Topic::JobStateChange { job_id } => job_id,
        }
    }

    /// The topic string to publish or subscribe to. `prefix` is used by private topics only.
    pub fn to_string(&self, prefix: &TopicPrefix) -> String {
        let point = match self {
            Topic::NodeTelemetry { point, .. } | Topic::NodeStream { point, .. } => point.as_str(),
            _ => "",
        };
        fill(self.spec().pattern, prefix, &self.id().to_string(), point)
    }

    /// Parses a topic string received from the broker. `parse(t.to_string(p), p) == t` for
    /// every topic `t`.
    pub fn parse(topic: &str, prefix: &TopicPrefix) -> Result<Topic, TopicError> {
        if topic.is_empty() {
            return Err(TopicError::Empty);
        }
        if topic.len() > MAX_TOPIC_BYTES {
            return Err(TopicError::TooLong { len: topic.len() });
        }
        check_chars(topic)?;
        if topic.split('/').any(str::is_empty) {
            return Err(TopicError::EmptySegment(topic.to_owned()));
        }
        for spec in &TOPICS {
            if let Some(parsed) = match_spec(spec, topic, prefix)? {
                return Ok(parsed);
            }
        }
        Err(TopicError::Unknown(topic.to_owned()))
    }

    /// `{prefix}/nodes/+/evt`: the coordinator's one subscription for every agent's events.
    pub fn all_events_filter(prefix: &TopicPrefix) -> String {
        TopicKind::NodeEvents.filter(prefix)
    }

    /// `nodes/+/status`: every node's online status.
    pub fn all_node_status_filter() -> String {
        TopicKind::NodeStatus.filter(&TopicPrefix::default())
    }

    /// `nodes/+/msg/+`: every node's telemetry.
    pub fn all_telemetry_filter() -> String {
        TopicKind::NodeTelemetry.filter(&TopicPrefix::default())
    }

    /// `{prefix}/nodes/+/live/+`: every node's video.
    pub fn all_streams_filter(prefix: &TopicPrefix) -> String {
        TopicKind::NodeStream.filter(prefix)
    }

    /// `jobs/+/state`: every job's state changes.
    pub fn all_job_states_filter() -> String {
        TopicKind::JobStateChange.filter(&TopicPrefix::default())
    }
}

impl TopicKind {
    /// A subscription filter matching this kind for every id (and point): each placeholder
    /// but the prefix becomes `+`.
    pub fn filter(self, prefix: &TopicPrefix) -> String {
        fill(self.spec().pattern, prefix, "+", "+")
    }
}

/// Fills a pattern's placeholders.
fn fill(pattern: &str, prefix: &TopicPrefix, id: &str, point: &str) -> String {
    pattern
        .split('/')
        .map(|level| match Level::of(level) {
            Level::Prefix => prefix.as_str(),
            Level::Id => id,
            Level::Point => point,
            Level::Literal(literal) => literal,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `Ok(None)` if `topic` is not of this kind; an error if it is, but an id or name is invalid.
fn match_spec(
    spec: &TopicSpec,
    topic: &str,
    prefix: &TopicPrefix,
) -> Result<Option<Topic>, TopicError> {
    let mut pattern: Vec<Level> = spec.pattern.split('/').map(Level::of).collect();
    let rest = if matches!(pattern.first(), Some(Level::Prefix)) {
        pattern.remove(0);
        match topic
            .strip_prefix(prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        {
            Some(rest) => rest,
            None => return Ok(None),
        }
    } else {
        topic
    };
    let levels: Vec<&str> = rest.split('/').collect();
    if levels.len() != pattern.len() {
        return Ok(None);
    }
    // Literals first, so an id error is only reported for the topic it belongs to.
    let literals_match = pattern
        .iter()
        .zip(&levels)
        .all(|(expected, level)| match expected {
            Level::Literal(literal) => literal == level,
            _ => true,
        });
    if !literals_match {
        return Ok(None);
    }
    let (mut id, mut point) = (None, None);
    for (expected, level) in pattern.iter().zip(&levels) {
        match expected {
            Level::Id => id = Some(parse_id(level)?),
            Level::Point => point = Some(PointName::new(*level)?),
            Level::Prefix | Level::Literal(_) => {}
        }
    }
    let Some(id) = id else {
        return Ok(None);
    };
    Ok(match (spec.kind, point) {
        (TopicKind::NodeCommands, _) => Some(Topic::NodeCommands { node_id: id }),
        (TopicKind::NodeEvents, _) => Some(Topic::NodeEvents { node_id: id }),
        (TopicKind::NodeStatus, _) => Some(Topic::NodeStatus { node_id: id }),
        (TopicKind::PlanRunning, _) => Some(Topic::PlanRunning { plan_id: id }),
        (TopicKind::PlanTerm, _) => Some(Topic::PlanTerm { plan_id: id }),
        (TopicKind::JobStateChange, _) => Some(Topic::JobStateChange { job_id: id }),
        (TopicKind::NodeTelemetry, Some(point)) => {
            Some(Topic::NodeTelemetry { node_id: id, point })
        }
        (TopicKind::NodeStream, Some(point)) => Some(Topic::NodeStream { node_id: id, point }),
        (TopicKind::NodeTelemetry | TopicKind::NodeStream, None) => None,
    })
}

#[cfg(test)]
mod tests;
