//! Heartbeats: one right after each (re)connection and every `heartbeat_secs` while connected.
//!
//! Design: heartbeats go through the outbox like every event (the coordinator's replay guard
//! needs one strictly increasing `seq` stream), but none is queued while the link is down: a
//! heartbeat says "alive now", and a backlog of stale ones would only delay the events that
//! matter when the link returns. The one sent on reconnecting covers the gap.

use std::time::Duration;

use sortie_shared::{Event, JobRef};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::link::LinkState;

/// Appends heartbeats until `stop`.
pub async fn run_heartbeat(
    journal: Journal,
    period: Duration,
    mut link: watch::Receiver<LinkState>,
    active: watch::Receiver<Vec<JobRef>>,
    started: Instant,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + period, period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut generation = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
            changed = link.changed() => if changed.is_err() { return },
        }
        let connected = match &*link.borrow_and_update() {
            LinkState::Up { generation: g, .. } => Some(*g),
            LinkState::Down { .. } => None,
        };
        let Some(g) = connected else { continue };
        if g != generation {
            generation = g;
            ticker.reset();
        }
        let event = Event::Heartbeat {
            uptime_s: started.elapsed().as_secs(),
            running_jobs: active.borrow().clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        if let Err(e) = journal.append(vec![event]).await {
            tracing::error!(error = %e, "appending a heartbeat");
        }
    }
}
