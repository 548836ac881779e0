//! The variable parts of a topic: the private prefix, numeric ids and point names. Each is
//! checked once, where it is made, so a built topic is always valid.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The default private prefix.
pub const DEFAULT_PREFIX: &str = "sortie/v1";

/// MQTT's limit on a topic's length in bytes.
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// Longest point name accepted in a telemetry topic.
pub const MAX_POINT_NAME_BYTES: usize = 128;

/// First levels of the public topics, which anyone with an API login may read.
pub const PUBLIC_ROOTS: [&str; 3] = ["nodes", "plans", "jobs"];

/// Why a topic, prefix or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The topic is empty.
    #[error("empty topic")]
    Empty,
    /// Longer than [`MAX_TOPIC_BYTES`].
    #[error("topic of {len} bytes is longer than MQTT allows")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A wildcard (`+`, `#`), NUL or other control character: none belongs in a topic name.
    #[error("{found:?} is not allowed in a topic name ({topic:?})")]
    ForbiddenChar {
        /// The character.
        found: char,
        /// Where it was found.
        topic: String,
    },
    /// Two slashes in a row, or a leading or trailing slash.
    #[error("empty level in topic {0:?}")]
    EmptySegment(String),
    /// An id level that is not a canonical decimal `u64` (digits only, no leading zero).
    #[error("{0:?} is not a valid id")]
    InvalidId(String),
    /// A point name that cannot be a topic level.
    #[error("invalid point name {name:?}: {reason}")]
    InvalidPointName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A private prefix that cannot be used.
    #[error("invalid topic prefix {prefix:?}: {reason}")]
    InvalidPrefix {
        /// The prefix.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Valid, but not one of Sortie's topics (under this prefix).
    #[error("{0:?} is not a Sortie topic")]
    Unknown(String),
}

/// Checks what every topic name (and every part of one) must satisfy: no wildcards, no NUL
/// or other control characters.
pub(crate) fn check_chars(text: &str) -> Result<(), TopicError> {
    match text
        .chars()
        .find(|&c| c == '+' || c == '#' || c.is_control())
    {
        Some(found) => Err(TopicError::ForbiddenChar {
            found,
            topic: text.to_owned(),
        }),
        None => Ok(()),
    }
}

/// Parses an id level: canonical decimal only, so formatting the id gives the same level back.
pub(crate) fn parse_id(level: &str) -> Result<u64, TopicError> {
    let canonical = !level.is_empty()
        && level.bytes().all(|b| b.is_ascii_digit())
        && (level == "0" || !level.starts_with('0'));
    match level.parse() {
        Ok(id) if canonical => Ok(id),
        _ => Err(TopicError::InvalidId(level.to_owned())),
    }
}

/// The private topics' prefix, one or more levels (`sortie/v1`, `fleet-a/sortie/v1`).
/// Deserializes from a string with the same checks, so a config file cannot hold a bad one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPrefix(String);

impl TopicPrefix {
    /// Checks `prefix`: non-empty levels, no wildcards or control characters, and not starting
    /// with `$` (brokers reserve those topics).
    pub fn new(prefix: impl Into<String>) -> Result<Self, TopicError> {
        let prefix = prefix.into();
        let invalid = |reason| TopicError::InvalidPrefix {
            prefix: prefix.clone(),
            reason,
        };
        if prefix.is_empty() {
            return Err(invalid("it is empty"));
        }
        if prefix.starts_with('$') {
            return Err(invalid("topics starting with $ are reserved by the broker"));
        }
        if prefix.split('/').any(str::is_empty) {
            return Err(invalid("it has an empty level"));
        }
        if check_chars(&prefix).is_err() {
            return Err(invalid("wildcards and control characters are not allowed"));
        }
        if prefix.len() > 1024 {
            return Err(invalid("it is longer than 1024 bytes"));
        }
        // Watchers may read the public topics (`nodes/…`, `plans/…`, `jobs/…`) but never the
        // private ones; a prefix in the same tree would make the two indistinguishable.
        if PUBLIC_ROOTS.contains(&prefix.split('/').next().unwrap_or_default()) {
            return Err(invalid(
                "its first level is a public topic root (nodes, plans or jobs)",
            ));
        }
        Ok(TopicPrefix(prefix))
    }

    /// The prefix text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for TopicPrefix {
    fn default() -> Self {
        TopicPrefix(DEFAULT_PREFIX.to_owned())
    }
}

impl fmt::Display for TopicPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for TopicPrefix {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicPrefix::new(s)
    }
}

impl Serialize for TopicPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TopicPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        TopicPrefix::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// A telemetry point's name as one topic level (`battery`, `gps`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PointName(String);

impl PointName {
    /// Checks `name`: non-empty, at most [`MAX_POINT_NAME_BYTES`], no `/`, wildcards or control
    /// characters.
    pub fn new(name: impl Into<String>) -> Result<Self, TopicError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_POINT_NAME_BYTES {
            Some("it is longer than 128 bytes")
        } else if name.contains('/') {
            Some("it contains '/'")
        } else if check_chars(&name).is_err() {
            Some("wildcards and control characters are not allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(TopicError::InvalidPointName { name, reason }),
            None => Ok(PointName(name)),
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PointName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_canonical_decimal() {
        assert_eq!(parse_id("0"), Ok(0));
        assert_eq!(parse_id("42"), Ok(42));
        assert_eq!(parse_id(&u64::MAX.to_string()), Ok(u64::MAX));
        for bad in [
            "",
            "007",
            "+5",
            "-1",
            "1e3",
            " 1",
            "x",
            "18446744073709551616",
            "٣",
        ] {
            assert_eq!(
                parse_id(bad),
                Err(TopicError::InvalidId(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(TopicPrefix::default().as_str(), "sortie/v1");
        TopicPrefix::new("fleet-a/sortie/v1").unwrap();
        TopicPrefix::new("x").unwrap();
        for bad in [
            "", "/sortie", "sortie/", "a//b", "$SYS", "a/+/b", "a/#", "a\0b", "a\nb",
        ] {
            assert!(
                matches!(TopicPrefix::new(bad), Err(TopicError::InvalidPrefix { .. })),
                "{bad:?}"
            );
        }
        assert!(TopicPrefix::new("p".repeat(1025)).is_err());
    }

    #[test]
    fn prefix_deserializes_with_the_same_checks() {
        let prefix: TopicPrefix = serde_json::from_str("\"fleet/v1\"").unwrap();
        assert_eq!(prefix.to_string(), "fleet/v1");
        assert_eq!(serde_json::to_string(&prefix).unwrap(), "\"fleet/v1\"");
        assert!(serde_json::from_str::<TopicPrefix>("\"fleet/#\"").is_err());
    }

    #[test]
    fn point_names_are_one_level() {
        PointName::new("battery").unwrap();
        PointName::new("drone-status v2").unwrap();
        let too_long = "p".repeat(MAX_POINT_NAME_BYTES + 1);
        for bad in ["", "a/b", "+", "#", "a\0", "\u{7f}", too_long.as_str()] {
            assert!(
                matches!(
                    PointName::new(bad),
                    Err(TopicError::InvalidPointName { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
