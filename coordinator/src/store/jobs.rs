//! Jobs: runs of a plan, keyed by (plan id, per-plan sequence).

use sled::Transactional;
use sortie_shared::{JobEvent, JobState};

use super::blobs::{check_and_count_blob_refs, release_blob_refs};
use super::plans::validate_map;
use super::{abort, add_ref, decode_u64, encode, next_id, tx_get, Store, StoreError};
use crate::model::{Job, Plan, StringMap, Timestamp};

/// Per-job inputs: files and extra that override the plan's for this run.
#[derive(Debug, Clone, Default)]
pub struct JobInputs {
    /// Role → blob id; every blob must exist.
    pub files: StringMap,
    /// Setting → value.
    pub extra: StringMap,
}

/// What a transition records besides the new state.
#[derive(Debug, Clone, Default)]
pub struct JobUpdate {
    /// Why (kept as the job's `reason`).
    pub reason: Option<String>,
    /// The process's exit code.
    pub exit_code: Option<i32>,
    /// When it happened on the device (start or finish time); now if absent.
    pub at: Option<Timestamp>,
}

impl JobUpdate {
    /// An update that records only a reason.
    pub fn reason(reason: impl Into<String>) -> Self {
        JobUpdate {
            reason: Some(reason.into()),
            ..JobUpdate::default()
        }
    }
}

/// One page of a plan's jobs, newest first.
#[derive(Debug)]
pub struct JobPage {
    /// The jobs on this page.
    pub jobs: Vec<Job>,
    /// How many jobs the plan has in all.
    pub total: u64,
}

fn job_key(plan_id: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&plan_id.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl Store {
    /// Creates a pending job for plan `plan_id`. With `only_if_idle`, refuses (conflict) while
    /// the plan has an unfinished job.
    pub fn create_job(
        &self,
        plan_id: u64,
        inputs: &JobInputs,
        only_if_idle: bool,
    ) -> Result<Job, StoreError> {
        validate_map("files", &inputs.files)?;
        validate_map("extra", &inputs.extra)?;
        let now = Timestamp::now();
        let trees = (
            &self.meta,
            &self.plans,
            &self.jobs,
            &self.jobs_by_id,
            &self.active_jobs,
            &self.blobs,
            &self.refs,
        );
        let job = trees.transaction(
            |(meta, plans, jobs, jobs_by_id, active_jobs, blobs, refs)| {
                let Some(plan) = tx_get::<Plan>(plans, "plans", &plan_id.to_be_bytes())? else {
                    return abort(StoreError::not_found("plan", plan_id));
                };
                let active_key = format!("active/{plan_id}");
                if only_if_idle && super::ref_count(refs, &active_key)? > 0 {
                    return abort(StoreError::Conflict(format!(
                        "plan {plan_id} already has an unfinished job"
                    )));
                }
                check_and_count_blob_refs(blobs, refs, &inputs.files, "files")?;
                add_ref(refs, &active_key, 1)?;
                let job = Job {
                    id: next_id(meta, "seq/jobs")?,
                    job_id: next_id(meta, &format!("seq/job/{plan_id}"))?,
                    plan_id,
                    node_id: plan.node_id,
                    files: inputs.files.clone(),
                    extra: inputs.extra.clone(),
                    status: JobState::Pending,
                    created_at: now,
                    updated_at: now,
                    started_at: None,
                    finished_at: None,
                    exit_code: None,
                    reason: None,
                    outputs: Vec::new(),
                };
                let key = job_key(plan_id, job.job_id);
                jobs.insert(&key, encode(&job))?;
                jobs_by_id.insert(&job.id.to_be_bytes(), &key)?;
                active_jobs.insert(&key, &[])?;
                Ok(job)
            },
        )?;
        Ok(job)
    }

    /// Job number `seq` of plan `plan_id`.
    pub fn job(&self, plan_id: u64, seq: u64) -> Result<Option<Job>, StoreError> {
        super::get(&self.jobs, "jobs", &job_key(plan_id, seq))
    }

    /// The job with global id `id`.
    pub fn job_by_id(&self, id: u64) -> Result<Option<Job>, StoreError> {
        match self.jobs_by_id.get(id.to_be_bytes())? {
            Some(key) => super::get(&self.jobs, "jobs", &key),
            None => Ok(None),
        }
    }

    /// Plan `plan_id`'s jobs, newest first; `page` counts from 1. `None` pages give every job.
    pub fn list_jobs(&self, plan_id: u64, page: Option<(u64, u64)>) -> Result<JobPage, StoreError> {
        let total = self
            .meta
            .get(format!("seq/job/{plan_id}"))?
            .and_then(|v| decode_u64(&v))
            .unwrap_or(0);
        let (skip, take) = match page {
            Some((page, per_page)) => (
                (page.saturating_sub(1)).saturating_mul(per_page) as usize,
                per_page as usize,
            ),
            None => (0, usize::MAX),
        };
        let jobs = self
            .jobs
            .scan_prefix(plan_id.to_be_bytes())
            .values()
            .rev()
            .skip(skip)
            .take(take)
            .map(|v| super::decode(&v?, "jobs"))
            .collect::<Result<Vec<Job>, _>>()?;
        Ok(JobPage { jobs, total })
    }

    /// Plan `plan_id`'s unfinished jobs, oldest first. The first is the plan's running job.
    pub fn active_jobs(&self, plan_id: u64) -> Result<Vec<Job>, StoreError> {
        self.active_jobs
            .scan_prefix(plan_id.to_be_bytes())
            .keys()
            .filter_map(|key| match key {
                Ok(key) => super::get(&self.jobs, "jobs", &key).transpose(),
                Err(e) => Some(Err(e.into())),
            })
            .collect()
    }

    /// Applies `event` to job `seq` of plan `plan_id`, recording what `update` carries. An event
    /// the job's state does not allow is a conflict; the job is left as it was.
    pub fn transition_job(
        &self,
        plan_id: u64,
        seq: u64,
        event: JobEvent,
        update: &JobUpdate,
    ) -> Result<Job, StoreError> {
        let key = job_key(plan_id, seq);
        let job = (&self.jobs, &self.active_jobs, &self.refs).transaction(
            |(jobs, active_jobs, refs)| {
                let Some(mut job) = tx_get::<Job>(jobs, "jobs", &key)? else {
                    return abort(StoreError::not_found(
                        "job",
                        format!("{seq} of plan {plan_id}"),
                    ));
                };
                let next = match job.status.apply(event) {
                    Ok(next) => next,
                    Err(e) => {
                        return abort(StoreError::Conflict(format!(
                            "job {seq} of plan {plan_id} is {}: {e}",
                            job.status
                        )))
                    }
                };
                let now = Timestamp::now();
                job.status = next;
                job.updated_at = now;
                if next == JobState::Running && job.started_at.is_none() {
                    job.started_at = Some(update.at.unwrap_or(now));
                }
                if let Some(reason) = &update.reason {
                    job.reason = Some(reason.clone());
                }
                if update.exit_code.is_some() {
                    job.exit_code = update.exit_code;
                }
                if next.is_terminal() {
                    job.finished_at = Some(update.at.unwrap_or(now));
                    active_jobs.remove(&key)?;
                    add_ref(refs, &format!("active/{plan_id}"), -1)?;
                }
                jobs.insert(&key, encode(&job))?;
                Ok(job)
            },
        )?;
        Ok(job)
    }

    /// Every unfinished job of every plan, oldest first per plan.
    pub fn all_active_jobs(&self) -> Result<Vec<Job>, StoreError> {
        self.active_jobs
            .iter()
            .keys()
            .filter_map(|key| match key {
                Ok(key) => super::get(&self.jobs, "jobs", &key).transpose(),
                Err(e) => Some(Err(e.into())),
            })
            .collect()
    }

    /// Adds an output file (a blob the agent uploaded) to job `seq` of plan `plan_id`'s files.
    pub fn add_job_output(
        &self,
        plan_id: u64,
        seq: u64,
        role: &str,
        blob_id: u64,
    ) -> Result<Job, StoreError> {
        let key = job_key(plan_id, seq);
        let files = StringMap::from([(role.to_owned(), blob_id.to_string())]);
        let job = (&self.jobs, &self.blobs, &self.refs).transaction(|(jobs, blobs, refs)| {
            let Some(mut job) = tx_get::<Job>(jobs, "jobs", &key)? else {
                return abort(StoreError::not_found(
                    "job",
                    format!("{seq} of plan {plan_id}"),
                ));
            };
            if let Some(previous) = job.files.get(role) {
                release_blob_refs(
                    refs,
                    &StringMap::from([(role.to_owned(), previous.clone())]),
                )?;
            }
            check_and_count_blob_refs(blobs, refs, &files, "files")?;
            job.files.insert(role.to_owned(), blob_id.to_string());
            if !job.outputs.iter().any(|r| r == role) {
                job.outputs.push(role.to_owned());
            }
            job.updated_at = Timestamp::now();
            jobs.insert(&key, encode(&job))?;
            Ok(job)
        })?;
        Ok(job)
    }

    /// Deletes every job of plan `plan_id` (its plan is gone), releasing their blobs.
    pub(super) fn remove_jobs_of_plan(&self, plan_id: u64) -> Result<usize, StoreError> {
        let keys: Vec<_> = self
            .jobs
            .scan_prefix(plan_id.to_be_bytes())
            .keys()
            .collect::<Result<_, _>>()?;
        for key in &keys {
            (&self.jobs, &self.jobs_by_id, &self.active_jobs, &self.refs).transaction(
                |(jobs, jobs_by_id, active_jobs, refs)| {
                    let Some(job) = tx_get::<Job>(jobs, "jobs", key)? else {
                        return Ok(());
                    };
                    release_blob_refs(refs, &job.files)?;
                    if active_jobs.remove(key)?.is_some() {
                        add_ref(refs, &format!("active/{plan_id}"), -1)?;
                    }
                    jobs_by_id.remove(&job.id.to_be_bytes())?;
                    jobs.remove(key)?;
                    Ok(())
                },
            )?;
        }
        Ok(keys.len())
    }

    /// Deletes jobs whose plan no longer exists (left by a crash during a plan delete).
    pub fn remove_orphan_jobs(&self) -> Result<usize, StoreError> {
        let mut plan_ids: Vec<u64> = self
            .jobs
            .iter()
            .keys()
            .filter_map(|k| k.ok().and_then(|k| decode_u64(&k[..8])))
            .collect();
        plan_ids.dedup();
        let mut removed = 0;
        for plan_id in plan_ids {
            if self.plan(plan_id)?.is_none() {
                removed += self.remove_jobs_of_plan(plan_id)?;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NodeSpec, PlanSpec};

    fn store_with_plan() -> (tempfile::TempDir, Store, u64) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let node = store
            .create_node(&NodeSpec {
                name: "d".into(),
                description: String::new(),
                type_name: "air".into(),
                points: vec![],
            })
            .unwrap();
        let plan = store
            .create_plan(&PlanSpec {
                name: "p".into(),
                node_id: node.id,
                ..PlanSpec::default()
            })
            .unwrap();
        (dir, store, plan.id)
    }

    #[test]
    fn jobs_number_per_plan_and_list_newest_first() {
        let (_dir, store, plan) = store_with_plan();
        for _ in 0..3 {
            store
                .create_job(plan, &JobInputs::default(), false)
                .unwrap();
        }
        let page = store.list_jobs(plan, None).unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(
            page.jobs.iter().map(|j| j.job_id).collect::<Vec<_>>(),
            [3, 2, 1]
        );
        let page2 = store.list_jobs(plan, Some((2, 2))).unwrap();
        assert_eq!(page2.jobs.iter().map(|j| j.job_id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn running_job_blocks_plan_delete_until_cancelled() {
        let (_dir, store, plan) = store_with_plan();
        let job = store
            .create_job(plan, &JobInputs::default(), false)
            .unwrap();
        assert!(matches!(
            store.create_job(plan, &JobInputs::default(), true),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.delete_plan(plan),
            Err(StoreError::Conflict(_))
        ));
        let cancelled = store
            .transition_job(
                plan,
                job.job_id,
                JobEvent::Cancel,
                &JobUpdate::reason("test"),
            )
            .unwrap();
        assert_eq!(cancelled.status, JobState::Cancelled);
        assert!(cancelled.finished_at.is_some());
        assert!(store.active_jobs(plan).unwrap().is_empty());
        // A second cancel is refused and changes nothing.
        assert!(matches!(
            store.transition_job(plan, job.job_id, JobEvent::Cancel, &JobUpdate::default()),
            Err(StoreError::Conflict(_))
        ));
        store.delete_plan(plan).unwrap();
        assert!(store.job_by_id(job.id).unwrap().is_none());
    }
}
