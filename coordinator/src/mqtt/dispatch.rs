//! Handing jobs to nodes: dispatches, cancels, catching a node up when it comes online, and the
//! clock (job timeouts, the pending TTL, nodes that went quiet).

use std::collections::BTreeMap;
use std::time::Duration;

use sortie_shared::{CancelRequest, Command, JobDispatch, JobEvent, JobState, PlanFile};

use super::relay::{job_ref, Relay};
use crate::model::Job;
use crate::store::{JobUpdate, StoreError};

/// A dispatched job the agent has not accepted is sent again after this long (the agent
/// ignores a job it already has).
const REDISPATCH_AFTER: Duration = Duration::from_secs(10);

impl Relay {
    /// Sends a pending job to its node and marks it dispatched.
    pub(super) async fn dispatch(&mut self, job: Job) {
        let dispatch = match self.build_dispatch(&job) {
            Ok(dispatch) => dispatch,
            Err(reason) => {
                tracing::warn!(job_id = job.id, reason, "job cannot be dispatched");
                let _ = self
                    .transition(job_ref(&job), &[JobEvent::Error], JobUpdate::reason(reason))
                    .await;
                return;
            }
        };
        if !self
            .publish_command(job.node_id, Command::Dispatch(dispatch))
            .await
        {
            return;
        }
        if job.status == JobState::Pending {
            if let Err(e) = self
                .transition(job_ref(&job), &[JobEvent::Dispatch], JobUpdate::default())
                .await
            {
                tracing::error!(job_id = job.id, error = %e, "recording a dispatch");
            }
        }
        tracing::info!(job_id = job.id, node_id = job.node_id, "job dispatched");
    }

    /// The dispatch of `job`: the plan's files (overridden by the job's) with their blob
    /// records, the merged extra, the time limits. Err names what is missing.
    fn build_dispatch(&self, job: &Job) -> Result<JobDispatch, String> {
        let store_error = |e: StoreError| e.to_string();
        let plan = self
            .store
            .plan(job.plan_id)
            .map_err(store_error)?
            .ok_or_else(|| format!("plan {} no longer exists", job.plan_id))?;
        let mut roles: BTreeMap<String, String> = plan.files.clone();
        roles.extend(job.files.clone());
        let mut files = Vec::with_capacity(roles.len());
        for (role, blob_id) in roles {
            let blob_id: u64 = blob_id
                .parse()
                .map_err(|_| format!("files.{role}: {blob_id:?} is not a blob id"))?;
            let (blob, _) = self
                .store
                .blob(blob_id)
                .map_err(store_error)?
                .ok_or_else(|| format!("files.{role}: blob {blob_id} no longer exists"))?;
            files.push(PlanFile {
                role,
                blob_id,
                name: blob.filename,
                size: blob.size,
                sha256: blob.sha256,
            });
        }
        let extra = merged_extra(&plan.extra, &job.extra);
        Ok(JobDispatch {
            job: job_ref(job),
            timeout_s: self.time_limit(&extra),
            abort_on_link_loss_s: positive_seconds(&extra, "abort_on_link_loss_s"),
            files,
            extra,
        })
    }

    /// A job's time limit in seconds: its merged `extra.timeout_s`, else the default.
    fn time_limit(&self, extra: &BTreeMap<String, String>) -> Option<u64> {
        positive_seconds(extra, "timeout_s").or(self.settings.default_timeout.map(|d| d.as_secs()))
    }

    /// Tells a job's node to stop it. Sent even if the node seems offline: the broker keeps it
    /// in the node's persistent session, and `catch_up` sends it again.
    pub(super) async fn send_cancel(&mut self, job: &Job, reason: String) {
        let request = CancelRequest {
            job: job_ref(job),
            reason,
        };
        if self
            .publish_command(job.node_id, Command::Cancel(request))
            .await
        {
            tracing::warn!(job_id = job.id, node_id = job.node_id, "cancel sent");
        }
    }

    /// Sends a node that is (back) online what waits for it: pending jobs, dispatches it has
    /// not accepted, cancels it has not confirmed.
    pub(super) async fn catch_up(&mut self, node_id: u64) {
        let jobs = match self.store.all_active_jobs() {
            Ok(jobs) => jobs,
            Err(e) => return tracing::error!(error = %e, "listing unfinished jobs"),
        };
        let stale =
            chrono::Utc::now() - chrono::Duration::from_std(REDISPATCH_AFTER).unwrap_or_default();
        for job in jobs.into_iter().filter(|j| j.node_id == node_id) {
            match job.status {
                JobState::Pending => self.dispatch(job).await,
                JobState::Dispatched if job.updated_at.0 < stale => self.dispatch(job).await,
                JobState::Canceling => {
                    let reason = job.reason.clone().unwrap_or_else(|| "cancelled".into());
                    self.send_cancel(&job, reason).await;
                }
                _ => {}
            }
        }
    }

    /// Once a second: time out jobs that ran too long or waited too long, and mark nodes
    /// that went quiet offline.
    pub(super) async fn tick(&mut self) {
        let quiet: Vec<u64> = self
            .online
            .iter()
            .filter(|(_, heard)| heard.elapsed() > self.settings.heartbeat_timeout)
            .map(|(id, _)| *id)
            .collect();
        for node_id in quiet {
            self.online.remove(&node_id);
            tracing::info!(node_id, "node offline (no heartbeat)");
            let _ = self.store.set_node_presence(node_id, false);
        }
        let jobs = match self.store.all_active_jobs() {
            Ok(jobs) => jobs,
            Err(e) => return tracing::error!(error = %e, "listing unfinished jobs"),
        };
        let now = chrono::Utc::now();
        for job in jobs {
            let age =
                |since: chrono::DateTime<chrono::Utc>| (now - since).to_std().unwrap_or_default();
            match job.status {
                JobState::Pending if age(job.created_at.0) > self.settings.pending_ttl => {
                    let reason = format!(
                        "node {} stayed offline longer than the pending TTL ({} s)",
                        job.node_id,
                        self.settings.pending_ttl.as_secs()
                    );
                    let _ = self
                        .transition(
                            job_ref(&job),
                            &[JobEvent::TimeOut],
                            JobUpdate::reason(reason),
                        )
                        .await;
                }
                JobState::Dispatched | JobState::Running => {
                    // Only the plan's extra is needed here, not a whole dispatch.
                    let Ok(Some(plan)) = self.store.plan(job.plan_id) else {
                        continue;
                    };
                    let Some(limit) = self.time_limit(&merged_extra(&plan.extra, &job.extra))
                    else {
                        continue;
                    };
                    let since = job.started_at.unwrap_or(job.updated_at).0;
                    if age(since) > Duration::from_secs(limit) {
                        let reason = format!("ran longer than its time limit of {limit} s");
                        let _ = self
                            .transition(
                                job_ref(&job),
                                &[JobEvent::TimeOut],
                                JobUpdate::reason(reason.clone()),
                            )
                            .await;
                        self.send_cancel(&job, reason).await;
                    }
                }
                _ => {}
            }
        }
    }
}

/// The plan's extra with the job's inputs on top.
fn merged_extra(
    plan: &BTreeMap<String, String>,
    job: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut extra = plan.clone();
    extra.extend(job.clone());
    extra
}

/// `extra[key]` as a positive number of seconds.
fn positive_seconds(extra: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    extra
        .get(key)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
}
