//! The command line: `serve` (the default) and the admin subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{parse_byte_size, Config, ConfigError};

/// Sortie's coordinator: serves the gosd REST API, stores state on disk, relays work to devices.
#[derive(Debug, Parser)]
#[command(name = "sortie-coordinator", version, about, long_about = None)]
pub struct Cli {
    /// A TOML configuration file (see `print-default-config`).
    #[arg(long, short = 'c', env = "SORTIE_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Where the database and blobs live [default: ./data].
    #[arg(long, env = "SORTIE_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// What to do; `serve` if omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (the default).
    Serve(ServeArgs),
    /// Print the default configuration as TOML.
    PrintDefaultConfig,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage OAuth clients (the client_id/client_secret of the token request).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Manage nodes (devices).
    #[command(subcommand)]
    Node(NodeCommand),
    /// Manage tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

/// Flags of `serve`. Each overrides the config file and has an environment variable.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// HTTP listen address [default: 0.0.0.0:8000].
    #[arg(long, env = "SORTIE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the API is mounted [default: /gosd].
    #[arg(long, env = "SORTIE_BASE_PATH")]
    pub base_path: Option<String>,
    /// Largest upload, e.g. 1GiB or 300MiB [default: 1GiB].
    #[arg(long, env = "SORTIE_MAX_UPLOAD", value_parser = parse_byte_size)]
    pub max_upload: Option<u64>,
    /// Access-token lifetime in seconds [default: 7200].
    #[arg(long, env = "SORTIE_TOKEN_TTL")]
    pub token_ttl: Option<u64>,
    /// Refresh-token lifetime in seconds [default: 2592000].
    #[arg(long, env = "SORTIE_REFRESH_TOKEN_TTL")]
    pub refresh_token_ttl: Option<u64>,
    /// Seed the demo user (demo/demodemo), client and nodes if absent, and print curl examples.
    #[arg(long, env = "SORTIE_DEMO")]
    pub demo: bool,
    #[command(flatten)]
    pub mqtt: MqttArgs,
}

/// Where agents and the coordinator meet. Used by `serve` and `node agent-config`.
#[derive(Debug, Default, Args)]
pub struct MqttArgs {
    /// Where the embedded MQTT broker listens [default: 127.0.0.1:1883].
    #[arg(long, env = "SORTIE_MQTT_LISTEN")]
    pub mqtt_listen: Option<SocketAddr>,
    /// Use this external broker instead of embedding one: mqtt://user:pass@host:port.
    #[arg(long, env = "SORTIE_MQTT_URL")]
    pub mqtt_url: Option<String>,
    /// Prefix of the private MQTT topics [default: sortie/v1].
    #[arg(long, env = "SORTIE_MQTT_PREFIX")]
    pub mqtt_prefix: Option<String>,
    /// The URL agents use to reach this API [default: from --listen and --base-path].
    #[arg(long, env = "SORTIE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Let MQTT clients without a login watch the public topics (embedded broker only).
    #[arg(long, env = "SORTIE_MQTT_ANONYMOUS_WATCHERS")]
    pub mqtt_anonymous_watchers: bool,
}

/// `user ...`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user; the password is asked for, or read from standard input.
    Add {
        /// Login name.
        name: String,
        /// Let the user create, change and delete nodes.
        #[arg(long)]
        admin: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    Ls,
}

/// `client ...`
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client and print its id and secret.
    Add {
        /// A label for people.
        #[arg(long, default_value = "client")]
        name: String,
        /// Use this client id instead of a random one (e.g. the one an existing gosd client sends).
        #[arg(long)]
        id: Option<String>,
        /// Read the secret from standard input instead of generating one.
        #[arg(long)]
        secret_stdin: bool,
    },
}

/// `node ...`
#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Add a node.
    Add {
        /// Unique name.
        #[arg(long)]
        name: String,
        /// air (drone), depot or mast.
        #[arg(long = "type", value_parser = ["air", "depot", "mast"])]
        type_name: String,
        /// Free text.
        #[arg(long, default_value = "")]
        description: String,
        /// A point as TYPE:NAME, e.g. livestream_flv:camera (repeatable).
        #[arg(long = "point", value_parser = parse_point)]
        points: Vec<(String, String)>,
    },
    /// List nodes.
    Ls,
    /// Print a complete configuration file for node ID's agent (creates its credentials on
    /// first use).
    AgentConfig {
        /// The node.
        id: u64,
        /// Replace the node's credentials first (the previous config stops working).
        #[arg(long)]
        rotate: bool,
        /// MQTT host:port as the device sees it [default: from the broker settings].
        #[arg(long)]
        mqtt_host: Option<String>,
        #[command(flatten)]
        mqtt: MqttArgs,
    },
}

/// `token ...`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Print a bearer token for a user, for scripts.
    Issue {
        /// The user.
        user: String,
        /// Lifetime in seconds [default: the configured token lifetime].
        #[arg(long)]
        ttl: Option<u64>,
    },
}

impl MqttArgs {
    /// Overrides the MQTT settings of `config` with the flags given.
    pub fn apply(&self, config: &mut Config) {
        if let Some(listen) = self.mqtt_listen {
            config.mqtt_listen = listen;
        }
        if let Some(url) = &self.mqtt_url {
            config.mqtt_url = Some(url.clone());
        }
        if let Some(prefix) = &self.mqtt_prefix {
            config.mqtt_prefix = prefix.clone();
        }
        if let Some(url) = &self.public_url {
            config.public_url = Some(url.clone());
        }
        if self.mqtt_anonymous_watchers {
            config.mqtt_anonymous_watchers = true;
        }
    }
}

fn parse_point(text: &str) -> Result<(String, String), String> {
    match text.split_once(':') {
        Some((kind, name)) if !kind.is_empty() && !name.is_empty() => {
            Ok((kind.to_owned(), name.to_owned()))
        }
        _ => Err(format!(
            "{text:?} is not TYPE:NAME, e.g. livestream_flv:camera"
        )),
    }
}

impl Cli {
    /// Builds the configuration: defaults, then the file, then environment and flags.
    pub fn config(&self, serve: &ServeArgs) -> Result<Config, ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
        if let Some(listen) = serve.listen {
            config.listen = listen;
        }
        if let Some(base) = &serve.base_path {
            config.base_path = base.clone();
        }
        if let Some(size) = serve.max_upload {
            config.max_upload_bytes = size;
        }
        if let Some(ttl) = serve.token_ttl {
            config.token_ttl_secs = ttl;
        }
        if let Some(ttl) = serve.refresh_token_ttl {
            config.refresh_token_ttl_secs = ttl;
        }
        config.demo |= serve.demo;
        serve.mqtt.apply(&mut config);
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_is_the_default_and_flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nbase_path = \"/api\"\n").unwrap();
        let cli = Cli::parse_from([
            "sortie-coordinator",
            "--config",
            file.to_str().unwrap(),
            "serve",
            "--base-path",
            "/x",
        ]);
        let Some(Command::Serve(args)) = &cli.command else {
            panic!("not serve")
        };
        let config = cli.config(args).unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.base_path, "/x");
        let bare = Cli::parse_from(["sortie-coordinator"]);
        assert!(bare.command.is_none());
    }

    #[test]
    fn points_parse_as_type_and_name() {
        assert_eq!(
            parse_point("livestream_flv:camera").unwrap(),
            ("livestream_flv".into(), "camera".into())
        );
        assert!(parse_point("camera").is_err());
    }
}
