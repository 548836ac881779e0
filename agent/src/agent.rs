//! One agent: its tasks, wired together, and its shutdown.
//!
//! ```text
//!            ┌────────── link (EventLoop) ◀──────────── broker
//!  watch<LinkState>      │ mpsc<Incoming>
//!     │  │  │  │         ▼
//!     │  │  │  │     commands ──▶ supervisor ──▶ job task (one at a time)
//!     │  │  │  │         │ StreamStart/Stop   │ active jobs   │ safe-state steps
//!     │  │  │  └──────▶ points (telemetry, video) ◀── hardware thread ◀── hal.sock (jobs, CLI)
//!     │  │  └─────────▶ heartbeat        │               │
//!     │  └────────────▶ (job: dead-man's switch)          │
//!     ▼                       journal (sled): records + outbox ◀──┘  (+ PointHealth)
//!  publisher ◀── durable seq ─┘
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::blobs::{BlobClient, BlobError};
use crate::commands::{run_commands, CommandSettings};
use crate::config::AgentConfig;
use crate::hardware::{follow_job_activity, open_hardware, socket, HardwareError, HardwareHandle};
use crate::heartbeat::run_heartbeat;
use crate::job::{JobContext, SAFE_STATE_TIMEOUT};
use crate::journal::{Journal, JournalError};
use crate::link::{run_link, LinkSettings, LinkState};
use crate::outbox::{run_publisher, PublisherSettings};
use crate::points::{spawn_points, PointDeps, RestartPolicy, StreamSender};
use crate::supervisor::spawn_supervisor;

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data directory could not be created or resolved.
    #[error("data directory {path}: {error}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The journal could not be opened or recovered.
    #[error("journal: {0}")]
    Journal(#[from] JournalError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Http(#[from] BlobError),
    /// The hardware (`[hal]`) could not be opened: a bad pin, a missing device. (Not a
    /// `source`: the message already holds the layer's whole error chain.)
    #[error("hardware ([hal]): {0}")]
    Hardware(HardwareError),
    /// The hardware socket could not be created.
    #[error("hardware socket {path}: {error}")]
    HalSocket {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
}

/// How long the publisher may take to hand the last events to the broker on shutdown.
const DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// Runs one agent until `shutdown` is cancelled.
///
/// Design: on shutdown a running job is stopped through the cancel path (safe-state command,
/// SIGTERM, SIGKILL after the grace period) and reported as `Finished{Error, "agent stopped"}`.
/// Leaving it to restart recovery would leave a process nobody supervises: its output pipes
/// break, its timeout and the dead-man's switch are no longer enforced, and recovery would
/// SIGKILL it later without the safe-state command. Jobs accepted but not started stay queued
/// in the journal and run after the next start.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    let node_id = config.node_id;
    let data_dir = prepare_data_dir(&config.data_dir)?;
    let journal_dir = data_dir.join("journal");
    let journal = tokio::task::spawn_blocking(move || Journal::open(&journal_dir, node_id))
        .await
        .map_err(JournalError::from)??;
    let blobs = BlobClient::new(&config.coordinator_url, &config.api_token)?;
    let hardware = match config.hal.clone() {
        Some(hal) => Some(
            tokio::task::spawn_blocking(move || open_hardware(&hal))
                .await
                .map_err(|e| HardwareError(format!("opening the hardware: {e}")))
                .and_then(|opened| opened)
                .map_err(AgentError::Hardware)?,
        ),
        None => None,
    };
    let hal_socket = match &hardware {
        Some(_) => {
            let path = data_dir.join(socket::SOCKET_NAME);
            let listener = socket::bind(&path).map_err(|error| AgentError::HalSocket {
                path: path.clone(),
                error,
            })?;
            Some((path, listener))
        }
        None => None,
    };
    let (link_tx, link_rx) = watch::channel(LinkState::Down {
        since: Instant::now(),
    });
    let ctx = Arc::new(JobContext {
        node_id,
        journal: journal.clone(),
        blobs,
        data_dir: data_dir.clone(),
        kill_grace: config.kill_grace,
        safe_state_command: config.safe_state_command.clone(),
        safe_state: config.safe_state.clone(),
        hardware: hardware.clone(),
        hal_socket: hal_socket.as_ref().map(|(path, _)| path.clone()),
        default_timeout: config.default_timeout,
        retention: config.retention,
        link: link_rx.clone(),
    });
    let queue = crate::recovery::recover(&ctx).await?;
    tracing::info!(
        node_id,
        broker = %config.mqtt,
        coordinator = %config.coordinator_url,
        data_dir = %data_dir.display(),
        key = %config.node_key.fingerprint(),
        queued = queue.len(),
        backlog = journal.outbox_len(),
        "agent starting"
    );

    let tracker = TaskTracker::new();
    let jobs_stop = CancellationToken::new();
    let link_stop = CancellationToken::new();
    let (active_tx, active_rx) = watch::channel(Vec::new());
    let (supervisor, supervisor_task) =
        spawn_supervisor(Arc::clone(&ctx), queue, active_tx, jobs_stop.clone());
    let (incoming_tx, incoming_rx) = mpsc::channel(64);
    let (published_tx, mut published_rx) = watch::channel(0);
    let link = LinkSettings {
        node_id,
        endpoint: config.mqtt.clone(),
        prefix: config.mqtt_prefix.clone(),
    };
    tracker.spawn(run_link(link, link_tx, incoming_tx, link_stop.clone()));
    let publisher = PublisherSettings {
        node_id,
        key: config.node_key.clone(),
        prefix: config.mqtt_prefix.clone(),
    };
    tracker.spawn(run_publisher(
        publisher,
        journal.clone(),
        link_rx.clone(),
        published_tx,
        link_stop.clone(),
    ));
    let point_deps = PointDeps {
        node_id,
        link: link_rx.clone(),
        journal: journal.clone(),
        hardware: hardware.clone(),
        streams: StreamSender::new(node_id, config.node_key.clone(), config.mqtt_prefix.clone()),
        data_dir: data_dir.clone(),
        hal_socket: ctx.hal_socket.clone(),
        restart: RestartPolicy::default(),
    };
    // Points stop with the jobs, before the link goes: their processes are stopped while the
    // agent can still say so.
    let points = spawn_points(&config.points, &point_deps, &tracker, &jobs_stop);
    if let Some(hardware) = &hardware {
        start_hardware_tasks(
            hardware,
            hal_socket,
            active_rx.clone(),
            &tracker,
            &link_stop,
        );
    }
    let commands = CommandSettings {
        node_id,
        key: config.node_key.clone(),
        prefix: config.mqtt_prefix.clone(),
        points,
    };
    tracker.spawn(run_commands(
        commands,
        journal.clone(),
        supervisor,
        incoming_rx,
        jobs_stop.clone(),
    ));
    tracker.spawn(run_heartbeat(
        journal.clone(),
        config.heartbeat,
        link_rx,
        active_rx,
        Instant::now(),
        jobs_stop.clone(),
    ));
    tracker.close();

    shutdown.cancelled().await;
    tracing::info!(node_id, "agent stopping");
    jobs_stop.cancel();
    let job_limit = SAFE_STATE_TIMEOUT + config.kill_grace + Duration::from_secs(5);
    if tokio::time::timeout(job_limit, supervisor_task)
        .await
        .is_err()
    {
        tracing::warn!(node_id, "the running job did not stop in time");
    }
    // Hand what is durable to the broker before disconnecting (acks may still be missing;
    // those events are resent after the next start).
    let durable = *journal.durable().borrow();
    let drained = tokio::time::timeout(DRAIN_LIMIT, published_rx.wait_for(|&seq| seq >= durable));
    if journal.outbox_len() > 0 && drained.await.is_err() {
        tracing::info!(
            node_id,
            backlog = journal.outbox_len(),
            "events left in the outbox for the next start"
        );
    }
    link_stop.cancel();
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(node_id, "some agent tasks did not finish in time");
    }
    journal.flush().await?;
    tracing::info!(node_id, "agent stopped");
    Ok(())
}

/// The hardware's companions: the socket jobs and the CLI drive it through, and the job
/// activity the simulated drone flies by.
fn start_hardware_tasks(
    hardware: &HardwareHandle,
    hal_socket: Option<(PathBuf, tokio::net::UnixListener)>,
    active: watch::Receiver<Vec<sortie_shared::JobRef>>,
    tracker: &TaskTracker,
    stop: &CancellationToken,
) {
    if let Some((path, listener)) = hal_socket {
        tracing::info!(socket = %path.display(), "hardware socket ready");
        tracker.spawn(socket::serve(
            listener,
            path,
            hardware.clone(),
            stop.clone(),
        ));
    }
    tracker.spawn(follow_job_activity(hardware.clone(), active, stop.clone()));
}

/// Creates the data directory and its parts; returns it absolute (jobs see absolute paths).
fn prepare_data_dir(dir: &Path) -> Result<PathBuf, AgentError> {
    let fail = |error| AgentError::DataDir {
        path: dir.to_owned(),
        error,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let dir = dir.canonicalize().map_err(fail)?;
    for part in ["jobs", "cache"] {
        std::fs::create_dir_all(dir.join(part)).map_err(fail)?;
    }
    Ok(dir)
}
