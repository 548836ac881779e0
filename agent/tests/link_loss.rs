//! The broker link breaks while a job runs: the dead-man's switch stops the job, and when the
//! link returns every unacknowledged event arrives again, in `seq` order, before anything new.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use sortie_shared::{Command, Event, JobDispatch, NodeKey, NodeStatus, Outcome};
use tokio_util::sync::CancellationToken;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outbox_is_resent_in_order_and_the_dead_mans_switch_fires() {
    let broker = start_broker();
    let proxy = LinkProxy::start(broker).await;
    let script = b"#!/bin/sh\necho started\nexec sleep 600\n".to_vec();
    let base = start_blob_server(HashMap::from([(1, script.clone())])).await;
    let key = NodeKey::generate();
    let data = tempfile::tempdir().unwrap();
    let mut coordinator = FakeCoordinator::connect(broker, key.clone()).await;
    let stop = CancellationToken::new();
    let agent = tokio::spawn(sortie_agent::run(
        agent_config(proxy.port, &base, &key, data.path()),
        stop.clone(),
    ));
    coordinator.status(NodeStatus::Online).await;
    let (acked, _) = coordinator.next().await; // the heartbeat on connecting, acknowledged

    coordinator
        .send(Command::Dispatch(JobDispatch {
            job: job(1),
            files: vec![plan_file(1, &script)],
            extra: BTreeMap::new(),
            timeout_s: None,
            abort_on_link_loss_s: Some(1),
        }))
        .await;
    // Received but never acknowledged.
    let mut unacked = Vec::new();
    let mut pgid = 0;
    loop {
        let (seq, event) = coordinator.next_unacked().await;
        if let Event::Started { pid, .. } = event {
            pgid = pid as i32;
        }
        let done = matches!(event, Event::LogBatch { .. });
        unacked.push(seq);
        if done {
            break;
        }
    }

    proxy.cut();
    // The broker announces the agent's last will.
    coordinator.status(NodeStatus::Offline).await;
    // The outage outlasts abort_on_link_loss_s: the agent stops the job on its own.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while group_has_live_process(pgid) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job survived the link loss"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    proxy.restore();
    coordinator.status(NodeStatus::Online).await;

    let mut received = Vec::new();
    let finished = loop {
        let (seq, event) = coordinator.next().await;
        received.push(seq);
        if let Event::Finished {
            outcome, reason, ..
        } = event
        {
            break (outcome, reason);
        }
    };
    assert_eq!(
        finished,
        (
            Outcome::Error,
            Some("link to the coordinator lost for 1 s".to_owned())
        )
    );
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "in seq order: {received:?}"
    );
    assert!(received[0] > acked, "acknowledged events are not resent");
    assert_eq!(
        received[..unacked.len()],
        unacked[..],
        "unacknowledged events come first, same seqs"
    );

    stop.cancel();
    tokio::time::timeout(Duration::from_secs(20), agent)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
