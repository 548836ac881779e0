//! Points: the live data of nodes — telemetry values and video streams — kept in memory and
//! served to HTTP viewers.
//!
//! ```text
//!  agent ── nodes/{id}/msg/{point} (JSON, retained) ──▶ broker ──▶ ingest ──▶ latest value ─▶ GET, SSE
//!  agent ── {prefix}/nodes/{id}/live/{point} (sealed FLV tags) ──▶ ingest ──▶ StreamHub ─▶ live.flv viewers
//!  viewers ─▶ StreamHub::join ─▶ demand loop ─▶ relay ── StreamStart / StreamStop ──▶ agent
//! ```
//!
//! Nothing here is persisted: after a restart the broker's retained messages bring the latest
//! telemetry back, and video only matters live.
//!
//! # Layout
//! - `hub.rs`: one video point's fan-out (late-join cache, broadcast, viewer count, demand).
//! - `viewer.rs`: one HTTP-FLV viewer (rebased timestamps, skipping ahead when slow).
//! - `ingest.rs`: the MQTT task that feeds values and hubs, and asks devices to stream.
//! - `share.rs`: signed, short-lived share tokens for players.

mod hub;
mod ingest;
mod share;
mod viewer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sortie_shared::Command;
use tokio::sync::watch;

pub use hub::{HubStats, StreamHub, Viewer};
pub use ingest::run as run_ingest;
pub use share::{ShareError, ShareKey};
pub use viewer::run_viewer;

use crate::mqtt::{RelayHandle, RelayRequest};

/// How long a device streams after a `StreamStart` without renewal.
pub const STREAM_LEASE: Duration = Duration::from_secs(30);

/// The coordinator renews a lease this often while someone watches.
pub const STREAM_RENEW: Duration = Duration::from_secs(10);

/// How long a stream nobody watches may go on before the device is told to stop (a player
/// that reconnects at once finds it running).
pub const STREAM_LINGER: Duration = Duration::from_secs(5);

/// Most (node, point) values kept; beyond it new points are ignored (a misbehaving device
/// cannot grow the map without bound).
const MAX_TELEMETRY_POINTS: usize = 200_000;

/// The latest value of a telemetry point.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When the device sampled it.
    pub at: DateTime<Utc>,
    /// The value.
    pub value: serde_json::Value,
}

/// How a point's source on the device is doing, from its last `PointHealth` event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SourceHealth {
    /// The source produces data.
    pub healthy: bool,
    /// What happened last (`started`, `exited with code 1; restarting in 2 s`).
    pub message: String,
    /// When.
    pub at: crate::model::Timestamp,
}

type PointKey = (u64, String);

#[derive(Debug, Default)]
struct Registry {
    telemetry: HashMap<PointKey, watch::Sender<Option<Arc<Sample>>>>,
    hubs: HashMap<PointKey, Arc<StreamHub>>,
    health: HashMap<PointKey, SourceHealth>,
    full_warned: bool,
}

/// The points of every node, shared by the API, the relay and the ingest task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Points {
    registry: Arc<Mutex<Registry>>,
    relay: RelayHandle,
    share_key: ShareKey,
}

impl Points {
    /// An empty registry that asks devices to stream through `relay`.
    pub fn new(relay: RelayHandle, share_key: ShareKey) -> Points {
        Points {
            registry: Arc::default(),
            relay,
            share_key,
        }
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The key that signs share tokens.
    pub fn share_key(&self) -> &ShareKey {
        &self.share_key
    }

    /// Records a telemetry value.
    pub fn record_sample(&self, node_id: u64, point: &str, sample: Sample) {
        let mut registry = self.registry();
        let key = (node_id, point.to_owned());
        if let Some(sender) = registry.telemetry.get(&key) {
            sender.send_replace(Some(Arc::new(sample)));
            return;
        }
        if registry.telemetry.len() >= MAX_TELEMETRY_POINTS {
            if !registry.full_warned {
                registry.full_warned = true;
                tracing::warn!(
                    limit = MAX_TELEMETRY_POINTS,
                    "too many telemetry points; ignoring new ones"
                );
            }
            return;
        }
        registry
            .telemetry
            .insert(key, watch::channel(Some(Arc::new(sample))).0);
    }

    /// The latest value of a telemetry point and a receiver for the next ones.
    pub fn watch_sample(&self, node_id: u64, point: &str) -> watch::Receiver<Option<Arc<Sample>>> {
        let mut registry = self.registry();
        registry
            .telemetry
            .entry((node_id, point.to_owned()))
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }

    /// The latest value of a telemetry point.
    pub fn sample(&self, node_id: u64, point: &str) -> Option<Arc<Sample>> {
        let registry = self.registry();
        registry
            .telemetry
            .get(&(node_id, point.to_owned()))
            .and_then(|sender| sender.borrow().clone())
    }

    /// Records what a device said about a point's source.
    pub fn record_health(&self, node_id: u64, point: &str, health: SourceHealth) {
        self.registry()
            .health
            .insert((node_id, point.to_owned()), health);
    }

    /// The last health report of a point's source.
    pub fn health(&self, node_id: u64, point: &str) -> Option<SourceHealth> {
        self.registry()
            .health
            .get(&(node_id, point.to_owned()))
            .cloned()
    }

    /// The hub of a video point, created on first use.
    pub fn hub(&self, node_id: u64, point: &str) -> Arc<StreamHub> {
        let mut registry = self.registry();
        Arc::clone(
            registry
                .hubs
                .entry((node_id, point.to_owned()))
                .or_insert_with(|| Arc::new(StreamHub::new(node_id, point.to_owned()))),
        )
    }

    /// The hub of a video point, if anyone watched or the device sent video.
    pub fn existing_hub(&self, node_id: u64, point: &str) -> Option<Arc<StreamHub>> {
        self.registry()
            .hubs
            .get(&(node_id, point.to_owned()))
            .cloned()
    }

    /// Joins a video point as a viewer; the first viewer makes the device start at once.
    pub async fn watch_video(&self, node_id: u64, point: &str) -> Viewer {
        let hub = self.hub(node_id, point);
        let (viewer, first) = hub.join();
        if first {
            // Start now rather than at the next demand tick (unless the device still streams
            // for a viewer that just left).
            let demand = hub.demand(STREAM_RENEW, STREAM_LINGER);
            self.ask_device(&hub, demand).await;
        }
        viewer
    }

    /// Renews leases of watched streams and stops streams nobody watches any more.
    pub(crate) async fn settle_demand(&self) {
        let hubs: Vec<Arc<StreamHub>> = self.registry().hubs.values().cloned().collect();
        for hub in hubs {
            let demand = hub.demand(STREAM_RENEW, STREAM_LINGER);
            self.ask_device(&hub, demand).await;
        }
    }

    async fn ask_device(&self, hub: &StreamHub, demand: hub::Demand) {
        let command = match demand {
            hub::Demand::Start => Command::StreamStart {
                point: hub.point.clone(),
                lease_s: STREAM_LEASE.as_secs() as u32,
            },
            hub::Demand::Stop => Command::StreamStop {
                point: hub.point.clone(),
            },
            hub::Demand::Nothing => return,
        };
        tracing::debug!(node_id = hub.node_id, point = %hub.point, ?demand, "asking the device");
        self.relay
            .send(RelayRequest::NodeCommand {
                node_id: hub.node_id,
                command,
            })
            .await;
    }
}
