//! Running one job, from its dispatch to its `Finished` event.
//!
//! ```text
//!  Accepted ─▶ work dir: fetch files (cache by sha256), entry file, env, extra.json
//!           ─▶ record Starting ─▶ spawn (own process group) ─▶ record Running + Started
//!           ─▶ watch: output → LogBatch, exit | cancel | timeout | link lost
//!              (stopping: safe-state command, SIGTERM, SIGKILL after the grace period)
//!           ─▶ upload output/ files → Output ─▶ record Finished + Finished
//! ```
//!
//! Every event goes through the journal's outbox; the job's record and its `Started` and
//! `Finished` events are committed together.

mod fetch;
mod logs;
mod monitor;
mod outputs;
mod safe_state;
mod spawn;
mod workdir;

pub use logs::{LogBatcher, MAX_BATCH_BYTES, MAX_BATCH_LINES};
pub use workdir::{entry_index, job_env, local_names};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sortie_shared::{Event, JobDispatch, JobRef, Outcome};
use tokio::sync::watch;
use tracing::Instrument;

use crate::blobs::BlobClient;
use crate::journal::{JobPhase, JobRecord, Journal};
use crate::link::LinkState;
use crate::process::Exit;
use logs::JobLog;

/// Name prefix of downloads in progress in the cache directory.
pub const PARTIAL_PREFIX: &str = ".partial-";

/// How long the safe-state steps may take, and then the safe-state command, each.
pub const SAFE_STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a job needs from its agent.
#[derive(Debug)]
pub struct JobContext {
    /// The node.
    pub node_id: u64,
    /// Records and outbox.
    pub journal: Journal,
    /// Plan files and outputs.
    pub blobs: BlobClient,
    /// The agent's data directory, absolute.
    pub data_dir: PathBuf,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// Run before stopping a job (after `safe_state`).
    pub safe_state_command: Option<String>,
    /// Hardware steps run first when stopping a job (on `hardware`).
    pub safe_state: Vec<sortie_hal::Step>,
    /// The node's hardware, if it has a `[hal]` table.
    pub hardware: Option<crate::hardware::HardwareHandle>,
    /// The hardware socket, given to jobs as `SORTIE_HAL_SOCKET`.
    pub hal_socket: Option<PathBuf>,
    /// Limit for dispatches without one.
    pub default_timeout: Option<Duration>,
    /// How long finished jobs are kept.
    pub retention: Duration,
    /// The broker link, for the dead-man's switch.
    pub link: watch::Receiver<LinkState>,
}

impl JobContext {
    /// `data_dir/jobs/<job id>`.
    pub fn work_dir(&self, job_id: u64) -> PathBuf {
        self.data_dir.join("jobs").join(job_id.to_string())
    }
}

/// Why the agent stopped a job before it ended by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The coordinator cancelled it, for this reason.
    Cancel(String),
    /// It ran past its time limit.
    Timeout(Duration),
    /// The broker was unreachable for this long while it ran (`abort_on_link_loss_s`).
    LinkLost(Duration),
    /// The agent is shutting down.
    AgentStopping,
}

impl StopReason {
    /// The outcome and reason to report.
    ///
    /// Design: a lost link ends the job as `Error`, not `Cancelled`: `Outcome::Error` is
    /// documented for "link lost", and the job state machine only accepts `Cancelled` from
    /// `canceling`, which the coordinator never entered.
    pub fn outcome(&self) -> (Outcome, String) {
        match self {
            StopReason::Cancel(reason) => (Outcome::Cancelled, reason.clone()),
            StopReason::Timeout(limit) => (
                Outcome::Timeout,
                format!("timed out after {} s", limit.as_secs()),
            ),
            StopReason::LinkLost(after) => (
                Outcome::Error,
                format!("link to the coordinator lost for {} s", after.as_secs()),
            ),
            StopReason::AgentStopping => (Outcome::Error, "agent stopped".to_owned()),
        }
    }
}

/// How the job ended, before it is reported.
struct Ending {
    outcome: Outcome,
    exit_code: Option<i32>,
    reason: Option<String>,
}

impl Ending {
    fn error(reason: impl Into<String>) -> Self {
        Ending {
            outcome: Outcome::Error,
            exit_code: None,
            reason: Some(reason.into()),
        }
    }

    fn of_process(exit: Exit, stop: Option<&StopReason>) -> Self {
        let exit_code = match exit {
            Exit::Code(code) => Some(code),
            Exit::Signal(_) => None,
        };
        match (stop, exit) {
            (Some(stop), _) => {
                let (outcome, reason) = stop.outcome();
                Ending {
                    outcome,
                    exit_code,
                    reason: Some(reason),
                }
            }
            (None, Exit::Code(code)) => Ending {
                outcome: Outcome::from_exit_code(code),
                exit_code,
                reason: (code != 0).then(|| format!("exit code {code}")),
            },
            (None, Exit::Signal(signal)) => Ending {
                outcome: Outcome::Failure,
                exit_code: None,
                reason: Some(format!("killed by signal {signal}")),
            },
        }
    }
}

/// Runs one accepted job to its end and reports it. Never panics on job errors: each ends as
/// an outcome. If the agent stops before the process started, the job stays `Accepted` and
/// runs after the next start.
pub async fn run_job(
    ctx: Arc<JobContext>,
    dispatch: JobDispatch,
    stop: watch::Receiver<Option<StopReason>>,
) {
    let job = dispatch.job;
    let span = tracing::info_span!("job", job_id = job.id, plan_id = job.plan_id);
    async move {
        let record = JobRecord::accepted(dispatch.clone(), crate::now_ms());
        let mut log = JobLog::new(job, ctx.journal.clone());
        let ending = match run(&ctx, &dispatch, &record, &mut log, stop).await {
            Some(ending) => ending,
            None => {
                tracing::info!("agent stopping before the job started; it stays queued");
                return;
            }
        };
        log.flush().await;
        finish(&ctx, &record, job, ending).await;
    }
    .instrument(span)
    .await
}

async fn run(
    ctx: &JobContext,
    dispatch: &JobDispatch,
    record: &JobRecord,
    log: &mut JobLog,
    mut stop: watch::Receiver<Option<StopReason>>,
) -> Option<Ending> {
    let prepared = tokio::select! {
        prepared = workdir::prepare(ctx, dispatch) => prepared,
        reason = monitor::stop_requested(&mut stop) => return match reason {
            StopReason::AgentStopping => None,
            other => Some(Ending::of_stop_before_start(&other)),
        },
    };
    let prepared = match prepared {
        Ok(prepared) => prepared,
        Err(reason) => {
            tracing::warn!(%reason, "job cannot start");
            return Some(Ending::error(reason));
        }
    };
    if let Err(e) = ctx
        .journal
        .put_job(record.with_phase(JobPhase::Starting))
        .await
    {
        return Some(Ending::error(format!("agent journal: {e}")));
    }
    let (lines_tx, lines_rx) = tokio::sync::mpsc::channel(256);
    let process = match spawn::spawn_entry(&prepared, lines_tx.clone()).await {
        Ok(process) => process,
        Err(e) => {
            let reason = format!("could not start {}: {e}", prepared.entry_name);
            tracing::warn!(%reason, "job cannot start");
            return Some(Ending::error(reason));
        }
    };
    let started_at_ms = crate::now_ms();
    let pid = process.pgid();
    let running = JobPhase::Running {
        pgid: pid,
        started_at_ms,
        boot_id: crate::recovery::current_boot_id(),
    };
    let started = Event::Started {
        job: dispatch.job,
        pid: pid as u32,
        started_at_ms,
    };
    if let Err(e) = ctx
        .journal
        .commit(Some(record.with_phase(running)), vec![started])
        .await
    {
        tracing::error!(error = %e, "recording the job's start");
    }
    tracing::info!(pid, entry = %prepared.entry_name, "job started");
    let limits = monitor::Limits {
        timeout: dispatch
            .timeout_s
            .filter(|&s| s > 0)
            .map(Duration::from_secs)
            .or(ctx.default_timeout),
        link_loss: dispatch.abort_on_link_loss_s.map(Duration::from_secs),
    };
    let end =
        monitor::watch_process(ctx, process, lines_rx, lines_tx, log, &mut stop, limits).await;
    let ending = match end.exit {
        Ok(exit) => Ending::of_process(exit, end.stop.as_ref()),
        Err(e) => Ending::error(format!("lost track of the job's process: {e}")),
    };
    if end.stop != Some(StopReason::AgentStopping) {
        outputs::upload_outputs(ctx, dispatch.job, &prepared.output_dir, log).await;
    }
    Some(ending)
}

impl Ending {
    fn of_stop_before_start(stop: &StopReason) -> Self {
        let (outcome, reason) = stop.outcome();
        Ending {
            outcome,
            exit_code: None,
            reason: Some(reason),
        }
    }
}

async fn finish(ctx: &JobContext, record: &JobRecord, job: JobRef, ending: Ending) {
    let now = crate::now_ms();
    let phase = JobPhase::Finished {
        outcome: ending.outcome,
        finished_at_ms: now,
    };
    tracing::info!(outcome = ?ending.outcome, exit_code = ?ending.exit_code, reason = ?ending.reason, "job finished");
    let event = Event::Finished {
        job,
        outcome: ending.outcome,
        exit_code: ending.exit_code,
        reason: ending.reason,
        finished_at_ms: now,
    };
    if let Err(e) = ctx
        .journal
        .commit(Some(record.with_phase(phase)), vec![event])
        .await
    {
        tracing::error!(error = %e, "recording the job's end");
    }
}

#[cfg(test)]
mod tests;
