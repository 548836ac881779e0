//! End to end in one process: a real broker, the real agent (`sortie_agent::run`), and a fake
//! coordinator speaking the sealed protocol (see `support`).

mod support;

use std::collections::HashMap;
use std::time::Duration;

use sortie_shared::{CancelRequest, Command, Event, NodeKey, NodeStatus, Outcome};
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dispatch_run_cancel_and_restart_over_a_real_broker() {
    // RUST_LOG=sortie_agent=debug shows the agent's side.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let port = start_broker();
    let hello = b"#!/bin/sh\necho hello from $SORTIE_JOB_ID\necho warning >&2\n".to_vec();
    let sleeper = b"#!/bin/sh\nsleep 600\n".to_vec();
    let base = start_blob_server(HashMap::from([(1, hello.clone()), (2, sleeper.clone())])).await;
    let key = NodeKey::generate();
    let data = tempfile::tempdir().unwrap();
    let mut coordinator = FakeCoordinator::connect(port, key.clone()).await;

    let stop = CancellationToken::new();
    let agent = tokio::spawn(sortie_agent::run(
        agent_config(port, &base, &key, data.path()),
        stop.clone(),
    ));
    coordinator.status(NodeStatus::Online).await;
    // The heartbeat on connecting comes after the agent subscribed to its commands.
    let (first_seq, first) = coordinator.next().await;
    assert!(matches!(first, Event::Heartbeat { ref running_jobs, .. } if running_jobs.is_empty()));

    coordinator.send(Command::Ping { nonce: 77 }).await;
    assert!(matches!(
        coordinator.next_non_heartbeat().await.1,
        Event::Pong { nonce: 77 }
    ));

    // A script job: Accepted, Started, its output, Finished, in seq order.
    coordinator.send(dispatch(1, plan_file(1, &hello))).await;
    let mut last_seq = first_seq;
    let mut kinds = Vec::new();
    let mut lines = Vec::new();
    loop {
        let (seq, event) = coordinator.next_non_heartbeat().await;
        assert!(seq > last_seq, "seq {seq} after {last_seq}");
        last_seq = seq;
        match event {
            Event::Accepted { job: j } => {
                assert_eq!(j, job(1));
                kinds.push("accepted")
            }
            Event::Started { .. } => kinds.push("started"),
            Event::LogBatch {
                first_line,
                lines: batch,
                ..
            } => {
                assert_eq!(first_line, lines.len() as u64);
                lines.extend(batch.into_iter().map(|l| l.text));
            }
            Event::Finished {
                outcome, exit_code, ..
            } => {
                assert_eq!((outcome, exit_code), (Outcome::Success, Some(0)));
                kinds.push("finished");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(kinds, ["accepted", "started", "finished"]);
    lines.sort(); // stdout and stderr are separate pipes: their relative order is not defined
    assert_eq!(lines, ["hello from 1", "warning"]);

    // A long job, cancelled: its whole process group goes.
    coordinator.send(dispatch(2, plan_file(2, &sleeper))).await;
    assert!(matches!(
        coordinator.next_non_heartbeat().await.1,
        Event::Accepted { .. }
    ));
    let pgid = match coordinator.next_non_heartbeat().await.1 {
        Event::Started { pid, .. } => pid as i32,
        other => panic!("expected Started, got {other:?}"),
    };
    assert!(group_has_live_process(pgid));
    coordinator
        .send(Command::Cancel(CancelRequest {
            job: job(2),
            reason: "cancelled by e2e".into(),
        }))
        .await;
    loop {
        match coordinator.next_non_heartbeat().await {
            (
                seq,
                Event::Finished {
                    job: j,
                    outcome,
                    reason,
                    ..
                },
            ) => {
                assert_eq!(j, job(2));
                assert_eq!(outcome, Outcome::Cancelled);
                assert_eq!(reason.as_deref(), Some("cancelled by e2e"));
                last_seq = seq;
                break;
            }
            (_, Event::LogBatch { .. }) => {}
            (_, other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        !group_has_live_process(pgid),
        "the cancelled job's process group survived"
    );

    // A clean stop says offline; a restart keeps counting above every seq it used.
    tokio::time::sleep(Duration::from_millis(200)).await; // let the last ack land
    stop.cancel();
    timeout(Duration::from_secs(20), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    coordinator.status(NodeStatus::Offline).await;

    let stop = CancellationToken::new();
    let agent = tokio::spawn(sortie_agent::run(
        agent_config(port, &base, &key, data.path()),
        stop.clone(),
    ));
    coordinator.status(NodeStatus::Online).await;
    loop {
        let (seq, event) = coordinator.next().await;
        if let Event::Heartbeat { .. } = event {
            assert!(seq > last_seq, "new events continue above the old seqs");
            break;
        }
        // Anything else can only be an unacknowledged event resent with its old seq.
        assert!(seq <= last_seq, "resent {event:?} with a new seq {seq}");
    }
    stop.cancel();
    timeout(Duration::from_secs(20), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
