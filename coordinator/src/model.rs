//! The coordinator's domain records, as stored and (mostly) as the API shows them.
//!
//! Field names and types follow gosd, so existing clients parse them unchanged: ids are JSON
//! numbers, blob ids inside `files` maps are strings, timestamps are RFC 3339 with microseconds.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sortie_shared::JobState;
use utoipa::ToSchema;

/// A point in time, serialized as RFC 3339 in UTC with microseconds (`2021-03-20T09:02:20.386117Z`),
/// the form gosd used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Timestamp(Utc::now())
    }

    /// Seconds since the Unix epoch.
    pub fn unix(self) -> i64 {
        self.0.timestamp()
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Timestamp(t.with_timezone(&Utc)))
            .map_err(serde::de::Error::custom)
    }
}

impl utoipa::PartialSchema for Timestamp {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::DateTime,
            )))
            .into()
    }
}

impl ToSchema for Timestamp {}

/// A string → string map (plan `extra`, blob ids in `files`). Sorted, so output is stable.
pub type StringMap = BTreeMap<String, String>;

/// A person or script that can log in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    /// Unique id.
    pub id: u64,
    /// Unique login name.
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Admins may create, change and delete nodes.
    pub admin: bool,
    /// When the user was created.
    pub created_at: Timestamp,
}

/// An OAuth client registered to use the password grant (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OAuthClient {
    /// The public client id.
    pub client_id: String,
    /// A label for people.
    pub name: String,
    /// SHA-256 of the secret, hex. Secrets are 256 random bits, so a fast hash is enough here
    /// (unlike passwords, they cannot be guessed from a dictionary).
    pub secret_sha256: String,
    /// When the client was registered.
    pub created_at: Timestamp,
}

/// What a token may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Sent as `Authorization: Bearer ...` on API calls.
    Access,
    /// Exchanged for a new access token with `grant_type=refresh_token`.
    Refresh,
    /// A node's agent: may download plan files and upload outputs, nothing else.
    Node,
}

/// A stored token. The token itself is never stored: the record is keyed by its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Whose token this is (0 for a node token).
    pub user_id: u64,
    /// Access or refresh.
    pub kind: TokenKind,
    /// The client it was issued to, if any (tokens from `token issue` have none).
    pub client_id: Option<String>,
    /// For a node token, the node.
    #[serde(default)]
    pub node_id: Option<u64>,
    /// Issued at (Unix seconds).
    pub created_at: i64,
    /// Expires at (Unix seconds).
    pub expires_at: i64,
}

/// Whether a node's agent is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum NodeStatus {
    /// The agent is connected.
    Online,
    /// The agent is not connected (or never was).
    #[default]
    Offline,
}

/// A device: a drone (`air`), a drone depot (`depot`) or a sensor mast (`mast`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Node {
    /// Globally unique node id.
    pub id: u64,
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The node's points (its live data feeds).
    pub points: Vec<Point>,
    /// `air`, `depot` or `mast`.
    pub type_name: String,
    /// Whether its agent is connected.
    #[serde(default)]
    pub status: NodeStatus,
    /// When its agent was last heard from.
    #[serde(default)]
    pub last_seen: Option<Timestamp>,
    /// When the node was created.
    pub created_at: Timestamp,
    /// When the node was last changed.
    pub updated_at: Timestamp,
}

/// A feed of live data from a node: video, telemetry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Point {
    /// Globally unique point id.
    pub id: u64,
    /// Name, unique within the node.
    pub name: String,
    /// The node it belongs to.
    pub node_id: u64,
    /// Numeric id of the point type (`livestream_flv` is 2, as in gosd).
    pub point_type_id: u64,
    /// The point type: `livestream_flv`, `drone-status`, `depot-status`, `weather` or custom.
    pub point_type_name: String,
    /// Type-specific parameters (a stream URL, a sampling rate, ...).
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

/// A stored file.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Blob {
    /// Globally unique blob id.
    pub id: u64,
    /// The uploaded file name, sanitized (no directories, no control characters).
    pub filename: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, hex.
    pub sha256: String,
    /// The media type given at upload, or guessed from the file name.
    pub content_type: String,
    /// When the blob was created.
    pub created_at: Timestamp,
    /// When its content was last replaced.
    pub updated_at: Timestamp,
}

/// Something to run on a node: files (blob ids) and `extra` settings.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Plan {
    /// Globally unique plan id.
    pub id: u64,
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The node that runs the plan.
    pub node_id: u64,
    /// Role → blob id (as a string), e.g. `{"script":"12"}`.
    pub files: StringMap,
    /// Setting → value, handed to the job as `SORTIE_EXTRA_<KEY>`.
    pub extra: StringMap,
    /// When the plan was created.
    pub created_at: Timestamp,
    /// When the plan was last changed.
    pub updated_at: Timestamp,
}

/// One run of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Globally unique job id.
    pub id: u64,
    /// Sequence number of this run within its plan (1, 2, ...).
    pub job_id: u64,
    /// The plan this is a run of.
    pub plan_id: u64,
    /// The node that runs it.
    pub node_id: u64,
    /// Per-job files (role → blob id), on top of the plan's.
    pub files: StringMap,
    /// Per-job inputs that override the plan's `extra` for this run.
    pub extra: StringMap,
    /// Where the job is in its life.
    #[schema(value_type = String, example = "pending")]
    pub status: JobState,
    /// When the job was created.
    pub created_at: Timestamp,
    /// When the job last changed.
    pub updated_at: Timestamp,
    /// When its process started.
    pub started_at: Option<Timestamp>,
    /// When it reached a final state.
    pub finished_at: Option<Timestamp>,
    /// The process's exit code, once it exited.
    pub exit_code: Option<i32>,
    /// Why it ended the way it did (`cancelled by demo`, `agent restarted`, ...).
    pub reason: Option<String>,
    /// Roles in `files` that the job produced (uploaded from its output dir), as opposed to
    /// its inputs.
    #[serde(default)]
    pub outputs: Vec<String>,
}
