//! What the journal remembers about each job.

use serde::{Deserialize, Serialize};
use sortie_shared::{JobDispatch, JobRef, Outcome};

/// One job the agent has heard of: dispatched to it, or cancelled before its dispatch arrived
/// (a tombstone, so the late dispatch is not run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// The job.
    pub job: JobRef,
    /// What to run; `None` for a tombstone.
    pub dispatch: Option<JobDispatch>,
    /// Where the job is.
    pub phase: JobPhase,
    /// When the agent first heard of the job, Unix milliseconds (orders queued jobs after a
    /// restart).
    pub accepted_at_ms: u64,
}

/// The agent's view of a job's life. Stored as JSON (self-describing) so the journal survives
/// agent upgrades that add phases.
///
/// ```text
///  Accepted ──▶ Starting ──▶ Running{pgid} ──▶ Finished{outcome}
///      │            │                               ▲
///      └────────────┴───────────────────────────────┘  (cancel, bad files, restart)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobPhase {
    /// Taken, not started yet (queued or fetching files).
    Accepted,
    /// About to spawn: a restart in this phase may have left a process whose group is unknown.
    Starting,
    /// The process runs as the leader of process group `pgid`.
    Running {
        /// The process group to kill if the agent restarts.
        pgid: i32,
        /// When it started, Unix milliseconds.
        started_at_ms: u64,
        /// The kernel's boot id when it started: after a reboot `pgid` names some other
        /// group (or none), so recovery must not signal it.
        #[serde(default)]
        boot_id: Option<String>,
    },
    /// Done; the `Finished` event is in the outbox (or was acknowledged).
    Finished {
        /// How it ended.
        outcome: Outcome,
        /// When, Unix milliseconds.
        finished_at_ms: u64,
    },
}

impl JobPhase {
    /// True once the job's `Finished` has been recorded.
    pub fn is_finished(&self) -> bool {
        matches!(self, JobPhase::Finished { .. })
    }

    /// True for a job a restart interrupted: it may have a process, and it cannot resume.
    pub fn was_started(&self) -> bool {
        matches!(self, JobPhase::Starting | JobPhase::Running { .. })
    }
}

impl JobRecord {
    /// A job just dispatched to this agent.
    pub fn accepted(dispatch: JobDispatch, now_ms: u64) -> Self {
        JobRecord {
            job: dispatch.job,
            dispatch: Some(dispatch),
            phase: JobPhase::Accepted,
            accepted_at_ms: now_ms,
        }
    }

    /// A job cancelled before its dispatch arrived.
    pub fn tombstone(job: JobRef, now_ms: u64) -> Self {
        JobRecord {
            job,
            dispatch: None,
            phase: JobPhase::Finished {
                outcome: Outcome::Cancelled,
                finished_at_ms: now_ms,
            },
            accepted_at_ms: now_ms,
        }
    }

    /// The same record in `phase`.
    pub fn with_phase(&self, phase: JobPhase) -> Self {
        JobRecord {
            job: self.job,
            dispatch: self.dispatch.clone(),
            phase,
            accepted_at_ms: self.accepted_at_ms,
        }
    }

    /// When the job finished, if it did.
    pub fn finished_at_ms(&self) -> Option<u64> {
        match self.phase {
            JobPhase::Finished { finished_at_ms, .. } => Some(finished_at_ms),
            _ => None,
        }
    }
}
