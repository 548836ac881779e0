//! Payloads of the public topics, for anyone watching the broker: JSON and plain text.
//!
//! Unlike the envelope these are self-describing, so they evolve like the REST API: fields
//! may be added, never renamed or removed. Timestamps are RFC 3339 in UTC with microseconds
//! (`2021-03-20T09:02:20.386117Z`), as the REST API writes them.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::job::JobState;
use crate::messages::{JobRef, LogLine};

/// Encoding for the JSON payloads, so publisher and watchers in Rust agree on the bytes.
pub trait JsonPayload: Serialize + DeserializeOwned {
    /// The payload as compact JSON.
    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("payloads have string keys and always serialize")
    }

    /// Parses a payload received from the broker.
    fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

/// Whether a node's agent is connected to the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// Connected.
    Online,
    /// Disconnected (cleanly, or as announced by its last will).
    Offline,
}

/// `nodes/{node_id}/status`, retained. The agent publishes `online` when it connects and
/// registers `offline` as its last will; in the will, `last_seen` is the time of connecting,
/// the last moment the agent knew it was reachable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatusPayload {
    /// Online or offline.
    pub status: NodeStatus,
    /// When the agent was last known to be connected.
    #[serde(with = "rfc3339")]
    pub last_seen: DateTime<Utc>,
}

impl JsonPayload for NodeStatusPayload {}

/// `jobs/{job_id}/state`: one job state transition. Also the body of `plans/{plan_id}/running`.
///
/// Note: `job_id` here is the global job id (the REST API's `id`); the run number within the
/// plan (the REST API's `job_id`) is `job_seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStatePayload {
    /// Global job id.
    pub job_id: u64,
    /// The plan it is a run of.
    pub plan_id: u64,
    /// The run's number within its plan.
    pub job_seq: u64,
    /// The node running it.
    pub node_id: u64,
    /// The state after the transition.
    pub status: JobState,
    /// The state before it (`null` for a new job).
    #[serde(default)]
    pub previous_status: Option<JobState>,
    /// The process's exit code, once it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why the job ended the way it did.
    #[serde(default)]
    pub reason: Option<String>,
    /// When the transition happened.
    #[serde(with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl JobStatePayload {
    /// A transition of `job` on `node_id` to `status`, with no previous state, exit code or
    /// reason (set those fields as they apply).
    pub fn new(job: JobRef, node_id: u64, status: JobState, updated_at: DateTime<Utc>) -> Self {
        JobStatePayload {
            job_id: job.id,
            plan_id: job.plan_id,
            job_seq: job.job_seq,
            node_id,
            status,
            previous_status: None,
            exit_code: None,
            reason: None,
            updated_at,
        }
    }

    /// The job, as the private messages name it.
    pub fn job(&self) -> JobRef {
        JobRef {
            id: self.job_id,
            plan_id: self.plan_id,
            job_seq: self.job_seq,
        }
    }
}

impl JsonPayload for JobStatePayload {}

/// `plans/{plan_id}/running`, retained: the plan's running job, or `{}` when it has none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanRunningPayload(pub Option<JobStatePayload>);

#[derive(Deserialize)]
#[serde(untagged)]
enum RunningOrObject {
    Running(JobStatePayload),
    Object(serde_json::Map<String, serde_json::Value>),
}

impl Serialize for PlanRunningPayload {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Some(job) => job.serialize(s),
            None => serde_json::Map::new().serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for PlanRunningPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match RunningOrObject::deserialize(d)? {
            RunningOrObject::Running(job) => Ok(PlanRunningPayload(Some(job))),
            RunningOrObject::Object(object) if object.is_empty() => Ok(PlanRunningPayload(None)),
            // Not "idle": a job object that is missing fields or has the wrong types.
            RunningOrObject::Object(_) => Err(serde::de::Error::custom(
                "expected {} or a job state object",
            )),
        }
    }
}

impl JsonPayload for PlanRunningPayload {}

/// `nodes/{node_id}/msg/{point}`, retained: the latest value of one telemetry point, so a
/// new subscriber sees it at once. The agent publishes it; the coordinator keeps the latest
/// per point for `GET /api/v1/nodes/{id}/points/{point_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TelemetryPayload {
    /// When the agent sampled it.
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The reading: an object whose fields depend on the point type (`drone-status`,
    /// `depot-status`, or whatever a custom source prints).
    pub value: serde_json::Value,
}

impl JsonPayload for TelemetryPayload {}

/// `plans/{plan_id}/term`: log lines as plain text, each ending in `\n`, stdout and stderr
/// interleaved as they arrived.
pub fn term_text(lines: &[LogLine]) -> String {
    let mut text = String::with_capacity(lines.iter().map(|l| l.text.len() + 1).sum());
    for line in lines {
        text.push_str(&line.text);
        text.push('\n');
    }
    text
}

/// RFC 3339 in UTC with microseconds; any offset is accepted on input.
mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Micros, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::LogStream;

    fn at() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2021-03-20T09:02:20.386117Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn job_state() -> JobStatePayload {
        let job = JobRef {
            id: 1001,
            plan_id: 12,
            job_seq: 3,
        };
        JobStatePayload {
            previous_status: Some(JobState::Dispatched),
            ..JobStatePayload::new(job, 7, JobState::Running, at())
        }
    }

    #[test]
    fn node_status_json_is_pinned() {
        let payload = NodeStatusPayload {
            status: NodeStatus::Offline,
            last_seen: at(),
        };
        let json = String::from_utf8(payload.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"status":"offline","last_seen":"2021-03-20T09:02:20.386117Z"}"#
        );
        assert_eq!(
            NodeStatusPayload::from_json(json.as_bytes()).unwrap(),
            payload
        );
        let offset = br#"{"status":"online","last_seen":"2021-03-20T10:02:20.386117+01:00"}"#;
        assert_eq!(
            NodeStatusPayload::from_json(offset).unwrap().last_seen,
            at()
        );
        assert!(NodeStatusPayload::from_json(br#"{"status":"away","last_seen":"x"}"#).is_err());
    }

    #[test]
    fn job_state_json_is_pinned() {
        let payload = job_state();
        let json = String::from_utf8(payload.to_json()).unwrap();
        assert_eq!(
            json,
            r#"{"job_id":1001,"plan_id":12,"job_seq":3,"node_id":7,"status":"running","previous_status":"dispatched","exit_code":null,"reason":null,"updated_at":"2021-03-20T09:02:20.386117Z"}"#
        );
        assert_eq!(
            JobStatePayload::from_json(json.as_bytes()).unwrap(),
            payload
        );
        assert_eq!(payload.job().id, 1001);
        // Optional fields may be left out by other publishers.
        let minimal = br#"{"job_id":1,"plan_id":2,"job_seq":3,"node_id":4,"status":"success","updated_at":"2021-03-20T09:02:20Z"}"#;
        assert_eq!(JobStatePayload::from_json(minimal).unwrap().exit_code, None);
    }

    #[test]
    fn plan_running_is_the_job_or_an_empty_object() {
        let idle = PlanRunningPayload(None);
        assert_eq!(idle.to_json(), b"{}");
        assert_eq!(PlanRunningPayload::from_json(b"{}").unwrap(), idle);
        assert_eq!(PlanRunningPayload::from_json(b" { } ").unwrap(), idle);

        let running = PlanRunningPayload(Some(job_state()));
        assert_eq!(running.to_json(), job_state().to_json());
        assert_eq!(
            PlanRunningPayload::from_json(&running.to_json()).unwrap(),
            running
        );

        // A broken job object is an error, not "idle".
        assert!(PlanRunningPayload::from_json(br#"{"job_id":1}"#).is_err());
        assert!(PlanRunningPayload::from_json(b"[]").is_err());
    }

    #[test]
    fn term_text_ends_every_line() {
        let line = |text: &str| LogLine {
            stream: LogStream::Stdout,
            at_ms: 0,
            text: text.into(),
        };
        assert_eq!(term_text(&[]), "");
        assert_eq!(term_text(&[line("a"), line(""), line("b")]), "a\n\nb\n");
    }
}
