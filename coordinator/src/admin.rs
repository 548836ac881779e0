//! The admin subcommands: they open the store directly, so the server must not be running on
//! the same data dir (sled allows one process at a time; the error says so).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context};
use serde_json::Map;

use crate::auth::{hash_password, issue_token, random_secret, secret_digest};
use crate::cli::{ClientCommand, NodeCommand, TokenCommand, UserCommand};
use crate::config::Config;
use crate::model::{OAuthClient, Timestamp, TokenKind};
use crate::store::{NodeSpec, PointSpec, Store};

/// Opens the store for an admin command, explaining a lock held by a running server.
pub fn open_store(data_dir: &Path) -> anyhow::Result<Store> {
    Store::open(data_dir).with_context(|| {
        format!(
            "opening the data dir {} (if a coordinator is running on it, stop it first or use the HTTP API)",
            data_dir.display()
        )
    })
}

fn read_stdin_line(what: &str) -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .with_context(|| format!("reading the {what} from standard input"))?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    if line.is_empty() {
        bail!("the {what} on standard input is empty");
    }
    Ok(line)
}

/// `user add|ls`.
pub fn user(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    let store = open_store(&config.data_dir)?;
    match command {
        UserCommand::Add {
            name,
            admin,
            password_stdin,
        } => {
            let password = if password_stdin || !std::io::stdin().is_terminal() {
                read_stdin_line("password")?
            } else {
                let first = rpassword::prompt_password(format!("Password for {name}: "))?;
                let again = rpassword::prompt_password("Again: ")?;
                if first != again {
                    bail!("the passwords differ");
                }
                first
            };
            if password.chars().count() < 8 {
                bail!("the password must be at least 8 characters");
            }
            let user = store.create_user(&name, hash_password(&password), admin)?;
            store.flush_blocking()?;
            println!(
                "user {} created (id {}{})",
                user.username,
                user.id,
                if admin { ", admin" } else { "" }
            );
        }
        UserCommand::Ls => {
            println!("{:>5}  {:<24} {:<6} CREATED", "ID", "NAME", "ADMIN");
            for user in store.list_users()? {
                println!(
                    "{:>5}  {:<24} {:<6} {}",
                    user.id, user.username, user.admin, user.created_at
                );
            }
        }
    }
    Ok(())
}

/// `client add`.
pub fn client(config: &Config, command: ClientCommand) -> anyhow::Result<()> {
    let store = open_store(&config.data_dir)?;
    let ClientCommand::Add {
        name,
        id,
        secret_stdin,
    } = command;
    let client_id = id.unwrap_or_else(|| format!("sortie-{}", &random_secret()[..16]));
    let secret = if secret_stdin {
        read_stdin_line("client secret")?
    } else {
        random_secret()
    };
    store.create_client(&OAuthClient {
        client_id: client_id.clone(),
        name,
        secret_sha256: hex::encode(secret_digest(&secret)),
        created_at: Timestamp::now(),
    })?;
    store.flush_blocking()?;
    println!("client_id={client_id}");
    if !secret_stdin {
        println!("client_secret={secret}");
        eprintln!("(the secret is shown only now; it is stored hashed)");
    }
    Ok(())
}

/// `node add|ls`.
pub fn node(config: &Config, command: NodeCommand) -> anyhow::Result<()> {
    let store = open_store(&config.data_dir)?;
    match command {
        NodeCommand::Add {
            name,
            type_name,
            description,
            points,
        } => {
            let spec = NodeSpec {
                name,
                description,
                type_name,
                points: points
                    .into_iter()
                    .map(|(point_type_name, name)| PointSpec {
                        name,
                        point_type_name,
                        params: Map::new(),
                    })
                    .collect(),
            };
            let node = store.create_node(&spec)?;
            store.flush_blocking()?;
            println!("node {} created (id {})", node.name, node.id);
        }
        NodeCommand::AgentConfig {
            id,
            rotate,
            mqtt_host,
            mqtt,
        } => {
            let mut config = config.clone();
            mqtt.apply(&mut config);
            config.validate()?;
            let node = store
                .node(id)?
                .with_context(|| format!("no node with id {id} (see `node ls`)"))?;
            let secrets = if rotate {
                store.rotate_node_secrets(id)?
            } else {
                store.node_secrets(id)?
            };
            store.flush_blocking()?;
            let mut endpoints = crate::agent_config::AgentEndpoints {
                mqtt: config.mqtt_endpoint()?,
                mqtt_prefix: config.mqtt_prefix.clone(),
                coordinator_url: config.agent_facing_url(),
            };
            if let Some(host) = mqtt_host {
                let (h, p) = host
                    .rsplit_once(':')
                    .with_context(|| format!("--mqtt-host {host:?} is not HOST:PORT"))?;
                endpoints.mqtt.host = h.trim_matches(['[', ']']).to_owned();
                endpoints.mqtt.port = p
                    .parse()
                    .with_context(|| format!("--mqtt-host {host:?}: bad port"))?;
            }
            print!(
                "{}",
                crate::agent_config::render(
                    &secrets,
                    &node,
                    &endpoints,
                    crate::agent_config::AgentHardware::for_node(&node),
                )
            );
        }
        NodeCommand::Ls => {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{:>5}  {:<24} {:<6} {:<8} POINTS",
                "ID", "NAME", "TYPE", "STATUS"
            )?;
            for node in store.list_nodes()? {
                let points: Vec<String> = node
                    .points
                    .iter()
                    .map(|p| format!("{}:{}", p.point_type_name, p.name))
                    .collect();
                let status = serde_json::to_value(node.status)?;
                writeln!(
                    out,
                    "{:>5}  {:<24} {:<6} {:<8} {}",
                    node.id,
                    node.name,
                    node.type_name,
                    status.as_str().unwrap_or_default(),
                    points.join(", ")
                )?;
            }
        }
    }
    Ok(())
}

/// `token issue`.
pub fn token(config: &Config, command: TokenCommand) -> anyhow::Result<()> {
    let store = open_store(&config.data_dir)?;
    let TokenCommand::Issue { user, ttl } = command;
    let user = store
        .user_by_name(&user)?
        .with_context(|| format!("no user named {user:?}"))?;
    let issued = issue_token(
        &store,
        user.id,
        TokenKind::Access,
        None,
        ttl.unwrap_or(config.token_ttl_secs),
    )?;
    store.flush_blocking()?;
    println!("{}", issued.token);
    Ok(())
}
