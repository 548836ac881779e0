//! The points ingest task: its own MQTT connection (so video never queues behind job events
//! in the relay), subscribed to every node's telemetry and video.
//!
//! Telemetry arrives as public JSON; on the embedded broker only node N can publish under
//! `nodes/N/…` (its ACL), with an external broker that is the broker's ACL's job. Video arrives
//! sealed with the node's key and is refused unless the tag, node and sequence check out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sortie_shared::payloads::JsonPayload;
use sortie_shared::{
    check_clock_skew, open, Message, NodeKey, ReplayGuard, TelemetryPayload, Topic,
    DEFAULT_MAX_CLOCK_SKEW_MS,
};
use tokio_util::sync::CancellationToken;

use super::{Points, Sample};
use crate::mqtt::RelaySettings;
use crate::store::Store;

/// The ingest connection's client id (the embedded broker gives `sortie-coordinator…` ids the
/// coordinator's rights).
const CLIENT_ID: &str = "sortie-coordinator-points";

/// How often stream leases are renewed and idle streams stopped.
const DEMAND_TICK: Duration = Duration::from_secs(1);

struct Ingest {
    points: Points,
    store: Store,
    settings: RelaySettings,
    keys: HashMap<u64, NodeKey>,
    /// When a node's key was last (re)read, so a wrong tag does not hit the store per chunk.
    keys_read: HashMap<u64, Instant>,
    guard: ReplayGuard,
}

/// Runs until `shutdown`.
pub async fn run(
    settings: RelaySettings,
    store: Store,
    points: Points,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new(CLIENT_ID, settings.host.clone(), settings.port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_clean_session(true)
        .set_max_packet_size(2 << 20, 2 << 20);
    if let Some(user) = &settings.username {
        options.set_credentials(user.clone(), settings.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 64);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let mut ingest = Ingest {
        points: points.clone(),
        store,
        settings,
        keys: HashMap::new(),
        keys_read: HashMap::new(),
        guard: ReplayGuard::new(),
    };
    // Demand (lease renewals, stops) runs beside the connection, so a broker outage does not
    // stop it from being computed, and a slow relay does not hold up ingest.
    let demand = tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            let mut tick = tokio::time::interval(DEMAND_TICK);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = tick.tick() => points.settle_demand().await,
                }
            }
        }
    });
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = eventloop.poll() => event,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                let filters = [
                    Topic::all_telemetry_filter(),
                    Topic::all_streams_filter(&ingest.settings.prefix),
                ];
                for filter in filters {
                    if let Err(e) = client.subscribe(filter.clone(), QoS::AtMostOnce).await {
                        tracing::error!(%filter, error = %e, "subscribing");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                ingest.handle(&publish.topic, &publish.payload);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "points: MQTT connection lost");
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    let _ = client.disconnect().await;
    let _ = demand.await;
}

impl Ingest {
    fn handle(&mut self, topic: &str, payload: &[u8]) {
        match Topic::parse(topic, &self.settings.prefix) {
            Ok(Topic::NodeTelemetry { node_id, point }) => {
                match TelemetryPayload::from_json(payload) {
                    Ok(telemetry) => self.points.record_sample(
                        node_id,
                        point.as_str(),
                        Sample {
                            at: telemetry.at,
                            value: telemetry.value,
                        },
                    ),
                    Err(e) => {
                        tracing::debug!(node_id, %point, error = %e, "ignoring malformed telemetry")
                    }
                }
            }
            Ok(Topic::NodeStream { node_id, point }) => {
                self.handle_chunk(node_id, point.as_str(), topic, payload)
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(topic, error = %e, "points: ignoring a message on an unknown topic")
            }
        }
    }

    fn handle_chunk(&mut self, node_id: u64, point: &str, topic: &str, payload: &[u8]) {
        let Some(key) = self.key(node_id, false) else {
            return;
        };
        let envelope = match open(payload, topic, &key) {
            Ok(envelope) => envelope,
            Err(_) => {
                // The node's key may have been rotated since we read it.
                let Some(key) = self.key(node_id, true) else {
                    return;
                };
                match open(payload, topic, &key) {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        tracing::warn!(node_id, point, error = %e, "dropping video that fails authentication");
                        return;
                    }
                }
            }
        };
        if let Err(e) = envelope.check_node(node_id) {
            tracing::warn!(node_id, error = %e, "dropping video sealed for another node");
            return;
        }
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        if let Err(e) = check_clock_skew(envelope.sent_at_ms, now_ms, DEFAULT_MAX_CLOCK_SKEW_MS) {
            tracing::warn!(node_id, error = %e, "dropping stale video");
            return;
        }
        if let Err(e) = self.guard.accept(node_id, envelope.seq) {
            tracing::debug!(node_id, error = %e, "dropping replayed or reordered video");
            return;
        }
        match envelope.body {
            Message::Stream(chunk) if chunk.point == point => {
                self.points.hub(node_id, point).ingest(chunk);
            }
            _ => tracing::warn!(
                node_id,
                point,
                "dropping a non-video message on a video topic"
            ),
        }
    }

    /// The node's key; `reread` forces a store read (at most once a second per node).
    fn key(&mut self, node_id: u64, reread: bool) -> Option<NodeKey> {
        if !reread {
            if let Some(key) = self.keys.get(&node_id) {
                return Some(key.clone());
            }
        }
        let recently = self
            .keys_read
            .get(&node_id)
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1));
        if recently {
            return self.keys.get(&node_id).cloned().filter(|_| !reread);
        }
        self.keys_read.insert(node_id, Instant::now());
        let secrets = self.store.existing_node_secrets(node_id).ok().flatten()?;
        let key = NodeKey::from_hex(&secrets.key_hex).ok()?;
        self.keys.insert(node_id, key.clone());
        Some(key)
    }
}
