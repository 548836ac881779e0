//! The job supervisor: the one task that decides what happens to jobs. It takes dispatches and
//! cancels from the command intake, keeps the queue, runs one job at a time, and is the only
//! writer of job records outside the running job's own task.
//!
//! ```text
//!  commands ── Dispatch ──▶ known id? ignore : record Accepted + event Accepted ──▶ queue
//!           ── Cancel ────▶ running? stop it : queued? drop it : unknown? tombstone
//!                           (the last two answer Finished{Cancelled} at once)
//!  queue ──▶ run_job (one at a time) ──▶ Finished ──▶ next
//! ```

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use sortie_shared::{CancelRequest, Event, JobDispatch, JobRef, Outcome};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::job::{run_job, JobContext, StopReason};
use crate::journal::{JobPhase, JobRecord, JournalError};
use crate::recovery;

/// How often finished jobs past their retention are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

enum Request {
    Dispatch(JobDispatch, oneshot::Sender<Result<(), JournalError>>),
    Cancel(CancelRequest, oneshot::Sender<Result<(), JournalError>>),
}

/// A handle on the supervisor task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Supervisor {
    requests: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Request::Dispatch(d, _) => write!(f, "Dispatch({})", d.job),
            Request::Cancel(c, _) => write!(f, "Cancel({})", c.job),
        }
    }
}

impl Supervisor {
    /// Hands over a dispatch; returns once it is durable (recorded and `Accepted` in the
    /// outbox), or ignored as a redelivery. `None` if the supervisor has stopped.
    pub async fn dispatch(&self, dispatch: JobDispatch) -> Option<Result<(), JournalError>> {
        self.ask(|reply| Request::Dispatch(dispatch, reply)).await
    }

    /// Hands over a cancel; returns once it is recorded or passed to the running job.
    pub async fn cancel(&self, cancel: CancelRequest) -> Option<Result<(), JournalError>> {
        self.ask(|reply| Request::Cancel(cancel, reply)).await
    }

    async fn ask(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<(), JournalError>>) -> Request,
    ) -> Option<Result<(), JournalError>> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(request(reply)).await.ok()?;
        answer.await.ok()
    }
}

struct Current {
    job: JobRef,
    stop: watch::Sender<Option<StopReason>>,
    task: JoinHandle<()>,
}

/// The supervisor's state.
struct State {
    ctx: Arc<JobContext>,
    queue: VecDeque<JobDispatch>,
    current: Option<Current>,
    active: watch::Sender<Vec<JobRef>>,
}

/// Starts the supervisor with the jobs recovery left queued. `active` lists the jobs the
/// agent owns and has not finished (running first), for heartbeats. On `stop`, a running job
/// is stopped through the cancel path and reported as `Error` ("agent stopped"); queued jobs
/// stay `Accepted` in the journal and run after the next start.
pub fn spawn_supervisor(
    ctx: Arc<JobContext>,
    queue: VecDeque<JobDispatch>,
    active: watch::Sender<Vec<JobRef>>,
    stop: CancellationToken,
) -> (Supervisor, JoinHandle<()>) {
    let (requests, inbox) = mpsc::channel(16);
    let state = State {
        ctx,
        queue,
        current: None,
        active,
    };
    let task = tokio::spawn(state.run(inbox, stop));
    (Supervisor { requests }, task)
}

impl State {
    async fn run(mut self, mut inbox: mpsc::Receiver<Request>, stop: CancellationToken) {
        let mut prune =
            tokio::time::interval_at(tokio::time::Instant::now() + PRUNE_EVERY, PRUNE_EVERY);
        loop {
            if self.current.is_none() {
                if let Some(dispatch) = self.queue.pop_front() {
                    self.start(dispatch);
                }
            }
            self.publish_active();
            tokio::select! {
                _ = stop.cancelled() => break,
                request = inbox.recv() => match request {
                    Some(Request::Dispatch(dispatch, reply)) => {
                        let _ = reply.send(self.dispatch(dispatch).await);
                    }
                    Some(Request::Cancel(cancel, reply)) => {
                        let _ = reply.send(self.cancel(cancel).await);
                    }
                    None => break,
                },
                ended = job_ended(&mut self.current) => {
                    let current = self.current.take().expect("job_ended waits on a job");
                    if let Err(e) = ended {
                        self.job_task_failed(current.job, e).await;
                    }
                }
                _ = prune.tick() => {
                    if let Err(e) = recovery::prune(&self.ctx).await {
                        tracing::error!(error = %e, "pruning finished jobs");
                    }
                }
            }
        }
        if let Some(current) = self.current.take() {
            tracing::info!(
                job_id = current.job.id,
                "agent stopping: stopping the running job"
            );
            current
                .stop
                .send_if_modified(|reason| set_once(reason, StopReason::AgentStopping));
            let _ = current.task.await;
        }
    }

    /// A job task panicked: make sure its process is gone and the job is reported.
    async fn job_task_failed(&self, job: JobRef, error: tokio::task::JoinError) {
        tracing::error!(job_id = job.id, error = %error, "job task failed");
        let reason = format!("agent error while running the job: {error}");
        match self.ctx.journal.job(job.id).await {
            Ok(Some(record)) if !record.phase.is_finished() => {
                if let Err(e) = recovery::finish_interrupted(&self.ctx, &record, &reason).await {
                    tracing::error!(job_id = job.id, error = %e, "recording the failed job");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(job_id = job.id, error = %e, "reading the failed job"),
        }
    }

    fn start(&mut self, dispatch: JobDispatch) {
        let job = dispatch.job;
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(run_job(Arc::clone(&self.ctx), dispatch, stop_rx));
        self.current = Some(Current { job, stop, task });
    }

    fn publish_active(&self) {
        let active: Vec<JobRef> = self
            .current
            .iter()
            .map(|c| c.job)
            .chain(self.queue.iter().map(|d| d.job))
            .collect();
        self.active.send_if_modified(|old| {
            let changed = *old != active;
            *old = active;
            changed
        });
    }

    async fn dispatch(&mut self, dispatch: JobDispatch) -> Result<(), JournalError> {
        let job = dispatch.job;
        let journal = &self.ctx.journal;
        if let Some(record) = journal.job(job.id).await? {
            tracing::info!(job_id = job.id, phase = ?record.phase, "dispatch of a job already known; not running it again");
            return Ok(());
        }
        let record = JobRecord::accepted(dispatch.clone(), crate::now_ms());
        journal
            .commit(Some(record), vec![Event::Accepted { job }])
            .await?;
        tracing::info!(
            job_id = job.id,
            plan_id = job.plan_id,
            job_seq = job.job_seq,
            "job accepted"
        );
        self.queue.push_back(dispatch);
        Ok(())
    }

    async fn cancel(&mut self, cancel: CancelRequest) -> Result<(), JournalError> {
        let job = cancel.job;
        if let Some(current) = self.current.as_ref().filter(|c| c.job.id == job.id) {
            tracing::info!(job_id = job.id, reason = %cancel.reason, "cancelling the running job");
            current
                .stop
                .send_if_modified(|reason| set_once(reason, StopReason::Cancel(cancel.reason)));
            return Ok(());
        }
        let journal = &self.ctx.journal;
        let now = crate::now_ms();
        let record = if let Some(at) = self.queue.iter().position(|d| d.job.id == job.id) {
            let dispatch = self.queue.remove(at).expect("position is in the queue");
            JobRecord::accepted(dispatch, now)
        } else {
            match journal.job(job.id).await? {
                Some(record) if record.phase.is_finished() => {
                    tracing::info!(job_id = job.id, "cancel for a job that already finished");
                    return Ok(());
                }
                Some(record) => record,
                None => {
                    tracing::info!(
                        job_id = job.id,
                        "cancel before the dispatch: remembering it"
                    );
                    JobRecord::tombstone(job, now)
                }
            }
        };
        let finished = JobPhase::Finished {
            outcome: Outcome::Cancelled,
            finished_at_ms: now,
        };
        let event = Event::Finished {
            job,
            outcome: Outcome::Cancelled,
            exit_code: None,
            reason: Some(cancel.reason),
            finished_at_ms: now,
        };
        journal
            .commit(Some(record.with_phase(finished)), vec![event])
            .await?;
        Ok(())
    }
}

/// Sets the stop reason unless one is set already (the first reason wins).
fn set_once(slot: &mut Option<StopReason>, reason: StopReason) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(reason);
    true
}

async fn job_ended(current: &mut Option<Current>) -> Result<(), tokio::task::JoinError> {
    match current {
        Some(current) => (&mut current.task).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
