//! The agent's configuration: a TOML file, `SORTIE_AGENT_<KEY>` environment variables and
//! command-line flags, merged in that order (later wins) over the defaults, then checked once
//! by [`ConfigLayer::resolve`] into an [`AgentConfig`].
//!
//! `sortie-coordinator node agent-config ID` prints a complete file for one node;
//! `sortie-agent print-default-config` prints [`DEFAULT_CONFIG`] with every key explained.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sortie_shared::{NodeKey, TopicPrefix, DEFAULT_PREFIX};

mod hal;
mod mqtt_url;
mod points;

pub use mqtt_url::{MqttEndpoint, RedactedUrl};
pub use points::{
    PointConfig, PointEntry, PointSpec, Reading, TelemetrySource, VideoSource, RATE_HZ_RANGE,
};

/// Where the agent keeps its data when `data_dir` is not set.
pub const DEFAULT_DATA_DIR: &str = "./sortie-agent-data";

/// The file `print-default-config` writes, with every key documented. Placeholders in
/// `api_token` and `node_key` are empty, so the file does not validate until they are filled in.
pub const DEFAULT_CONFIG: &str = r#"# sortie-agent configuration.
# `sortie-coordinator node agent-config ID` prints this file filled in for one node.
# Every key can also be set as an environment variable SORTIE_AGENT_<KEY> (upper case) or as a
# flag --<key-with-dashes>; flags win over the environment, which wins over this file.

# The node this agent runs (its id in the coordinator).
node_id = 1
# The broker. The user must be node-<node_id>; the client id is always sortie-node-<node_id>.
# Plain TCP only (mqtt:// or tcp://): this build has no TLS.
mqtt_url = "mqtt://node-1:PASSWORD@127.0.0.1:1883"
# Prefix of the private topics; must match the coordinator's.
mqtt_prefix = "sortie/v1"
# The coordinator's HTTP base URL, including its base path (plan files, output uploads).
coordinator_url = "http://127.0.0.1:8000/gosd"
# Bearer token for blob downloads and uploads (64 hex digits).
api_token = ""
# The node's key that authenticates every MQTT envelope (64 hex digits).
node_key = ""
# Journal (sled), job work directories and the file cache.
data_dir = "./sortie-agent-data"
# Seconds between SIGTERM and SIGKILL when a job is stopped.
kill_grace_secs = 3
# Seconds between heartbeats while connected.
heartbeat_secs = 5
# Finished jobs (journal entry and work directory) are removed after this many seconds.
retention_secs = 604800
# Shell command run before a job is stopped (cancel, timeout, link loss, agent stop), to put
# the hardware in a safe state. Empty: none.
safe_state_command = ""
# Time limit for jobs whose dispatch has none, in seconds. 0: no limit.
default_timeout_secs = 0

# The keys below are read from this file only (no environment variable or flag).

# Hardware steps run before a job is stopped, before safe_state_command; each step's result goes
# into the job's log. Needs [hal]. A step is { set = OUTPUT, to = LEVEL },
# { wait_ms = MS } or { expect = INPUT, to = LEVEL, within_ms = MS }; levels are on/off,
# open/close, high/low, true/false or 1/0. Every step runs even if one before it failed.
# safe_state = [{ set = "estop", to = "on" }, { set = "door", to = "close" }]

# The hardware layer. Without a [hal] table the agent has no hardware: `source = "hal"` points
# and safe_state are refused. A bad pin or a missing device stops the agent at start.
# Jobs (and you) drive it through the running agent: `sortie-agent hal set door open`,
# `sortie-agent hal get door`, `sortie-agent hal status` (the socket is <data_dir>/hal.sock;
# jobs find it in SORTIE_HAL_SOCKET).
# [hal]
# backend = "sim"        # sim: the built-in drone/depot simulator; rpi: BCM GPIO numbers;
#                        # linux: GPIO character device lines (gpio_chip = "/dev/gpiochip0")
# [hal.sim]
# kind = "drone"         # or "depot"; jobs make the simulated drone fly (see sortie-hal docs)
# seed = 1
# [hal.outputs.estop]    # a digital output named "estop"
# pin = 5
# active_low = false
# initial = false
# [hal.outputs.door]     # on = open
# pin = 17
# [hal.inputs.door_closed]
# pin = 27
# active_low = true
# pull = "up"            # up, down or none
# [hal.sensors.battery]  # battery and climate feed the status readings
# driver = "ina219"      # or "shtc3"
# bus = "/dev/i2c-1"
# [hal.serial.fc]
# path = "/dev/ttyAMA0"
# baud = 57600

# Points: live data the agent publishes itself, one [[points]] table each. `name` is the
# point's name on the coordinator. Sources that fail are restarted (1 s doubling to 30 s) and
# reported as PointHealth events.
#
# Telemetry: JSON samples on nodes/<node_id>/msg/<name> (retained).
# [[points]]
# name = "status"
# kind = "telemetry"
# source = "hal"         # a reading of [hal]...
# reading = "drone-status"   # or "depot-status"
# rate_hz = 1.0          # samples per second, 0.1 to 100
# [[points]]
# name = "weather"
# kind = "telemetry"
# source = "command"     # ...or a command printing one JSON value per line (sh -c, restarted
# command = "while true; do read-sensor --json; sleep 5; done"   # when it exits)
#
# Video: FLV, sent to the coordinator while someone watches (or always, with always_on).
# [[points]]
# name = "camera"
# kind = "video"
# source = "command"     # a command writing FLV to stdout (sh -c, its own process group)...
# command = "rpicam-vid -t 0 -n --inline --intra 25 --codec h264 -o - | ffmpeg -f h264 -framerate 30 -i - -c:v copy -f flv -"
# always_on = false
# [[points]]
# name = "replay"
# kind = "video"
# source = "file"        # ...an FLV file looped in real time...
# path = "/var/lib/sortie/clip.flv"
# [[points]]
# name = "demo"
# kind = "video"
# source = "demo"        # ...or the test clip built into the agent.
"#;

/// One layer of configuration: a file, or the environment and flags. Every key is optional
/// here; [`resolve`](ConfigLayer::resolve) fills defaults and checks the result.
///
/// The same struct parses the TOML file (serde) and the flags and `SORTIE_AGENT_<KEY>`
/// variables (clap), so the three cannot drift apart.
#[derive(Clone, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ConfigLayer {
    /// The node this agent runs.
    #[arg(long, env = "SORTIE_AGENT_NODE_ID")]
    pub node_id: Option<u64>,
    /// Broker URL, `mqtt://node-<id>:<password>@host:port`.
    #[arg(long, env = "SORTIE_AGENT_MQTT_URL", hide_env_values = true)]
    pub mqtt_url: Option<String>,
    /// Prefix of the private topics.
    #[arg(long, env = "SORTIE_AGENT_MQTT_PREFIX")]
    pub mqtt_prefix: Option<String>,
    /// The coordinator's base URL, base path included.
    #[arg(long, env = "SORTIE_AGENT_COORDINATOR_URL")]
    pub coordinator_url: Option<String>,
    /// Bearer token for blob downloads and uploads (prefer the environment: flags show in `ps`).
    #[arg(long, env = "SORTIE_AGENT_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<String>,
    /// The node's envelope key, 64 hex digits (prefer the environment: flags show in `ps`).
    #[arg(long, env = "SORTIE_AGENT_NODE_KEY", hide_env_values = true)]
    pub node_key: Option<String>,
    /// Journal, work directories and file cache.
    #[arg(long, env = "SORTIE_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Seconds between SIGTERM and SIGKILL when stopping a job.
    #[arg(long, env = "SORTIE_AGENT_KILL_GRACE_SECS")]
    pub kill_grace_secs: Option<u64>,
    /// Seconds between heartbeats.
    #[arg(long, env = "SORTIE_AGENT_HEARTBEAT_SECS")]
    pub heartbeat_secs: Option<u64>,
    /// Seconds a finished job is kept in the journal and on disk.
    #[arg(long, env = "SORTIE_AGENT_RETENTION_SECS")]
    pub retention_secs: Option<u64>,
    /// Shell command that puts the hardware in a safe state before a job is stopped.
    #[arg(long, env = "SORTIE_AGENT_SAFE_STATE_COMMAND")]
    pub safe_state_command: Option<String>,
    /// Time limit for jobs dispatched without one, seconds; 0 for none.
    #[arg(long, env = "SORTIE_AGENT_DEFAULT_TIMEOUT_SECS")]
    pub default_timeout_secs: Option<u64>,
    /// The node's points (`[[points]]`); file only.
    #[arg(skip)]
    pub points: Option<Vec<PointEntry>>,
    /// The hardware layer (`[hal]`, `sortie_hal::HalConfig`), checked in `resolve`; file only.
    #[arg(skip)]
    pub hal: Option<toml::Table>,
    /// Hardware steps run before a job is stopped (`sortie_hal::Step`s); file only.
    #[arg(skip)]
    pub safe_state: Option<Vec<toml::Table>>,
}

/// A checked configuration.
#[derive(Clone)]
pub struct AgentConfig {
    /// The node this agent runs.
    pub node_id: u64,
    /// Where the broker is and how to log in.
    pub mqtt: MqttEndpoint,
    /// Prefix of the private topics.
    pub mqtt_prefix: TopicPrefix,
    /// The coordinator's base URL without a trailing slash.
    pub coordinator_url: String,
    /// Bearer token for the blob API.
    pub api_token: String,
    /// The node's envelope key.
    pub node_key: NodeKey,
    /// Journal, work directories and file cache.
    pub data_dir: PathBuf,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Between heartbeats.
    pub heartbeat: Duration,
    /// How long finished jobs are kept.
    pub retention: Duration,
    /// Run before stopping a job; `None` when not configured.
    pub safe_state_command: Option<String>,
    /// Time limit for jobs dispatched without one; `None` for no limit.
    pub default_timeout: Option<Duration>,
    /// The node's points.
    pub points: Vec<PointConfig>,
    /// The hardware layer; `None` when the file has no `[hal]` table.
    pub hal: Option<sortie_hal::HalConfig>,
    /// Hardware steps run before a job is stopped, before `safe_state_command`.
    pub safe_state: Vec<sortie_hal::Step>,
}

/// Why a configuration was refused. The message names the key and never echoes a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML for this struct.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A required key is not set anywhere.
    #[error("`{0}` is not set (in the file, as SORTIE_AGENT_{upper}, or as a flag)", upper = .0.to_uppercase())]
    Missing(&'static str),
    /// A key has a value that cannot work.
    #[error("`{key}`: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A key inside a table or an array entry (`points[2].rate_hz`, `hal.outputs.door.pin`)
    /// has a value that cannot work.
    #[error("`{key}`: {reason}")]
    Entry {
        /// The key's full path.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        reason: reason.into(),
    }
}

impl ConfigLayer {
    /// Reads a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    /// This layer with every key set in `over` replaced by `over`'s value.
    pub fn merge(self, over: ConfigLayer) -> ConfigLayer {
        ConfigLayer {
            node_id: over.node_id.or(self.node_id),
            mqtt_url: over.mqtt_url.or(self.mqtt_url),
            mqtt_prefix: over.mqtt_prefix.or(self.mqtt_prefix),
            coordinator_url: over.coordinator_url.or(self.coordinator_url),
            api_token: over.api_token.or(self.api_token),
            node_key: over.node_key.or(self.node_key),
            data_dir: over.data_dir.or(self.data_dir),
            kill_grace_secs: over.kill_grace_secs.or(self.kill_grace_secs),
            heartbeat_secs: over.heartbeat_secs.or(self.heartbeat_secs),
            retention_secs: over.retention_secs.or(self.retention_secs),
            safe_state_command: over.safe_state_command.or(self.safe_state_command),
            default_timeout_secs: over.default_timeout_secs.or(self.default_timeout_secs),
            points: over.points.or(self.points),
            hal: over.hal.or(self.hal),
            safe_state: over.safe_state.or(self.safe_state),
        }
    }

    /// Fills the defaults and validates every key.
    pub fn resolve(self) -> Result<AgentConfig, ConfigError> {
        let node_id = self.node_id.ok_or(ConfigError::Missing("node_id"))?;
        let mqtt_url = self.mqtt_url.ok_or(ConfigError::Missing("mqtt_url"))?;
        let mqtt = MqttEndpoint::parse(&mqtt_url, node_id).map_err(|r| invalid("mqtt_url", r))?;
        let mqtt_prefix = TopicPrefix::new(self.mqtt_prefix.unwrap_or(DEFAULT_PREFIX.into()))
            .map_err(|e| invalid("mqtt_prefix", e.to_string()))?;
        let coordinator_url = self
            .coordinator_url
            .ok_or(ConfigError::Missing("coordinator_url"))?;
        let coordinator_url = check_coordinator_url(&coordinator_url)?;
        let api_token = self.api_token.ok_or(ConfigError::Missing("api_token"))?;
        let api_token = api_token.trim().to_owned();
        if api_token.is_empty() || api_token.contains(char::is_whitespace) {
            return Err(invalid("api_token", "must be one non-empty word"));
        }
        let node_key = self.node_key.ok_or(ConfigError::Missing("node_key"))?;
        let node_key =
            NodeKey::from_hex(&node_key).map_err(|e| invalid("node_key", e.to_string()))?;
        let data_dir = self.data_dir.unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        if data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let heartbeat_secs = self.heartbeat_secs.unwrap_or(5);
        if heartbeat_secs == 0 {
            return Err(invalid("heartbeat_secs", "must be at least 1"));
        }
        let retention_secs = self.retention_secs.unwrap_or(7 * 24 * 3600);
        if retention_secs == 0 {
            return Err(invalid(
                "retention_secs",
                "must be at least 1 (finished jobs are remembered so a redelivered dispatch is not run twice)",
            ));
        }
        let safe_state_command = self.safe_state_command.filter(|c| !c.trim().is_empty());
        let hal = self.hal.map(hal::resolve_hal).transpose()?;
        let safe_state = hal::resolve_steps(self.safe_state.unwrap_or_default(), hal.as_ref())?;
        let points = points::resolve_points(&self.points.unwrap_or_default(), hal.is_some())?;
        Ok(AgentConfig {
            node_id,
            mqtt,
            mqtt_prefix,
            coordinator_url,
            api_token,
            node_key,
            data_dir,
            kill_grace: Duration::from_secs(self.kill_grace_secs.unwrap_or(3)),
            heartbeat: Duration::from_secs(heartbeat_secs),
            retention: Duration::from_secs(retention_secs),
            safe_state_command,
            default_timeout: self
                .default_timeout_secs
                .filter(|&s| s > 0)
                .map(Duration::from_secs),
            points,
            hal,
            safe_state,
        })
    }
}

/// `http://host[:port][/base]`, returned without a trailing slash.
fn check_coordinator_url(text: &str) -> Result<String, ConfigError> {
    let url = url::Url::parse(text.trim())
        .map_err(|e| invalid("coordinator_url", format!("not a URL: {e}")))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(invalid(
                "coordinator_url",
                "https needs TLS, which this build leaves out to stay pure Rust; use http:// \
                 (on a trusted network or through a local TLS proxy)",
            ))
        }
        other => {
            return Err(invalid(
                "coordinator_url",
                format!("unsupported scheme {other:?}"),
            ))
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("coordinator_url", "has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "coordinator_url",
            "must not have a query or fragment",
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

impl fmt::Debug for ConfigLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConfigLayer")
            .field("node_id", &self.node_id)
            .field("mqtt_url", &self.mqtt_url.as_deref().map(RedactedUrl))
            .field("coordinator_url", &self.coordinator_url)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentConfig")
            .field("node_id", &self.node_id)
            .field("mqtt", &self.mqtt)
            .field("mqtt_prefix", &self.mqtt_prefix.as_str())
            .field("coordinator_url", &self.coordinator_url)
            .field("api_token", &"<redacted>")
            .field("node_key", &self.node_key)
            .field("data_dir", &self.data_dir)
            .field("kill_grace", &self.kill_grace)
            .field("heartbeat", &self.heartbeat)
            .field("retention", &self.retention)
            .field("safe_state_command", &self.safe_state_command)
            .field("default_timeout", &self.default_timeout)
            .field("points", &self.points)
            .field("hal", &self.hal)
            .field("safe_state", &self.safe_state)
            .finish()
    }
}

#[cfg(test)]
mod tests;
