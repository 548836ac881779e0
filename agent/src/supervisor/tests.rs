use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::time::Duration;

use sortie_shared::PlanFile;

use super::*;
use crate::job::JobContext;
use crate::testing::{
    context, eventually, group_has_live_process, link_down, outbox_until, BlobServer,
};

fn job(id: u64) -> JobRef {
    JobRef {
        id,
        plan_id: 1,
        job_seq: id,
    }
}

fn dispatch(id: u64, files: Vec<PlanFile>) -> JobDispatch {
    JobDispatch {
        job: job(id),
        files,
        extra: BTreeMap::new(),
        timeout_s: None,
        abort_on_link_loss_s: None,
    }
}

fn cancel(id: u64) -> CancelRequest {
    CancelRequest {
        job: job(id),
        reason: "cancelled by alice".into(),
    }
}

struct Harness {
    ctx: Arc<JobContext>,
    supervisor: Supervisor,
    active: watch::Receiver<Vec<JobRef>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
    _link: watch::Sender<crate::link::LinkState>,
}

fn start(
    ctx: JobContext,
    queue: VecDeque<JobDispatch>,
    link: watch::Sender<crate::link::LinkState>,
) -> Harness {
    let ctx = Arc::new(ctx);
    let (active_tx, active) = watch::channel(Vec::new());
    let stop = CancellationToken::new();
    let (supervisor, task) = spawn_supervisor(Arc::clone(&ctx), queue, active_tx, stop.clone());
    Harness {
        ctx,
        supervisor,
        active,
        stop,
        task,
        _link: link,
    }
}

fn kinds(events: &[Event], id: u64) -> Vec<&'static str> {
    events
        .iter()
        .filter(|e| e.job().is_some_and(|j| j.id == id))
        .map(|e| match e {
            Event::Accepted { .. } => "accepted",
            Event::Started { .. } => "started",
            Event::LogBatch { .. } => "log",
            Event::Finished {
                outcome: Outcome::Cancelled,
                ..
            } => "cancelled",
            Event::Finished {
                outcome: Outcome::Error,
                ..
            } => "error",
            Event::Finished { .. } => "finished",
            _ => "other",
        })
        .collect()
}

fn is_finished(id: u64) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::Finished { job, .. } if job.id == id)
}

#[tokio::test]
async fn a_redelivered_dispatch_is_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let (link, link_rx) = link_down();
    let h = start(
        context(dir.path(), "http://127.0.0.1:9", link_rx),
        VecDeque::new(),
        link,
    );
    // No files: the job ends at once, as an error.
    h.supervisor
        .dispatch(dispatch(1, vec![]))
        .await
        .unwrap()
        .unwrap();
    let events = outbox_until(&h.ctx.journal, is_finished(1)).await;
    assert_eq!(kinds(&events, 1), ["accepted", "error"]);
    // Redelivered after it finished, or cancelled late: nothing happens.
    h.supervisor
        .dispatch(dispatch(1, vec![]))
        .await
        .unwrap()
        .unwrap();
    h.supervisor.cancel(cancel(1)).await.unwrap().unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = outbox_until(&h.ctx.journal, is_finished(1)).await;
    assert_eq!(kinds(&events, 1), ["accepted", "error"]);
    h.stop.cancel();
    h.task.await.unwrap();
}

#[tokio::test]
async fn a_cancel_before_the_dispatch_leaves_a_tombstone() {
    let dir = tempfile::tempdir().unwrap();
    let (link, link_rx) = link_down();
    let h = start(
        context(dir.path(), "http://127.0.0.1:9", link_rx),
        VecDeque::new(),
        link,
    );
    h.supervisor.cancel(cancel(2)).await.unwrap().unwrap();
    let events = outbox_until(&h.ctx.journal, is_finished(2)).await;
    assert_eq!(kinds(&events, 2), ["cancelled"]);
    let record = h.ctx.journal.job(2).await.unwrap().unwrap();
    assert_eq!(record.dispatch, None);
    // The late dispatch is not run and not even accepted.
    h.supervisor
        .dispatch(dispatch(2, vec![]))
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let events = outbox_until(&h.ctx.journal, is_finished(2)).await;
    assert_eq!(kinds(&events, 2), ["cancelled"]);
    assert!(h.active.borrow().is_empty());
}

#[tokio::test]
async fn cancels_reach_queued_and_running_jobs() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (link, link_rx) = link_down();
    let mut ctx = context(dir.path(), &server.base, link_rx);
    ctx.safe_state_command = Some("echo parked".into());
    let h = start(ctx, VecDeque::new(), link);
    let sleeper = server.add(
        1,
        "script",
        "run.sh",
        b"#!/bin/sh\necho ready\nexec sleep 600\n",
    );
    h.supervisor
        .dispatch(dispatch(3, vec![sleeper.clone()]))
        .await
        .unwrap()
        .unwrap();
    h.supervisor
        .dispatch(dispatch(4, vec![sleeper]))
        .await
        .unwrap()
        .unwrap();
    let events = outbox_until(&h.ctx.journal, |e| matches!(e, Event::LogBatch { .. })).await;
    let pid = events.iter().find_map(|e| match e {
        Event::Started { pid, .. } => Some(*pid as i32),
        _ => None,
    });
    let pgid = pid.expect("job 3 started");
    assert_eq!(*h.active.borrow(), [job(3), job(4)]);

    // The queued one is cancelled without ever starting.
    h.supervisor.cancel(cancel(4)).await.unwrap().unwrap();
    let events = outbox_until(&h.ctx.journal, is_finished(4)).await;
    assert_eq!(kinds(&events, 4), ["accepted", "cancelled"]);

    // The running one goes through the safe-state command and the stop.
    h.supervisor.cancel(cancel(3)).await.unwrap().unwrap();
    let events = outbox_until(&h.ctx.journal, is_finished(3)).await;
    let finished = events.iter().find(|e| is_finished(3)(e)).unwrap();
    assert!(
        matches!(finished, Event::Finished { outcome: Outcome::Cancelled, reason: Some(r), .. } if r == "cancelled by alice"),
        "{finished:?}"
    );
    let text: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::LogBatch { lines, .. } => Some(lines.iter().map(|l| l.text.clone())),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(
        text.contains(&"[sortie] safe-state: parked".to_owned()),
        "{text:?}"
    );
    assert!(!group_has_live_process(pgid));
    eventually("the queue to empty", || async {
        h.active.borrow().is_empty().then_some(())
    })
    .await;
    // Job 4 was never started.
    assert_eq!(server.downloads(1), 1);
    assert!(!h.ctx.work_dir(4).join("run.sh").exists());
}

#[tokio::test]
async fn restart_recovery_kills_orphans_and_requeues_accepted_jobs() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx) = link_down();
    let ctx = context(dir.path(), "http://127.0.0.1:9", link_rx);
    // An orphan from the "previous" agent, in its own process group.
    let mut orphan = std::process::Command::new("/bin/sh")
        .args(["-c", "sleep 600 & exec sleep 600"])
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = orphan.id() as i32;
    let journal = &ctx.journal;
    let running = JobRecord::accepted(dispatch(5, vec![]), 1).with_phase(JobPhase::Running {
        pgid,
        started_at_ms: 2,
        boot_id: recovery::current_boot_id(),
    });
    journal.put_job(running).await.unwrap();
    journal
        .put_job(JobRecord::accepted(dispatch(6, vec![]), 1).with_phase(JobPhase::Starting))
        .await
        .unwrap();
    journal
        .put_job(JobRecord::accepted(dispatch(8, vec![]), 20))
        .await
        .unwrap();
    journal
        .put_job(JobRecord::accepted(dispatch(7, vec![]), 10))
        .await
        .unwrap();
    journal
        .put_job(JobRecord::tombstone(job(9), 0))
        .await
        .unwrap();
    std::fs::create_dir_all(ctx.work_dir(9)).unwrap();

    let queue = recovery::recover(&ctx).await.unwrap();

    let ids: Vec<u64> = queue.iter().map(|d| d.job.id).collect();
    assert_eq!(ids, [7, 8], "accepted jobs run again, oldest first");
    assert_eq!(orphan.wait().unwrap().signal(), Some(9));
    eventually("the orphan group to die", || async {
        (!group_has_live_process(pgid)).then_some(())
    })
    .await;
    let events = outbox_until(journal, is_finished(6)).await;
    for id in [5, 6] {
        let finished = events.iter().find(|e| is_finished(id)(e)).unwrap();
        assert!(
            matches!(finished, Event::Finished { outcome: Outcome::Error, reason: Some(r), .. } if r == recovery::RESTARTED),
            "{finished:?}"
        );
        assert!(journal.job(id).await.unwrap().unwrap().phase.is_finished());
    }
    // The tombstone finished long before the retention: pruned with its work directory.
    assert_eq!(journal.job(9).await.unwrap(), None);
    assert!(!ctx.work_dir(9).exists());
}

#[tokio::test]
async fn stopping_the_agent_stops_the_running_job_and_keeps_the_queue() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (link, link_rx) = link_down();
    let h = start(
        context(dir.path(), &server.base, link_rx),
        VecDeque::new(),
        link,
    );
    let sleeper = server.add(1, "script", "run.sh", b"#!/bin/sh\nexec sleep 600\n");
    h.supervisor
        .dispatch(dispatch(10, vec![sleeper.clone()]))
        .await
        .unwrap()
        .unwrap();
    h.supervisor
        .dispatch(dispatch(11, vec![sleeper]))
        .await
        .unwrap()
        .unwrap();
    let events = outbox_until(&h.ctx.journal, |e| matches!(e, Event::Started { .. })).await;
    let Some(Event::Started { pid, .. }) =
        events.iter().find(|e| matches!(e, Event::Started { .. }))
    else {
        unreachable!()
    };
    let pgid = *pid as i32;

    h.stop.cancel();
    h.task.await.unwrap();
    let events = outbox_until(&h.ctx.journal, is_finished(10)).await;
    let finished = events.iter().find(|e| is_finished(10)(e)).unwrap();
    assert!(
        matches!(finished, Event::Finished { outcome: Outcome::Error, reason: Some(r), .. } if r == "agent stopped"),
        "{finished:?}"
    );
    assert!(!group_has_live_process(pgid));
    // The queued job was never started and runs after the next start.
    assert_eq!(kinds(&events, 11), ["accepted"]);
    assert_eq!(
        h.ctx.journal.job(11).await.unwrap().unwrap().phase,
        JobPhase::Accepted
    );
}
