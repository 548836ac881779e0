//! The embedded MQTT broker (rumqttd), used when no external broker is configured, so one
//! command starts a working system.
//!
//! It authenticates every client and enforces topic ACLs (through a hook we patched into our
//! copy of rumqttd, see `vendor/README.md`). Three kinds of client, told apart by the client id
//! the login checked:
//!
//! | who | login | client id | publishes | subscribes |
//! |---|---|---|---|---|
//! | the coordinator | `sortie-coordinator` | `sortie-coordinator…` | anything | anything |
//! | node N's agent | `node-N` + its password | `sortie-node-N` | its own `evt`, `live/+`, `status`, `msg/+` | its own `cmd` |
//! | a watcher | an API user + password (or none, if anonymous watchers are allowed) | anything not starting with `sortie-` | nothing | the public trees `nodes/…`, `plans/…`, `jobs/…` |
//!
//! A refused publish is acknowledged and dropped (MQTT 3.1.1 cannot refuse one), a refused
//! subscription gets the failure return code. Private messages are still authenticated end to
//! end with the node's key (see `sortie_shared::envelope`): with an external broker whose ACLs
//! we do not control, that is what stops a node from acting as another.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use rumqttd::AclAction;
use sha2::{Digest, Sha256};
use sortie_shared::{Topic, TopicPrefix, PUBLIC_ROOTS};

use crate::auth::verify_password;
use crate::store::Store;

/// The MQTT user name the coordinator logs in with.
pub const COORDINATOR_MQTT_USER: &str = "sortie-coordinator";

/// Client ids starting with this are reserved for the coordinator and the agents.
const RESERVED_CLIENT_PREFIX: &str = "sortie-";

/// Who may do what on the embedded broker, besides the coordinator and the nodes.
#[derive(Debug, Clone)]
pub struct BrokerAccess {
    /// The private topic prefix (nodes get their own topics under it).
    pub prefix: TopicPrefix,
    /// Let clients without a user name watch the public topics.
    pub anonymous_watchers: bool,
}

/// A connected client's role, from its (login-checked) client id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Coordinator,
    Node(u64),
    Watcher,
}

impl Role {
    fn of(client_id: &str) -> Role {
        if client_id.starts_with(COORDINATOR_MQTT_USER) {
            return Role::Coordinator;
        }
        match client_id
            .strip_prefix("sortie-node-")
            .and_then(|id| id.parse().ok())
        {
            Some(node_id) => Role::Node(node_id),
            None => Role::Watcher,
        }
    }
}

/// Whether `client_id` may publish on, or subscribe with, `topic`.
fn acl_allows(prefix: &TopicPrefix, client_id: &str, topic: &str, action: AclAction) -> bool {
    match (Role::of(client_id), action) {
        (Role::Coordinator, _) => true,
        (Role::Node(node), AclAction::Publish) => matches!(
            Topic::parse(topic, prefix),
            Ok(Topic::NodeEvents { node_id }
                | Topic::NodeStream { node_id, .. }
                | Topic::NodeStatus { node_id }
                | Topic::NodeTelemetry { node_id, .. }) if node_id == node
        ),
        (Role::Node(node), AclAction::Subscribe) => {
            topic == Topic::NodeCommands { node_id: node }.to_string(prefix)
        }
        (Role::Watcher, AclAction::Publish) => false,
        // A literal public root as the first level: `#` or `+/…` could reach the private tree.
        (Role::Watcher, AclAction::Subscribe) => {
            PUBLIC_ROOTS.contains(&topic.split('/').next().unwrap_or_default())
        }
    }
}

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
    access: BrokerAccess,
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
    let config = broker_config(addr, store, coordinator_password, access);
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

fn broker_config(
    addr: SocketAddr,
    store: Store,
    coordinator_password: String,
    access: BrokerAccess,
) -> rumqttd::Config {
    let mut connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 5000,
        // Envelopes are at most 256 KiB; later, video tags ride here too.
        max_payload_size: 1 << 20,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let anonymous_watchers = access.anonymous_watchers;
    connections.set_auth_handler(move |client_id: String, user: String, password: String| {
        let store = store.clone();
        let coordinator_password = coordinator_password.clone();
        async move {
            // Watchers log in with their API password, an argon2 hash: keep it off the
            // broker's I/O threads.
            let check = {
                let (client_id, user) = (client_id.clone(), user.clone());
                tokio::task::spawn_blocking(move || {
                    authorize(
                        &store,
                        &coordinator_password,
                        &client_id,
                        &user,
                        &password,
                        anonymous_watchers,
                    )
                })
            };
            let allowed = check.await.unwrap_or(false);
            if !allowed {
                tracing::warn!(client_id = %client_id, user = %user, "MQTT login refused");
            }
            allowed
        }
    });
    let prefix = access.prefix;
    let acl = rumqttd::Acl(Arc::new(move |client_id: &str, topic: &str, action| {
        let allowed = acl_allows(&prefix, client_id, topic, action);
        if !allowed {
            tracing::warn!(client_id, topic, ?action, "MQTT access refused by the ACL");
        }
        allowed
    }));
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
            acl: Some(acl),
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
    anonymous_watchers: bool,
) -> bool {
    if user == COORDINATOR_MQTT_USER {
        return client_id.starts_with(COORDINATOR_MQTT_USER)
            && same_secret(password, coordinator_password);
    }
    let Some(node_id) = user
        .strip_prefix("node-")
        .and_then(|id| id.parse::<u64>().ok())
    else {
        // A watcher: an API user, or nobody when anonymous watching is on. Never with a
        // reserved client id, which would give it a node's or the coordinator's rights.
        if client_id.starts_with(RESERVED_CLIENT_PREFIX) {
            return false;
        }
        if user.is_empty() {
            return anonymous_watchers;
        }
        return match store.user_by_name(user) {
            Ok(Some(account)) => verify_password(password, &account.password_hash),
            _ => false,
        };
    };
    if client_id != format!("sortie-node-{node_id}") {
        return false;
    }
    match store.existing_node_secrets(node_id) {
        Ok(Some(secrets)) => same_secret(password, &secrets.mqtt_password),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(client_id: &str, topic: &str, action: AclAction) -> bool {
        acl_allows(&TopicPrefix::default(), client_id, topic, action)
    }

    #[test]
    fn a_node_publishes_only_on_its_own_topics() {
        let publish = |topic| allows("sortie-node-3", topic, AclAction::Publish);
        assert!(publish("sortie/v1/nodes/3/evt"));
        assert!(publish("sortie/v1/nodes/3/live/camera"));
        assert!(publish("nodes/3/status"));
        assert!(publish("nodes/3/msg/status"));
        assert!(!publish("sortie/v1/nodes/4/evt"));
        assert!(!publish("nodes/4/msg/status"));
        assert!(!publish("nodes/4/status"));
        assert!(
            !publish("sortie/v1/nodes/3/cmd"),
            "commands come from the coordinator"
        );
        assert!(!publish("plans/1/running"));
        assert!(!publish("jobs/1/state"));
        assert!(!publish("anything/else"));
    }

    #[test]
    fn a_node_subscribes_only_to_its_commands() {
        let subscribe = |topic| allows("sortie-node-3", topic, AclAction::Subscribe);
        assert!(subscribe("sortie/v1/nodes/3/cmd"));
        assert!(!subscribe("sortie/v1/nodes/4/cmd"));
        assert!(!subscribe("sortie/v1/nodes/+/cmd"));
        assert!(!subscribe("#"));
        assert!(!subscribe("sortie/v1/nodes/3/evt"));
    }

    #[test]
    fn watchers_read_the_public_trees_and_write_nothing() {
        let subscribe = |topic| allows("mosq-abc", topic, AclAction::Subscribe);
        assert!(subscribe("nodes/+/msg/#"));
        assert!(subscribe("nodes/1/status"));
        assert!(subscribe("plans/#"));
        assert!(subscribe("jobs/+/state"));
        assert!(!subscribe("#"));
        assert!(!subscribe("+/+/nodes/1/cmd"));
        assert!(!subscribe("sortie/v1/nodes/1/cmd"));
        assert!(!subscribe("$share/g/nodes/#"));
        assert!(!allows(
            "mosq-abc",
            "nodes/1/msg/status",
            AclAction::Publish
        ));
        assert!(!allows("mosq-abc", "nodes/1/status", AclAction::Publish));
    }

    #[test]
    fn the_coordinator_may_do_anything() {
        assert!(allows("sortie-coordinator", "#", AclAction::Subscribe));
        assert!(allows(
            "sortie-coordinator-points",
            "sortie/v1/nodes/1/cmd",
            AclAction::Publish
        ));
    }
}
