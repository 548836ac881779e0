//! The `[[points]]` entries: what each of the node's points publishes and where its data comes
//! from. Parsed loosely (every key optional, strings for the enums) so that
//! [`resolve_points`] can name the exact entry and key that is wrong (`points[2].rate_hz`),
//! which serde's own messages cannot.

use std::collections::HashSet;
use std::path::PathBuf;

use serde::Deserialize;
use sortie_shared::PointName;

use super::ConfigError;

/// Lowest and highest `rate_hz` of a `hal` telemetry source.
pub const RATE_HZ_RANGE: std::ops::RangeInclusive<f64> = 0.1..=100.0;

/// One `[[points]]` table as written in the file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointEntry {
    /// The point's name on the coordinator.
    pub name: Option<String>,
    /// `telemetry` or `video`.
    pub kind: Option<String>,
    /// telemetry: `hal` or `command`; video: `command`, `file` or `demo`.
    pub source: Option<String>,
    /// `hal` only: `drone-status` or `depot-status`.
    pub reading: Option<String>,
    /// `hal` only: samples per second.
    pub rate_hz: Option<f64>,
    /// `command` only: a `/bin/sh -c` command line.
    pub command: Option<String>,
    /// `file` only: an FLV file to loop.
    pub path: Option<PathBuf>,
    /// video only: stream even when nobody watches.
    pub always_on: Option<bool>,
}

/// A checked point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointConfig {
    /// Its name (a valid topic level).
    pub name: PointName,
    /// What it publishes, from where.
    pub spec: PointSpec,
}

/// What a point publishes.
#[derive(Debug, Clone, PartialEq)]
pub enum PointSpec {
    /// JSON samples on the retained `nodes/{id}/msg/{point}`.
    Telemetry(TelemetrySource),
    /// FLV tags on `{prefix}/nodes/{id}/live/{point}` while someone watches (or always).
    Video {
        /// Where the FLV comes from.
        source: VideoSource,
        /// Stream from the agent's start, viewers or not.
        always_on: bool,
    },
}

/// Where telemetry samples come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TelemetrySource {
    /// The hardware layer, sampled at a fixed rate.
    Hal {
        /// Which reading.
        reading: Reading,
        /// Samples per second.
        rate_hz: f64,
    },
    /// A supervised command printing one JSON value per line.
    Command(String),
}

/// A reading of the hardware layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// `Hardware::drone_status`.
    DroneStatus,
    /// `Hardware::depot_status`.
    DepotStatus,
}

impl Reading {
    /// The name in the config file (and the coordinator's point type).
    pub fn as_str(self) -> &'static str {
        match self {
            Reading::DroneStatus => "drone-status",
            Reading::DepotStatus => "depot-status",
        }
    }
}

/// Where a video point's FLV comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VideoSource {
    /// A supervised command writing FLV to stdout.
    Command(String),
    /// An FLV file, looped in real time.
    File(PathBuf),
    /// The clip built into the agent, looped in real time.
    Demo,
}

impl PointSpec {
    /// Whether it reads the hardware layer.
    pub fn needs_hardware(&self) -> bool {
        matches!(self, PointSpec::Telemetry(TelemetrySource::Hal { .. }))
    }
}

/// Checks every entry; `has_hardware` says whether a `[hal]` table is configured.
pub fn resolve_points(
    entries: &[PointEntry],
    has_hardware: bool,
) -> Result<Vec<PointConfig>, ConfigError> {
    let mut names = HashSet::new();
    let mut points = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let point = resolve_one(i, entry, has_hardware)?;
        if !names.insert(point.name.as_str().to_owned()) {
            return Err(bad(
                i,
                "name",
                format!("{:?} is used by an earlier point", point.name.as_str()),
            ));
        }
        points.push(point);
    }
    Ok(points)
}

fn bad(index: usize, key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Entry {
        key: format!("points[{index}].{key}"),
        reason: reason.into(),
    }
}

fn resolve_one(
    i: usize,
    entry: &PointEntry,
    has_hardware: bool,
) -> Result<PointConfig, ConfigError> {
    let name = entry
        .name
        .as_deref()
        .ok_or_else(|| bad(i, "name", "is not set"))?;
    let name = PointName::new(name).map_err(|e| bad(i, "name", e.to_string()))?;
    let kind = entry
        .kind
        .as_deref()
        .ok_or_else(|| bad(i, "kind", "is not set (telemetry or video)"))?;
    let source = entry.source.as_deref().ok_or_else(|| {
        let choices = match kind {
            "video" => "command, file or demo",
            _ => "hal or command",
        };
        bad(i, "source", format!("is not set ({choices})"))
    })?;
    // Keys that only one source uses must not sit on another: a typo'd source would otherwise
    // silently ignore them.
    let only = |key: &str, set: bool, owner: &str| {
        if set {
            Err(bad(i, key, format!("only applies to {owner}")))
        } else {
            Ok(())
        }
    };
    let spec = match kind {
        "telemetry" => {
            only("always_on", entry.always_on.is_some(), "video points")?;
            only("path", entry.path.is_some(), "source = \"file\" (video)")?;
            match source {
                "hal" => {
                    only("command", entry.command.is_some(), "source = \"command\"")?;
                    if !has_hardware {
                        return Err(bad(
                            i,
                            "source",
                            "\"hal\" needs the hardware layer, but there is no [hal] table",
                        ));
                    }
                    let reading = match entry.reading.as_deref() {
                        Some("drone-status") => Reading::DroneStatus,
                        Some("depot-status") => Reading::DepotStatus,
                        Some(other) => {
                            return Err(bad(
                                i,
                                "reading",
                                format!("{other:?} is not drone-status or depot-status"),
                            ))
                        }
                        None => {
                            return Err(bad(
                                i,
                                "reading",
                                "is not set (drone-status or depot-status)",
                            ))
                        }
                    };
                    let rate_hz = entry.rate_hz.unwrap_or(1.0);
                    if !RATE_HZ_RANGE.contains(&rate_hz) {
                        return Err(bad(
                            i,
                            "rate_hz",
                            format!(
                                "{rate_hz} is outside {} ..= {}",
                                RATE_HZ_RANGE.start(),
                                RATE_HZ_RANGE.end()
                            ),
                        ));
                    }
                    PointSpec::Telemetry(TelemetrySource::Hal { reading, rate_hz })
                }
                "command" => {
                    only("reading", entry.reading.is_some(), "source = \"hal\"")?;
                    only("rate_hz", entry.rate_hz.is_some(), "source = \"hal\"")?;
                    PointSpec::Telemetry(TelemetrySource::Command(command(i, entry)?))
                }
                other => {
                    return Err(bad(
                        i,
                        "source",
                        format!("{other:?} is not a telemetry source (hal or command)"),
                    ))
                }
            }
        }
        "video" => {
            only(
                "reading",
                entry.reading.is_some(),
                "source = \"hal\" (telemetry)",
            )?;
            only(
                "rate_hz",
                entry.rate_hz.is_some(),
                "source = \"hal\" (telemetry)",
            )?;
            let source = match source {
                "command" => {
                    only("path", entry.path.is_some(), "source = \"file\"")?;
                    VideoSource::Command(command(i, entry)?)
                }
                "file" => {
                    only("command", entry.command.is_some(), "source = \"command\"")?;
                    match &entry.path {
                        Some(path) if !path.as_os_str().is_empty() => {
                            VideoSource::File(path.clone())
                        }
                        _ => return Err(bad(i, "path", "is not set (an FLV file to loop)")),
                    }
                }
                "demo" => {
                    only("command", entry.command.is_some(), "source = \"command\"")?;
                    only("path", entry.path.is_some(), "source = \"file\"")?;
                    VideoSource::Demo
                }
                other => {
                    return Err(bad(
                        i,
                        "source",
                        format!("{other:?} is not a video source (command, file or demo)"),
                    ))
                }
            };
            PointSpec::Video {
                source,
                always_on: entry.always_on.unwrap_or(false),
            }
        }
        other => {
            return Err(bad(
                i,
                "kind",
                format!("{other:?} is not telemetry or video"),
            ))
        }
    };
    Ok(PointConfig { name, spec })
}

fn command(i: usize, entry: &PointEntry) -> Result<String, ConfigError> {
    match entry.command.as_deref().map(str::trim) {
        Some(command) if !command.is_empty() => Ok(command.to_owned()),
        _ => Err(bad(i, "command", "is not set (a /bin/sh -c command line)")),
    }
}
