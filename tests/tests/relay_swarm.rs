//! `sortie-agent swarm --register`: a simulated fleet in one process registers its own nodes
//! through the API, comes online, and runs jobs like lone agents do.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sortie_tests::{
    agent_bin, node_status, script_plan, wait_until, Coordinator, JobHandle, ServeOptions,
};

const TIMEOUT: Duration = Duration::from_secs(30);

/// Kills the swarm when the test ends, however it ends.
struct Swarm(Child);

impl Drop for Swarm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_swarm_registers_its_nodes_comes_online_and_runs_jobs() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let data = tempfile::tempdir().expect("a temp dir");
    let swarm = Swarm(
        Command::new(agent_bin())
            .args([
                "swarm",
                "--register",
                server.base_url(),
                "--count",
                "3",
                "--name-prefix",
                "sim-",
            ])
            .arg("--data-dir")
            .arg(data.path())
            .env("SORTIE_AGENT_ADMIN_TOKEN", api.token().expect("a token"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting the swarm"),
    );

    let nodes = || api.get("/api/v1/nodes/").expect(200);
    let swarm_ids = || -> Vec<u64> {
        nodes()
            .as_array()
            .expect("a list")
            .iter()
            .filter(|n| n["name"].as_str().is_some_and(|s| s.starts_with("sim-")))
            .filter_map(|n| n["id"].as_u64())
            .collect()
    };
    assert!(
        wait_until(TIMEOUT, || swarm_ids().len() == 3),
        "the swarm registered {:?}",
        nodes()
    );
    let ids = swarm_ids();
    assert!(
        wait_until(TIMEOUT, || ids
            .iter()
            .all(|id| node_status(&api, *id) == "online")),
        "not every swarm node came online: {:?}",
        nodes()
    );
    for id in &ids {
        let plan = script_plan(
            &api,
            *id,
            "#!/bin/sh\necho \"hello from $SORTIE_NODE_ID\"\n",
            &[],
        );
        let job = JobHandle::create(&api, plan, &[]);
        job.wait_for(&api, "success", TIMEOUT);
        assert_eq!(job.log(&api), format!("hello from {id}\n"));
    }
    drop(swarm);
}
