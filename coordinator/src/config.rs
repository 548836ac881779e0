//! The coordinator's configuration: defaults, then a TOML file, then `SORTIE_*` environment
//! variables and flags (clap reads those two), then [`Config::validate`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

/// Everything `serve` needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Where the API is mounted; `""` for the root.
    pub base_path: String,
    /// Where the database and blobs live.
    pub data_dir: PathBuf,
    /// Largest accepted upload in bytes; the TOML file may say `"1GiB"`, `"300MiB"`, ...
    #[serde(deserialize_with = "byte_size")]
    pub max_upload_bytes: u64,
    /// Lifetime of access tokens in seconds.
    pub token_ttl_secs: u64,
    /// Lifetime of refresh tokens in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Seed the demo user, client and nodes if absent.
    pub demo: bool,
    /// How long shutdown waits for requests in flight, in seconds.
    pub shutdown_grace_secs: u64,
    /// Where the embedded MQTT broker listens (when `mqtt_url` is not set).
    pub mqtt_listen: SocketAddr,
    /// An external broker, `mqtt://user:pass@host:port`; then no broker is embedded.
    pub mqtt_url: Option<String>,
    /// Prefix of the private MQTT topics.
    pub mqtt_prefix: String,
    /// The URL agents use to reach this API (default: derived from `listen` and `base_path`).
    pub public_url: Option<String>,
    /// A job's time limit when its plan sets no `extra.timeout_s`, in seconds (0: none).
    pub default_job_timeout_secs: u64,
    /// How long a job waits for an offline node before it times out, in seconds.
    pub pending_ttl_secs: u64,
    /// A node with no heartbeat for this long is offline, in seconds.
    pub heartbeat_timeout_secs: u64,
    /// Let MQTT clients without a login watch the public topics on the embedded broker
    /// (otherwise watchers log in with an API user name and password).
    pub mqtt_anonymous_watchers: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8000)),
            base_path: "/gosd".into(),
            data_dir: PathBuf::from("./data"),
            max_upload_bytes: 1 << 30,
            token_ttl_secs: 7200,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            demo: false,
            shutdown_grace_secs: 10,
            mqtt_listen: SocketAddr::from(([127, 0, 0, 1], 1883)),
            mqtt_url: None,
            mqtt_prefix: sortie_shared::DEFAULT_PREFIX.into(),
            public_url: None,
            default_job_timeout_secs: 3600,
            pending_ttl_secs: 24 * 3600,
            heartbeat_timeout_secs: 20,
            mqtt_anonymous_watchers: false,
        }
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("parsing {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A setting has an unusable value.
    #[error("{field}: {message}")]
    Invalid {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads a TOML file over the defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }

    /// The defaults as a commented TOML file.
    pub fn default_toml() -> String {
        let body = toml::to_string(&Config::default()).expect("the default config serializes");
        format!(
            "# sortie-coordinator configuration. Every key is optional; environment variables\n\
             # (SORTIE_LISTEN, SORTIE_BASE_PATH, SORTIE_DATA_DIR, SORTIE_MAX_UPLOAD,\n\
             # SORTIE_TOKEN_TTL, SORTIE_DEMO) and flags override it.\n{body}"
        )
    }

    /// Checks settings that the types alone do not.
    pub fn validate(&mut self) -> Result<(), ConfigError> {
        let base = self.base_path.trim_end_matches('/');
        if !base.is_empty() && (!base.starts_with('/') || base.contains(['?', '#', ' '])) {
            return Err(ConfigError::Invalid {
                field: "base_path",
                message: format!("{:?} must start with '/' (or be empty)", self.base_path),
            });
        }
        self.base_path = base.to_owned();
        if self.max_upload_bytes == 0 {
            return Err(ConfigError::Invalid {
                field: "max_upload_bytes",
                message: "must be more than 0".into(),
            });
        }
        if self.token_ttl_secs == 0 || self.refresh_token_ttl_secs == 0 {
            return Err(ConfigError::Invalid {
                field: "token_ttl_secs",
                message: "token lifetimes must be at least one second".into(),
            });
        }
        if let Some(url) = &self.mqtt_url {
            MqttEndpoint::parse(url)?;
        }
        sortie_shared::TopicPrefix::new(self.mqtt_prefix.clone()).map_err(|e| {
            ConfigError::Invalid {
                field: "mqtt_prefix",
                message: e.to_string(),
            }
        })?;
        Ok(())
    }

    /// The broker the coordinator connects to: the external one, or the embedded one.
    pub fn mqtt_endpoint(&self) -> Result<MqttEndpoint, ConfigError> {
        match &self.mqtt_url {
            Some(url) => MqttEndpoint::parse(url),
            None => {
                let addr = crate::mqtt::broker::connect_addr(self.mqtt_listen);
                Ok(MqttEndpoint {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    username: None,
                    password: None,
                })
            }
        }
    }

    /// The URL agents use to reach the API.
    pub fn agent_facing_url(&self) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!(
                "http://{}{}",
                crate::mqtt::broker::connect_addr(self.listen),
                self.base_path
            ),
        }
    }
}

/// A broker address with optional credentials, from `mqtt://user:pass@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    /// Host name or address.
    pub host: String,
    /// Port (1883 if the URL has none).
    pub port: u16,
    /// User name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
}

impl MqttEndpoint {
    /// Parses `mqtt://[user[:pass]@]host[:port]` (`tcp://` is accepted too).
    pub fn parse(text: &str) -> Result<MqttEndpoint, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            field: "mqtt_url",
            message,
        };
        let url = url::Url::parse(text)
            .map_err(|e| invalid(format!("{e}: expected mqtt://user:pass@host:port")))?;
        if !matches!(url.scheme(), "mqtt" | "tcp") {
            return Err(invalid(format!(
                "scheme {:?} is not supported (use mqtt://)",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| invalid("no host".into()))?
            .trim_matches(['[', ']'])
            .to_owned();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Ok(MqttEndpoint {
            host,
            port: url.port().unwrap_or(1883),
            username: Some(url.username()).filter(|u| !u.is_empty()).map(decode),
            password: url.password().map(decode),
        })
    }

    /// The URL form, with the credentials given.
    pub fn to_url(&self, username: &str, password: &str) -> String {
        // RFC 3986 unreserved characters stay as they are.
        const USERINFO: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'.')
            .remove(b'_')
            .remove(b'~');
        let encode = |s: &str| percent_encoding::utf8_percent_encode(s, USERINFO).to_string();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!(
            "mqtt://{}:{}@{}:{}",
            encode(username),
            encode(password),
            host,
            self.port
        )
    }
}

/// Parses a size: a number of bytes, or a number with `K`, `M`, `G` (powers of 1000) or
/// `KiB`, `MiB`, `GiB` (powers of 1024), e.g. `300MiB`.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1048576, 300MiB or 1GiB"))?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "m" | "mb" => 1_000_000,
        "g" | "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB, GiB)")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(s) => parse_byte_size(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqtt_urls_parse() {
        let e = MqttEndpoint::parse("mqtt://user:p%40ss@broker.local:1884").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("broker.local", 1884));
        assert_eq!(
            (e.username.as_deref(), e.password.as_deref()),
            (Some("user"), Some("p@ss"))
        );
        assert_eq!(MqttEndpoint::parse("mqtt://10.0.0.1").unwrap().port, 1883);
        assert!(MqttEndpoint::parse("http://x").is_err());
        assert!(MqttEndpoint::parse("broker:1883").is_err());
        assert_eq!(
            e.to_url("node-1", "a b"),
            "mqtt://node-1:a%20b@broker.local:1884"
        );
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_byte_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_byte_size("300MiB"), Ok(300 << 20));
        assert_eq!(parse_byte_size("1 GiB"), Ok(1 << 30));
        assert_eq!(parse_byte_size("2k"), Ok(2000));
        assert!(parse_byte_size("lots").is_err());
        assert!(parse_byte_size("5 parsecs").is_err());
    }

    #[test]
    fn file_overrides_defaults_and_rejects_unknown_keys() {
        let config: Config =
            toml::from_str("listen = \"127.0.0.1:9000\"\nmax_upload_bytes = \"2MiB\"").unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.max_upload_bytes, 2 << 20);
        assert_eq!(config.base_path, "/gosd");
        assert!(toml::from_str::<Config>("listne = \"x\"").is_err());
    }

    #[test]
    fn default_toml_round_trips() {
        let config: Config = toml::from_str(&Config::default_toml()).unwrap();
        assert_eq!(config, Config::default());
    }

    #[test]
    fn base_path_is_normalized_and_checked() {
        let mut config = Config {
            base_path: "/gosd/".into(),
            ..Config::default()
        };
        config.validate().unwrap();
        assert_eq!(config.base_path, "/gosd");
        let mut bad = Config {
            base_path: "gosd".into(),
            ..Config::default()
        };
        assert!(bad.validate().is_err());
    }
}
