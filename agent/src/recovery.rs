//! What the agent does with its journal when it starts, and the retention sweep.
//!
//! ```text
//!  Starting / Running{pgid} ──▶ SIGKILL the group if it is alive (same boot only)
//!                           ──▶ Finished{Error, "agent restarted"}
//!  Accepted                 ──▶ queued again, in the order they were accepted
//!  Finished before now − retention ──▶ record and work directory removed
//! ```
//!
//! A started job cannot be resumed: its output pipes died with the old agent, and nobody
//! enforced its timeout in between. Killing it is the only state the agent can vouch for.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use sortie_shared::{Event, JobDispatch, Outcome};

use crate::job::JobContext;
use crate::journal::{JobPhase, JobRecord, JournalError};
use crate::process::{group_alive, signal_group};

/// The reason given for jobs a restart interrupted.
pub const RESTARTED: &str = "agent restarted";

/// Finishes interrupted jobs and prunes old ones; returns the jobs to run, oldest first.
pub async fn recover(ctx: &JobContext) -> Result<VecDeque<JobDispatch>, JournalError> {
    let mut queued = Vec::new();
    for record in ctx.journal.jobs().await? {
        match &record.phase {
            phase if phase.was_started() => {
                tracing::warn!(
                    job_id = record.job.id,
                    "job was running when the agent stopped"
                );
                finish_interrupted(ctx, &record, RESTARTED).await?;
            }
            JobPhase::Accepted => match record.dispatch {
                Some(dispatch) => queued.push((record.accepted_at_ms, dispatch)),
                None => tracing::error!(job_id = record.job.id, "accepted job without a dispatch"),
            },
            _ => {}
        }
    }
    queued.sort_by_key(|(at, dispatch)| (*at, dispatch.job.id));
    let cache = ctx.data_dir.join("cache");
    tokio::task::spawn_blocking(move || remove_partial_downloads(&cache)).await?;
    prune(ctx).await?;
    Ok(queued.into_iter().map(|(_, d)| d).collect())
}

/// Kills what is left of a started job (if its group is alive and from this boot) and records
/// it as `Finished{Error, reason}`.
pub async fn finish_interrupted(
    ctx: &JobContext,
    record: &JobRecord,
    reason: &str,
) -> Result<(), JournalError> {
    if let JobPhase::Running { pgid, boot_id, .. } = &record.phase {
        if *boot_id != current_boot_id() {
            tracing::info!(
                job_id = record.job.id,
                "the machine rebooted since the job started"
            );
        } else if group_alive(*pgid) {
            tracing::warn!(
                job_id = record.job.id,
                pgid,
                "killing the job's leftover process group"
            );
            signal_group(*pgid, Signal::SIGKILL);
        }
    }
    let now = crate::now_ms();
    let event = Event::Finished {
        job: record.job,
        outcome: Outcome::Error,
        exit_code: None,
        reason: Some(reason.to_owned()),
        finished_at_ms: now,
    };
    let phase = JobPhase::Finished {
        outcome: Outcome::Error,
        finished_at_ms: now,
    };
    ctx.journal
        .commit(Some(record.with_phase(phase)), vec![event])
        .await?;
    Ok(())
}

/// Removes finished jobs older than the retention (journal entry and work directory) and
/// cached files no job links to that were not used within it. Returns how many jobs went.
pub async fn prune(ctx: &JobContext) -> Result<usize, JournalError> {
    let cutoff_ms = crate::now_ms().saturating_sub(ctx.retention.as_millis() as u64);
    let mut pruned = 0;
    for record in ctx.journal.jobs().await? {
        if record.finished_at_ms().is_some_and(|at| at < cutoff_ms) {
            let dir = ctx.work_dir(record.job.id);
            tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing a work directory")
                }
            })
            .await?;
            ctx.journal.remove_job(record.job.id).await?;
            pruned += 1;
        }
    }
    let cache = ctx.data_dir.join("cache");
    let retention = ctx.retention;
    tokio::task::spawn_blocking(move || prune_cache(&cache, retention)).await?;
    if pruned > 0 {
        tracing::info!(pruned, "pruned finished jobs past their retention");
    }
    Ok(pruned)
}

/// The kernel's id of this boot (Linux); `None` where there is none.
pub fn current_boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|id| id.trim().to_owned())
}

fn prune_cache(cache: &Path, retention: Duration) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    let cutoff = SystemTime::now()
        .checked_sub(retention)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        let stale = meta.modified().is_ok_and(|at| at < cutoff);
        // nlink 1: no work directory holds a hard link to it any more.
        if meta.is_file() && meta.nlink() == 1 && stale {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn remove_partial_downloads(cache: &Path) {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(crate::job::PARTIAL_PREFIX)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
