//! The task that owns rumqttc's `EventLoop`: it polls, reconnects with backoff and jitter, and
//! forwards what matters to the relay. It never awaits the relay's processing, so the
//! connection's keepalive never waits on the store.

use std::time::Duration;

use rand::Rng;
use rumqttc::{Event, EventLoop, Packet};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// What the link hands to the relay.
#[derive(Debug)]
pub enum LinkEvent {
    /// (Re)connected: subscribe again.
    Connected,
    /// A message arrived.
    Publish {
        /// Its topic.
        topic: String,
        /// Its payload.
        payload: bytes::Bytes,
    },
}

/// Polls `eventloop` until `shutdown`, forwarding to `tx`.
pub async fn run(
    mut eventloop: EventLoop,
    tx: mpsc::Sender<LinkEvent>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return,
            event = eventloop.poll() => event,
        };
        let forward = match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                tracing::info!("connected to the MQTT broker");
                Some(LinkEvent::Connected)
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => Some(LinkEvent::Publish {
                topic: publish.topic,
                payload: publish.payload,
            }),
            Ok(_) => None,
            Err(e) => {
                let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
                let wait = backoff + Duration::from_millis(jitter);
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection lost");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                None
            }
        };
        if let Some(event) = forward {
            if tx.send(event).await.is_err() {
                return;
            }
        }
    }
}
