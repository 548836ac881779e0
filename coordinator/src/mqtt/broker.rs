//! The embedded MQTT broker (rumqttd), used when no external broker is configured, so one
//! command starts a working system.
//!
//! It authenticates every client: the coordinator itself (`sortie-coordinator`) and each node's
//! agent (`node-<id>`, client id `sortie-node-<id>`, password from `node agent-config`).
//! rumqttd has no topic ACLs, so a node that knows its own password could publish on another
//! node's topics; that is why every private message is also authenticated end to end with the
//! node's key (see `sortie_shared::envelope`), and the coordinator drops events whose topic,
//! key and node disagree.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::store::Store;

/// The MQTT user name the coordinator logs in with.
pub const COORDINATOR_MQTT_USER: &str = "sortie-coordinator";

/// Why the broker could not start.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The address cannot be bound (in use, or not this host's).
    #[error("cannot listen on {addr}: {source} (set --mqtt-listen, or --mqtt-url for an external broker)")]
    Port {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The broker failed to start.
    #[error("the embedded MQTT broker did not start on {0} (see the log; set --mqtt-listen)")]
    NotListening(SocketAddr),
}

/// Starts the embedded broker on `listen` (port 0: a free port) in its own thread and returns
/// the address it listens on.
pub fn start(
    listen: SocketAddr,
    store: Store,
    coordinator_password: String,
) -> Result<SocketAddr, BrokerError> {
    // rumqttd binds by itself and reports neither the port nor a bind failure to its caller, so
    // check the address (and pick the port for :0) first.
    let addr = {
        let probe = TcpListener::bind(listen).map_err(|source| BrokerError::Port {
            addr: listen,
            source,
        })?;
        probe.local_addr().map_err(|source| BrokerError::Port {
            addr: listen,
            source,
        })?
    };
    let config = broker_config(addr, store, coordinator_password);
    let (failed_tx, failed_rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "embedded MQTT broker stopped");
                let _ = failed_tx.send(e.to_string());
            }
        })
        .expect("spawning the broker thread");
    // A broker that cannot start fails at once; one that runs never answers.
    match failed_rx.recv_timeout(Duration::from_millis(300)) {
        Ok(reason) => {
            tracing::error!(%addr, reason, "embedded MQTT broker failed");
            Err(BrokerError::NotListening(addr))
        }
        Err(_) => {
            tracing::info!(%addr, "embedded MQTT broker listening");
            Ok(addr)
        }
    }
}

/// Where to connect to reach a listener on `addr` (0.0.0.0 → 127.0.0.1).
pub fn connect_addr(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    }
}

fn broker_config(addr: SocketAddr, store: Store, coordinator_password: String) -> rumqttd::Config {
    let mut connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 5000,
        // Envelopes are at most 256 KiB; later, video tags ride here too.
        max_payload_size: 1 << 20,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    connections.set_auth_handler(move |client_id: String, user: String, password: String| {
        let allowed = authorize(&store, &coordinator_password, &client_id, &user, &password);
        if !allowed {
            tracing::warn!(client_id = %client_id, user = %user, "MQTT login refused");
        }
        async move { allowed }
    });
    let server = rumqttd::ServerSettings {
        name: "sortie".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 20_010,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 << 20,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
            acl: None,
        },
        v4: Some([("1".to_owned(), server)].into_iter().collect()),
        ..Default::default()
    }
}

fn same_secret(a: &str, b: &str) -> bool {
    // Compare digests so timing does not reveal a common prefix.
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// Whether `user` may connect with `password` as `client_id`.
fn authorize(
    store: &Store,
    coordinator_password: &str,
    client_id: &str,
    user: &str,
    password: &str,
) -> bool {
    if user == COORDINATOR_MQTT_USER {
        return client_id.starts_with(COORDINATOR_MQTT_USER)
            && same_secret(password, coordinator_password);
    }
    let Some(node_id) = user
        .strip_prefix("node-")
        .and_then(|id| id.parse::<u64>().ok())
    else {
        return false;
    };
    if client_id != format!("sortie-node-{node_id}") {
        return false;
    }
    match store.existing_node_secrets(node_id) {
        Ok(Some(secrets)) => same_secret(password, &secrets.mqtt_password),
        _ => false,
    }
}
