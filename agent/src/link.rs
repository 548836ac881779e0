//! The MQTT link: one task owns rumqttc's `EventLoop`, keeps it connected, and tells the rest
//! of the agent about it.
//!
//! ```text
//!            ┌──────────── link task (owns EventLoop) ────────────┐
//!  broker ◀──┤ ConnAck → status online (retained), subscribe cmd, │──▶ watch<LinkState>: Up{generation, client}
//!            │ Publish on cmd → commands channel (with its client) │──▶ mpsc<Incoming>
//!            │ poll error → Down{since}, backoff, new EventLoop    │
//!            └─────────────────────────────────────────────────────┘
//! ```
//!
//! Design: after every connection error the `AsyncClient`/`EventLoop` pair is dropped and a
//! new one is made. rumqttc would otherwise retransmit its own in-flight publishes first, and
//! requests still queued on the old connection could be sent after reconnecting, ahead of the
//! outbox resend — out of `seq` order, so the coordinator's replay guard would drop the rest.
//! With a fresh pair, the outbox publisher alone decides what is sent after a reconnect, and
//! publishing through a stale client fails instead of sneaking through. The broker keeps our
//! persistent session (subscription and queued commands) because the client id is stable and
//! `clean_session` is false.

use std::time::Duration;

use rand::Rng;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, Publish, QoS};
use sortie_shared::{
    JsonPayload, NodeStatus, NodeStatusPayload, Topic, TopicPrefix, MAX_ENVELOPE_BYTES,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::MqttEndpoint;

/// The broker connection as the other tasks see it.
#[derive(Clone, Debug)]
pub enum LinkState {
    /// Not connected since `since`.
    Down {
        /// When the link went down (or the agent started, if it never came up).
        since: Instant,
    },
    /// Connected. `generation` counts connections, so a task notices a reconnect even if it
    /// missed the `Down` in between.
    Up {
        /// Which connection this is, from 1.
        generation: u64,
        /// Publishes go through this connection's client.
        client: AsyncClient,
    },
}

/// A message received on the agent's command topic, with the client to acknowledge it on.
#[derive(Debug)]
pub struct Incoming {
    /// The MQTT publish (payload: a sealed envelope).
    pub publish: Publish,
    /// The client of the connection it arrived on (for the manual PUBACK).
    pub client: AsyncClient,
}

/// What the link needs to know.
#[derive(Debug, Clone)]
pub struct LinkSettings {
    /// The node.
    pub node_id: u64,
    /// The broker.
    pub endpoint: MqttEndpoint,
    /// Private topic prefix.
    pub prefix: TopicPrefix,
}

const KEEP_ALIVE: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs the link until `stop`, then publishes `offline` and disconnects cleanly.
pub async fn run_link(
    settings: LinkSettings,
    state: watch::Sender<LinkState>,
    incoming: mpsc::Sender<Incoming>,
    stop: CancellationToken,
) {
    let cmd_topic = Topic::NodeCommands {
        node_id: settings.node_id,
    }
    .to_string(&settings.prefix);
    let status_topic = Topic::NodeStatus {
        node_id: settings.node_id,
    }
    .to_string(&settings.prefix);
    let mut failures = 0u32;
    let mut next_warning = 0u32;
    let mut generation = 0u64;
    loop {
        let (client, mut eventloop) = AsyncClient::new(options(&settings, &status_topic), 64);
        // Events are small and latency-bound (a cancel confirmation): no Nagle delay.
        let mut network = rumqttc::NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let error = loop {
            let event = tokio::select! {
                _ = stop.cancelled() => {
                    if matches!(*state.borrow(), LinkState::Up { .. }) {
                        say_goodbye(&client, &mut eventloop, &status_topic).await;
                    }
                    return;
                }
                event = eventloop.poll() => event,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    failures = 0;
                    next_warning = 0;
                    generation += 1;
                    // The channel of a fresh client is empty, so these cannot fail for space;
                    // they go out before anything the publisher sends on this connection.
                    let online = status_payload(NodeStatus::Online);
                    if let Err(e) =
                        client.try_publish(&status_topic, QoS::AtLeastOnce, true, online)
                    {
                        tracing::warn!(error = %e, "queueing the online status");
                    }
                    if let Err(e) = client.try_subscribe(&cmd_topic, QoS::AtLeastOnce) {
                        tracing::warn!(error = %e, "queueing the command subscription");
                    }
                    tracing::info!(broker = %settings.endpoint, generation, "connected to the broker");
                    state.send_replace(LinkState::Up {
                        generation,
                        client: client.clone(),
                    });
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if publish.topic != cmd_topic {
                        tracing::warn!(topic = %publish.topic, "ignoring a message on an unexpected topic");
                        let _ = client.try_ack(&publish);
                        continue;
                    }
                    let message = Incoming {
                        publish,
                        client: client.clone(),
                    };
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        sent = incoming.send(message) => if sent.is_err() { return },
                    }
                }
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        let was_up = matches!(*state.borrow(), LinkState::Up { .. });
        if was_up {
            state.send_replace(LinkState::Down {
                since: Instant::now(),
            });
            tracing::warn!(broker = %settings.endpoint, error = %error, "lost the broker");
        } else if failures >= next_warning {
            // Say it on the first failure and then every 50, not every 100 ms.
            next_warning = failures + 50;
            tracing::warn!(broker = %settings.endpoint, error = %error, failures, "cannot reach the broker");
        } else {
            tracing::debug!(error = %error, failures, "cannot reach the broker");
        }
        let delay = backoff(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

fn options(settings: &LinkSettings, status_topic: &str) -> MqttOptions {
    let client_id = format!("sortie-node-{}", settings.node_id);
    let mut options = MqttOptions::new(client_id, &settings.endpoint.host, settings.endpoint.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_clean_session(false)
        .set_manual_acks(true)
        // Envelopes are at most 256 KiB; leave room for the topic and MQTT's own header.
        .set_max_packet_size(
            MAX_ENVELOPE_BYTES + 64 * 1024,
            MAX_ENVELOPE_BYTES + 64 * 1024,
        )
        .set_last_will(LastWill::new(
            status_topic,
            status_payload(NodeStatus::Offline),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some((user, password)) = &settings.endpoint.credentials {
        options.set_credentials(user, password);
    }
    options
}

fn status_payload(status: NodeStatus) -> Vec<u8> {
    NodeStatusPayload {
        status,
        last_seen: chrono::Utc::now(),
    }
    .to_json()
}

/// Exponential backoff from 100 ms to 5 s, with jitter (a random half to full delay) so a
/// fleet that lost the broker together does not come back in lockstep.
fn backoff(failures: u32) -> Duration {
    let full = BACKOFF_MIN
        .saturating_mul(1u32 << failures.min(16))
        .min(BACKOFF_MAX);
    let millis = full.as_millis() as u64;
    Duration::from_millis(rand::thread_rng().gen_range(millis / 2..=millis))
}

/// A clean DISCONNECT suppresses the last will, so say `offline` ourselves first.
async fn say_goodbye(client: &AsyncClient, eventloop: &mut rumqttc::EventLoop, status_topic: &str) {
    let offline = status_payload(NodeStatus::Offline);
    if client
        .try_publish(status_topic, QoS::AtLeastOnce, true, offline)
        .is_err()
        || client.try_disconnect().is_err()
    {
        return;
    }
    let drained = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    if drained.await.is_err() {
        tracing::warn!("the broker did not take the disconnect in time");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_with_jitter() {
        for _ in 0..100 {
            let first = backoff(0);
            assert!(
                first >= BACKOFF_MIN / 2 && first <= BACKOFF_MIN,
                "{first:?}"
            );
            let late = backoff(40);
            assert!(late >= BACKOFF_MAX / 2 && late <= BACKOFF_MAX, "{late:?}");
        }
        assert!(backoff(3) <= Duration::from_millis(800));
    }
}
