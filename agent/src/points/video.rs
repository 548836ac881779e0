//! A video point's task: starts and stops its stream on demand, and restarts a failing source.
//!
//! ```text
//!              StreamStart(lease) / StreamStop / lease expiry
//!                          │
//!   idle ◀──── not wanted ─┴─ wanted ────▶ streaming (a Session, new stream_id)
//!     ▲                                       │ source failed: PointHealth unhealthy
//!     └──── not wanted ──── backoff ◀─────────┘   (retry after 1 s, 2 s, … 30 s)
//! ```

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::health::HealthReporter;
use super::lease::Demand;
use super::session::{Session, SessionEnd, SessionEvent, SessionSetup};
use super::PointDeps;
use crate::config::{PointConfig, VideoSource};

/// What the command intake tells a video point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoControl {
    /// Someone watches: stream for `lease_s` seconds more.
    Start {
        /// Seconds the request holds.
        lease_s: u32,
    },
    /// Nobody watches any more.
    Stop,
}

/// Runs a video point until `stop`.
pub async fn run_video(
    point: PointConfig,
    source: VideoSource,
    always_on: bool,
    deps: PointDeps,
    mut control: mpsc::Receiver<VideoControl>,
    stop: CancellationToken,
) {
    let name = point.name.as_str().to_owned();
    let setup = SessionSetup {
        point: point.name.clone(),
        source,
        streams: deps.streams.clone(),
        link: deps.link.clone(),
        work_dir: deps.data_dir.clone(),
        env: deps.source_env(&name),
    };
    let mut health = HealthReporter::new(&name, deps.journal.clone());
    let mut backoff = Backoff::new(deps.restart);
    let mut demand = Demand::new(always_on);
    let mut session: Option<Session> = None;
    let mut retry_at: Option<Instant> = None;
    let mut control_open = true;
    loop {
        let now = Instant::now();
        demand.expire(now);
        let wanted = demand.wanted(now);
        if !wanted {
            // A failing source is not retried while nobody watches.
            retry_at = None;
            if let Some(running) = session.take() {
                tracing::info!(point = %name, "video stream stopping: nobody watches");
                running.stop().await;
            }
        } else if session.is_none() && retry_at.is_none_or(|at| now >= at) {
            retry_at = None;
            session = Some(Session::start(setup.clone()));
        }
        let expires = demand.expires_at();
        tokio::select! {
            _ = stop.cancelled() => break,
            message = control.recv(), if control_open => match message {
                Some(VideoControl::Start { lease_s }) => demand.start(Instant::now(), lease_s),
                Some(VideoControl::Stop) => demand.stop(),
                None => control_open = false,
            },
            _ = sleep_until(expires), if expires.is_some() => {}
            _ = sleep_until(retry_at), if retry_at.is_some() => {}
            event = next_event(&mut session) => match event {
                SessionEvent::Started => health.healthy().await,
                SessionEvent::Ended(SessionEnd { reason, healthy_for }) => {
                    session = None;
                    let delay = backoff.failed(healthy_for);
                    health.unhealthy(&reason, Some(delay)).await;
                    retry_at = Some(Instant::now() + delay);
                }
            },
        }
    }
    if let Some(running) = session.take() {
        running.stop().await;
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn next_event(session: &mut Option<Session>) -> SessionEvent {
    match session {
        Some(session) => session.next_event().await,
        None => std::future::pending().await,
    }
}
