//! Sortie's coordinator.
//!
//! It serves the gosd REST API so existing gosd clients and plain `curl` work unchanged, keeps
//! its state on disk (sled plus blob files), and relays work to devices.
//!
//! # Layout
//! - [`run`]: the server, `run(config, shutdown)`; [`main.rs`](../src/sortie_coordinator/main.rs.html)
//!   only parses the command line, sets up logging and signals, and calls it.
//! - [`config`]: the typed configuration (defaults → file → env → flags → validate).
//! - [`cli`]: the command line; [`admin`]: the admin subcommands.
//! - [`api`]: the HTTP surface (axum), one module per resource.
//! - [`store`]: everything on disk, behind one boundary.
//! - [`auth`]: argon2id passwords, hashed tokens.
//! - [`model`]: the records the store keeps and the API shows.
//! - [`demo`]: the demo fleet of `serve --demo`.

pub mod admin;
pub mod agent_config;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod demo;
pub mod model;
pub mod mqtt;
pub mod points;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::api::{ApiConfig, AppState};
use crate::config::Config;
use crate::store::{Store, StoreError};

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened or failed.
    #[error("store in {dir}: {source}")]
    Store {
        /// The data dir.
        dir: std::path::PathBuf,
        /// What failed.
        source: StoreError,
    },
    /// The MQTT settings are unusable or the embedded broker did not start.
    #[error("MQTT: {0}")]
    Mqtt(String),
    /// The listen address could not be bound, or serving failed.
    #[error("HTTP listener on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        source: std::io::Error,
    },
}

/// Opens the store, prepares it (sweeps leftovers, seeds the demo), and serves until `shutdown`
/// is cancelled; then drains requests for up to `shutdown_grace_secs` and flushes the store.
///
/// Prints `listening on http://ADDR` to standard output once the socket is bound (with the
/// real port when `listen` asked for port 0), so scripts and tests know where to connect.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<(), ServeError> {
    let store_error = |source| ServeError::Store {
        dir: config.data_dir.clone(),
        source,
    };
    let store = Store::open(&config.data_dir).map_err(store_error)?;
    prepare_store(&store).map_err(store_error)?;
    let demo = if config.demo {
        Some(demo::seed(&store).map_err(store_error)?)
    } else {
        None
    };
    store.flush().await.map_err(store_error)?;

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: config.listen,
        source,
    })?;
    let tasks = tokio_util::task::TaskTracker::new();
    let (relay, points, mqtt) = start_relay(&config, &store, &tasks, &shutdown)?;
    let agent_endpoints = agent_config::AgentEndpoints {
        mqtt,
        mqtt_prefix: config.mqtt_prefix.clone(),
        coordinator_url: match &config.public_url {
            Some(_) => config.agent_facing_url(),
            None => format!(
                "http://{}{}",
                mqtt::broker::connect_addr(local),
                config.base_path
            ),
        },
    };
    if let Some(fleet) = &demo {
        write_demo_agent_configs(&config, &store, fleet, &agent_endpoints).map_err(store_error)?;
    }
    let state = AppState {
        relay,
        points,
        store: store.clone(),
        config: Arc::new(ApiConfig {
            base_path: config.base_path.clone(),
            max_upload_bytes: config.max_upload_bytes,
            token_ttl_secs: config.token_ttl_secs,
            refresh_token_ttl_secs: config.refresh_token_ttl_secs,
            agent_endpoints,
        }),
    };
    let app = api::router(state);
    tracing::info!(addr = %local, base_path = %config.base_path, data_dir = %config.data_dir.display(), "listening");
    println!("listening on http://{local}{}", config.base_path);
    if let Some(fleet) = &demo {
        let host = if local.ip().is_unspecified() {
            format!("localhost:{}", local.port())
        } else {
            local.to_string()
        };
        println!(
            "{}",
            demo::walkthrough(&format!("http://{host}{}", config.base_path), fleet)
        );
    }

    tasks.spawn(purge_expired_tokens(store.clone(), shutdown.clone()));
    tasks.close();

    // Small JSON answers and cancel requests are latency-bound: no Nagle delay.
    let listener = axum::serve::ListenerExt::tap_io(listener, |stream: &mut TcpStream| {
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY");
        }
    });
    let server =
        axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let result = tokio::select! {
        result = server => result,
        () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(grace_secs = grace.as_secs(), "requests still in flight after the grace period; stopping anyway");
            Ok(())
        }
    };
    tasks.wait().await;
    store.flush().await.map_err(store_error)?;
    tracing::info!("stopped");
    result.map_err(|source| ServeError::Listen {
        addr: local,
        source,
    })
}

/// Starts the embedded broker (unless an external one is configured), the relay task and the
/// points ingest task.
fn start_relay(
    config: &Config,
    store: &Store,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(mqtt::RelayHandle, points::Points, config::MqttEndpoint), ServeError> {
    let mqtt_error = |e: &dyn std::fmt::Display| ServeError::Mqtt(e.to_string());
    let mut endpoint = config.mqtt_endpoint().map_err(|e| mqtt_error(&e))?;
    // What agents are told: the same broker, with their own credentials.
    let mut for_agents = endpoint.clone();
    let prefix =
        sortie_shared::TopicPrefix::new(config.mqtt_prefix.clone()).map_err(|e| mqtt_error(&e))?;
    if config.mqtt_url.is_none() {
        let password = store
            .coordinator_mqtt_password()
            .map_err(|e| mqtt_error(&e))?;
        let access = mqtt::broker::BrokerAccess {
            prefix: prefix.clone(),
            anonymous_watchers: config.mqtt_anonymous_watchers,
        };
        let addr = mqtt::broker::start(config.mqtt_listen, store.clone(), password.clone(), access)
            .map_err(|e| mqtt_error(&e))?;
        let addr = mqtt::broker::connect_addr(addr);
        endpoint.host = addr.ip().to_string();
        endpoint.port = addr.port();
        for_agents.port = addr.port();
        endpoint.username = Some(mqtt::broker::COORDINATOR_MQTT_USER.into());
        endpoint.password = Some(password);
        println!("mqtt broker on {addr}");
    } else {
        tracing::info!(host = %endpoint.host, port = endpoint.port, "using the external MQTT broker");
    }
    let settings = mqtt::RelaySettings {
        host: endpoint.host,
        port: endpoint.port,
        username: endpoint.username,
        password: endpoint.password,
        prefix,
        default_timeout: Some(Duration::from_secs(config.default_job_timeout_secs))
            .filter(|d| !d.is_zero()),
        pending_ttl: Duration::from_secs(config.pending_ttl_secs),
        heartbeat_timeout: Duration::from_secs(config.heartbeat_timeout_secs.max(1)),
    };
    let (relay, requests) = mqtt::RelayHandle::new();
    // Share tokens are signed with a key derived from a secret the store keeps, so share
    // links survive restarts.
    let share_secret = store
        .coordinator_mqtt_password()
        .map_err(|e| mqtt_error(&e))?;
    let points = points::Points::new(relay.clone(), points::ShareKey::derive(&share_secret));
    tasks.spawn(points::run_ingest(
        settings.clone(),
        store.clone(),
        points.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(mqtt::run_relay(
        settings,
        store.clone(),
        relay.clone(),
        requests,
        Some(points.clone()),
        shutdown.clone(),
    ));
    for_agents.username = None;
    for_agents.password = None;
    Ok((relay, points, for_agents))
}

/// Writes `agents/node-<id>.toml` in the data dir for the demo nodes, so the demo agent can be
/// started at once.
fn write_demo_agent_configs(
    config: &Config,
    store: &Store,
    fleet: &demo::DemoFleet,
    endpoints: &agent_config::AgentEndpoints,
) -> Result<(), StoreError> {
    let dir = config.data_dir.join("agents");
    std::fs::create_dir_all(&dir)?;
    for node_id in [fleet.drone_id, fleet.depot_id] {
        let Some(node) = store.node(node_id)? else {
            continue;
        };
        let secrets = store.node_secrets(node_id)?;
        let text = agent_config::render(
            &secrets,
            &node,
            endpoints,
            agent_config::AgentHardware::Simulated,
        )
        .replace(
            "data_dir = \"./sortie-agent-data\"",
            &format!(
                "data_dir = \"{}\"",
                dir.join(format!("node-{node_id}-data")).display()
            ),
        );
        let path = dir.join(format!("node-{node_id}.toml"));
        write_private(&path, &text)?;
        println!(
            "agent config for node {node_id} ({}): {}",
            node.name,
            path.display()
        );
    }
    store.flush_blocking()
}

/// Writes a file only its owner can read (it holds secrets).
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

/// Clears what an interrupted earlier run may have left: blob files no record names, jobs of
/// deleted plans, expired tokens.
fn prepare_store(store: &Store) -> Result<(), StoreError> {
    let files = store.sweep_orphan_blob_files()?;
    let jobs = store.remove_orphan_jobs()?;
    let tokens = store.purge_expired_tokens(chrono::Utc::now().timestamp())?;
    if files + jobs + tokens > 0 {
        tracing::info!(
            orphan_blob_files = files,
            orphan_jobs = jobs,
            expired_tokens = tokens,
            "cleaned up the store"
        );
    }
    Ok(())
}

/// Drops expired tokens once an hour so the token tree does not grow without bound.
async fn purge_expired_tokens(store: Store, shutdown: CancellationToken) {
    let mut every_hour = tokio::time::interval(Duration::from_secs(3600));
    every_hour.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = every_hour.tick() => {}
        }
        let store = store.clone();
        let purged = tokio::task::spawn_blocking(move || {
            store.purge_expired_tokens(chrono::Utc::now().timestamp())
        })
        .await;
        match purged {
            Ok(Ok(n)) if n > 0 => tracing::info!(purged = n, "expired tokens removed"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "purging expired tokens"),
            Err(e) => tracing::warn!(error = %e, "token purge task failed"),
        }
    }
}
