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
        Ok(())
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
