//! `sortie-agent swarm`: several agents in one process, each its own node on the broker.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use sortie_agent::swarm::{config_files_in, load_swarm, run_swarm, SwarmError};
use sortie_shared::{NodeKey, NodeStatus};
use tokio_util::sync::CancellationToken;

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swarm_brings_every_node_online_with_its_own_data_dir() {
    let broker = start_broker();
    let base = start_blob_server(HashMap::new()).await;
    let configs = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    for node in 1..=4u64 {
        let text = agent_toml(node, broker, &base, &NodeKey::generate(), data.path());
        std::fs::write(configs.path().join(format!("node-{node}.toml")), text).unwrap();
    }
    std::fs::write(configs.path().join("notes.txt"), "not a config").unwrap();
    let files = config_files_in(configs.path()).unwrap();
    assert_eq!(files.len(), 4);
    assert!(matches!(
        load_swarm(&files, Some(5)),
        Err(SwarmError::Count(_))
    ));
    let swarm = load_swarm(&files, Some(3)).unwrap();
    let dirs: Vec<_> = swarm.iter().map(|c| c.data_dir.clone()).collect();
    assert_eq!(
        dirs,
        (1..=3)
            .map(|n| data.path().join(n.to_string()))
            .collect::<Vec<_>>()
    );

    let mut statuses = status_watcher(broker).await;
    let stop = CancellationToken::new();
    let running = tokio::spawn(run_swarm(swarm, stop.clone()));
    let mut online = std::collections::BTreeSet::new();
    while online.len() < 3 {
        let (node, status) = tokio::time::timeout(Duration::from_secs(10), statuses.recv())
            .await
            .unwrap()
            .unwrap();
        if status == NodeStatus::Online {
            online.insert(node);
        }
    }
    assert_eq!(online.into_iter().collect::<Vec<_>>(), [1, 2, 3]);
    stop.cancel();
    let failed = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failed, 0);
    for node in 1..=3 {
        assert!(data.path().join(node.to_string()).join("journal").is_dir());
    }
}

#[test]
fn two_files_for_one_node_are_refused() {
    let configs = tempfile::tempdir().unwrap();
    let key = NodeKey::generate();
    for name in ["a", "b"] {
        let text = agent_toml(1, 1883, "http://127.0.0.1:1/gosd", &key, configs.path());
        std::fs::write(configs.path().join(format!("{name}.toml")), text).unwrap();
    }
    let files = config_files_in(configs.path()).unwrap();
    assert!(matches!(
        load_swarm(&files, None),
        Err(SwarmError::DuplicateNode(1))
    ));
}
