use std::collections::BTreeMap;

use sortie_shared::{JobDispatch, JobRef, Outcome};

use super::*;

const NODE: u64 = 7;

fn pong(nonce: u64) -> Event {
    Event::Pong { nonce }
}

fn job(id: u64) -> JobRef {
    JobRef {
        id,
        plan_id: 1,
        job_seq: id,
    }
}

fn dispatch(id: u64) -> JobDispatch {
    JobDispatch {
        job: job(id),
        files: vec![],
        extra: BTreeMap::new(),
        timeout_s: None,
        abort_on_link_loss_s: None,
    }
}

fn nonces(entries: &[(u64, Event)]) -> Vec<u64> {
    entries
        .iter()
        .map(|(_, e)| match e {
            Event::Pong { nonce } => *nonce,
            other => panic!("{other:?}"),
        })
        .collect()
}

#[tokio::test]
async fn outbox_keeps_seq_order_and_acks_are_cumulative() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), NODE).unwrap();
    let first = journal.append(vec![pong(1), pong(2)]).await.unwrap();
    let more = journal.append(vec![pong(3)]).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0] < first[1] && first[1] < more[0]);
    assert_eq!(*journal.durable().borrow(), more[0]);

    let all = journal.outbox_after(None, 100).await.unwrap();
    assert_eq!(nonces(&all), [1, 2, 3]);
    let seqs: Vec<u64> = all.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, [first[0], first[1], more[0]]);
    // Paging continues after a seq.
    assert_eq!(
        nonces(&journal.outbox_after(Some(first[0]), 1).await.unwrap()),
        [2]
    );

    assert_eq!(journal.ack(first[1]).await.unwrap(), 2);
    assert_eq!(nonces(&journal.outbox_after(None, 100).await.unwrap()), [3]);
    // An old ack again changes nothing.
    assert_eq!(journal.ack(first[0]).await.unwrap(), 0);
    assert_eq!(journal.outbox_len(), 1);
}

#[tokio::test]
async fn concurrent_appends_stay_in_seq_order() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), NODE).unwrap();
    let mut tasks = Vec::new();
    for task in 0..8u64 {
        let journal = journal.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                journal.append(vec![pong(task * 100 + i)]).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = journal.outbox_after(None, 1000).await.unwrap();
    assert_eq!(all.len(), 160);
    assert!(all.windows(2).all(|w| w[0].0 < w[1].0));
    // Each task's own events are in the order it appended them.
    for task in 0..8u64 {
        let mine: Vec<u64> = nonces(&all)
            .into_iter()
            .filter(|n| n / 100 == task)
            .collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{mine:?}");
    }
}

#[tokio::test]
async fn survives_reopening_and_resumes_seq_above_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let last = {
        let journal = Journal::open(dir.path(), NODE).unwrap();
        let seqs = journal
            .append(vec![pong(1), pong(2), pong(3)])
            .await
            .unwrap();
        journal.ack(seqs[0]).await.unwrap();
        journal
            .put_job(JobRecord::accepted(dispatch(5), 10))
            .await
            .unwrap();
        journal.accept_command(900).await.unwrap();
        journal.flush().await.unwrap();
        seqs[2]
    };
    let journal = Journal::open(dir.path(), NODE).unwrap();
    assert_eq!(
        nonces(&journal.outbox_after(None, 10).await.unwrap()),
        [2, 3]
    );
    assert_eq!(*journal.durable().borrow(), last);
    let next = journal.append(vec![pong(4)]).await.unwrap();
    assert!(next[0] > last);
    let record = journal.job(5).await.unwrap().unwrap();
    assert_eq!(record.phase, JobPhase::Accepted);
    assert_eq!(record.dispatch, Some(dispatch(5)));
    assert!(journal.check_command(900).is_err());
    journal.check_command(901).unwrap();
}

#[tokio::test]
async fn a_record_and_its_event_are_committed_together() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), NODE).unwrap();
    let record = JobRecord::accepted(dispatch(3), 1);
    journal
        .commit(Some(record.clone()), vec![Event::Accepted { job: job(3) }])
        .await
        .unwrap();
    let finished = record.with_phase(JobPhase::Finished {
        outcome: Outcome::Success,
        finished_at_ms: 2,
    });
    journal
        .commit(Some(finished.clone()), vec![])
        .await
        .unwrap();
    assert_eq!(journal.jobs().await.unwrap(), [finished]);
    assert_eq!(journal.outbox_len(), 1);
    journal.remove_job(3).await.unwrap();
    assert_eq!(journal.job(3).await.unwrap(), None);
}

#[tokio::test]
async fn the_command_guard_only_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    let journal = Journal::open(dir.path(), NODE).unwrap();
    journal.check_command(5).unwrap();
    journal.accept_command(5).await.unwrap();
    for seq in [5, 4] {
        assert!(matches!(
            journal.check_command(seq),
            Err(WireError::Replayed { last: 5, .. })
        ));
    }
    // An older accept (a late duplicate) does not move the guard back.
    journal.accept_command(3).await.unwrap();
    journal.check_command(6).unwrap();
}
