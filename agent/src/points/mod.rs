//! The node's points: live data the agent publishes by itself, next to the jobs.
//!
//! ```text
//!  [[points]] ──▶ one task per point (own state, cancelled with the agent)
//!   telemetry: hal reading every 1/rate_hz │ sh -c … JSON lines ─▶ nodes/{id}/msg/{point} (retained, QoS 0)
//!   video:     sh -c … FLV │ file │ demo ─▶ FlvReader ─▶ TagQueue ─▶ sealed StreamChunks
//!                                          ─▶ {prefix}/nodes/{id}/live/{point} (QoS 0, while watched)
//!  commands ── StreamStart/StreamStop ──▶ Points ──▶ the video point's lease
//!  every source ── started / failed ──▶ PointHealth events (journaled, on transitions only)
//! ```
//!
//! Sources that fail (a command that exits, malformed FLV, a stall) are restarted with
//! exponential backoff and jitter. Nothing a point does waits for the link: while it is down,
//! telemetry samples are skipped and video tags dropped.
//!
//! - [`telemetry`]: telemetry points and their publisher.
//! - [`video`]: a video point's task and [`VideoControl`]; [`session`]: one run of its
//!   source under one `stream_id`; [`clip`]: looping a file or the demo clip in real time;
//!   [`stream`]: sealing chunks with their own `seq`.
//! - [`command`]: a supervised `/bin/sh -c` source; [`backoff`], [`lease`], [`health`]: the
//!   pure rules for restarting, leasing and reporting.

pub mod backoff;
pub mod clip;
pub mod command;
pub mod health;
pub mod lease;
pub mod session;
pub mod stream;
pub mod telemetry;
pub mod video;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{PointConfig, PointSpec};
use crate::hardware::HardwareHandle;
use crate::journal::Journal;
use crate::link::LinkState;
pub use backoff::RestartPolicy;
pub use stream::StreamSender;
pub use video::VideoControl;

/// What the point tasks share.
#[derive(Debug, Clone)]
pub struct PointDeps {
    /// The node.
    pub node_id: u64,
    /// The broker link: points publish through its current client.
    pub link: watch::Receiver<LinkState>,
    /// Where `PointHealth` events go.
    pub journal: Journal,
    /// The hardware, for `hal` telemetry.
    pub hardware: Option<HardwareHandle>,
    /// Seals and publishes video chunks.
    pub streams: StreamSender,
    /// The agent's data directory: command sources run there.
    pub data_dir: PathBuf,
    /// The hardware socket, given to command sources as `SORTIE_HAL_SOCKET`.
    pub hal_socket: Option<PathBuf>,
    /// How failing sources are restarted.
    pub restart: RestartPolicy,
}

impl PointDeps {
    /// The variables a command source of `point` gets.
    pub fn source_env(&self, point: &str) -> Vec<(String, String)> {
        let mut env = vec![
            ("SORTIE_NODE_ID".to_owned(), self.node_id.to_string()),
            ("SORTIE_POINT".to_owned(), point.to_owned()),
        ];
        if let Some(socket) = &self.hal_socket {
            env.push((
                crate::hardware::socket::SOCKET_ENV.to_owned(),
                socket.display().to_string(),
            ));
        }
        env
    }
}

/// The command intake's handle on the video points. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Points {
    video: Arc<HashMap<String, mpsc::Sender<VideoControl>>>,
    telemetry: Arc<Vec<String>>,
}

impl Points {
    /// `StreamStart`: someone watches `point` for `lease_s` seconds more.
    pub fn stream_start(&self, point: &str, lease_s: u32) {
        self.tell(point, VideoControl::Start { lease_s });
    }

    /// `StreamStop`: nobody watches `point` any more.
    pub fn stream_stop(&self, point: &str) {
        self.tell(point, VideoControl::Stop);
    }

    fn tell(&self, point: &str, control: VideoControl) {
        match self.video.get(point) {
            // The coordinator repeats StreamStart every lease/3, so a full queue (the point is
            // busy stopping its source) loses nothing that matters.
            Some(tx) => {
                if tx.try_send(control).is_err() {
                    tracing::debug!(point, ?control, "video point busy; request dropped");
                }
            }
            None if self.telemetry.iter().any(|p| p == point) => {
                tracing::warn!(point, "a stream request for a telemetry point; ignored");
            }
            None => tracing::warn!(
                point,
                "a stream request for a point this agent does not have"
            ),
        }
    }
}

/// Starts one task per point on `tracker`; they stop on `stop`.
pub fn spawn_points(
    points: &[PointConfig],
    deps: &PointDeps,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) -> Points {
    let mut video = HashMap::new();
    let mut telemetry = Vec::new();
    for point in points {
        let name = point.name.as_str().to_owned();
        match &point.spec {
            PointSpec::Telemetry(source) => {
                telemetry.push(name);
                tracker.spawn(telemetry::run_telemetry(
                    point.clone(),
                    source.clone(),
                    deps.clone(),
                    stop.child_token(),
                ));
            }
            PointSpec::Video { source, always_on } => {
                let (tx, rx) = mpsc::channel(8);
                video.insert(name, tx);
                tracker.spawn(video::run_video(
                    point.clone(),
                    source.clone(),
                    *always_on,
                    deps.clone(),
                    rx,
                    stop.child_token(),
                ));
            }
        }
    }
    if !points.is_empty() {
        tracing::info!(
            video = video.len(),
            telemetry = telemetry.len(),
            "points started"
        );
    }
    Points {
        video: Arc::new(video),
        telemetry: Arc::new(telemetry),
    }
}

#[cfg(test)]
mod tests;
