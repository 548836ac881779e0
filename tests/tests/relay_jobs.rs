//! Jobs through the whole relay: the API, the coordinator, the broker (embedded, or Mosquitto
//! with `SORTIE_TEST_BROKER=mosquitto`) and the real agent running real shell scripts.
//!
//! - a script runs to `success` with its environment, `extra.json`, logs and output files;
//! - a failing script is a `failure` with its exit code;
//! - cancel stops a running job's whole process group at once;
//! - a job cancelled while its node is offline never runs;
//! - a job created while its node is offline waits `pending` and runs when the agent comes.

use std::time::{Duration, Instant};

use sortie_tests::{
    node_status, processes_with_marker, script_plan, unique_marker, wait_heartbeats,
    wait_processes_gone, Agent, Coordinator, JobHandle, ServeOptions,
};

/// Bound for anything that involves the agent picking up and running a short job.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

const NUMBERED_SCRIPT: &str = r#"#!/bin/sh
set -e
i=1
while [ "$i" -le 200 ]; do
  echo "out $i"
  i=$((i + 1))
done
echo "err 1" >&2
echo "err 2" >&2
echo "err 3" >&2
{
  echo "speed=$SORTIE_EXTRA_SPEED"
  echo "job=$SORTIE_JOB_ID plan=$SORTIE_PLAN_ID node=$SORTIE_NODE_ID"
} > "$SORTIE_OUTPUT_DIR/result.txt"
cp extra.json "$SORTIE_OUTPUT_DIR/extra-seen.json"
echo "out end"
"#;

#[test]
fn a_script_runs_to_success_with_its_logs_and_outputs() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let _agent = Agent::start(&api, 1);
    let plan = script_plan(
        &api,
        1,
        NUMBERED_SCRIPT,
        &[("speed", "12.5"), ("mode", "survey")],
    );
    // The job's own extra overrides the plan's.
    let job = JobHandle::create(&api, plan, &[("mode", "override")]);
    let follower = {
        let api = api.clone();
        std::thread::spawn(move || job.follow_log(&api))
    };

    let done = job.wait_for(&api, "success", JOB_TIMEOUT);
    assert_eq!(done["exit_code"], 0, "{done}");
    assert!(done["reason"].is_null(), "{done}");
    assert!(done["started_at"].is_string(), "{done}");
    assert!(done["finished_at"].is_string(), "{done}");

    // stdout and stderr are two pipes: each stream is in order, their interleaving is not
    // defined.
    let log = job.log(&api);
    let lines: Vec<&str> = log.lines().collect();
    let stdout: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("out "))
        .collect();
    let expected: Vec<String> = (1..=200)
        .map(|i| format!("out {i}"))
        .chain(["out end".to_owned()])
        .collect();
    assert_eq!(stdout, expected, "stdout lines of the log:\n{log}");
    let stderr: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("err "))
        .collect();
    assert_eq!(stderr, ["err 1", "err 2", "err 3"], "log:\n{log}");
    assert_eq!(lines.len(), 204, "unexpected lines in the log:\n{log}");
    let followed = follower.join().expect("the follow thread");
    assert_eq!(followed, log, "?follow=true ended with a different log");

    // Both output files are attached to the job under their names and download intact.
    let outputs: Vec<&str> = done["outputs"]
        .as_array()
        .expect("outputs is a list")
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert_eq!(outputs, ["extra-seen.json", "result.txt"], "{done}");
    let download = |name: &str| {
        let blob = done["files"][name]
            .as_str()
            .unwrap_or_else(|| panic!("no output {name} in files: {done}"));
        let reply = api.get(&format!("/api/v2/blobs/{blob}"));
        assert_eq!(reply.status.as_u16(), 200, "{}", reply.text());
        reply.text()
    };
    assert_eq!(
        download("result.txt"),
        format!("speed=12.5\njob={} plan={plan} node=1\n", job.id)
    );
    let extra: serde_json::Value =
        serde_json::from_str(&download("extra-seen.json")).expect("extra.json is JSON");
    assert_eq!(
        extra,
        serde_json::json!({"mode": "override", "speed": "12.5"})
    );
}

#[test]
fn a_failing_script_is_a_failure_with_its_exit_code() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let _agent = Agent::start(&api, 1);
    let plan = script_plan(&api, 1, "#!/bin/sh\necho 'about to fail'\nexit 3\n", &[]);
    let job = JobHandle::create(&api, plan, &[]);

    let done = job.wait_for(&api, "failure", JOB_TIMEOUT);
    assert_eq!(done["exit_code"], 3, "{done}");
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("exit code 3"), "reason: {done}");
    assert_eq!(job.log(&api), "about to fail\n");
}

/// A script with a background child, both carrying the marker: in the environment (every
/// process of the job inherits it) and on the child's command line (`pgrep -f` finds it).
const SLEEPER_SCRIPT: &str = r#"#!/bin/sh
echo "sleeping"
sh -c 'sleep 600; exit 0' "$SORTIE_EXTRA_MARKER" &
wait
echo "woke up"
"#;

#[test]
fn cancel_stops_a_running_job_and_its_whole_process_group() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let _agent = Agent::start(&api, 1);
    let marker = unique_marker();
    let plan = script_plan(&api, 1, SLEEPER_SCRIPT, &[("marker", &marker)]);
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", JOB_TIMEOUT);
    job.wait_log(&api, "sleeping", JOB_TIMEOUT);
    assert!(
        sortie_tests::wait_until(JOB_TIMEOUT, || processes_with_marker(&marker).len() >= 2),
        "the job's processes never showed: {:?}",
        processes_with_marker(&marker)
    );

    let asked = Instant::now();
    let canceling = job.cancel(&api);
    assert_eq!(canceling["status"], "canceling", "{canceling}");
    let done = job.wait_for(&api, "cancelled", JOB_TIMEOUT);
    let latency = asked.elapsed();
    eprintln!("cancel request → cancelled: {} ms", latency.as_millis());
    assert!(
        latency < Duration::from_secs(5),
        "cancel took {latency:?}: {done}"
    );
    assert_eq!(done["reason"], "cancelled by demo", "{done}");
    // The agent reports `cancelled` only once the group is gone.
    wait_processes_gone(&marker, Duration::from_secs(2));
    let log = job.log(&api);
    assert!(
        log.contains("[sortie] stopping the job: cancelled by demo"),
        "log:\n{log}"
    );
    assert!(!log.contains("woke up"), "log:\n{log}");
}

#[test]
fn a_job_cancelled_while_its_node_is_offline_never_runs() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let mut agent = Agent::configure(&api, 1);
    let ran = agent.scratch_dir().join("ran");
    let script = "#!/bin/sh\necho ran >> \"$SORTIE_EXTRA_RAN_FILE\"\n";
    let plan = script_plan(&api, 1, script, &[]);
    let ran_file = ran.display().to_string();
    let job = JobHandle::create(&api, plan, &[("ran_file", &ran_file)]);
    assert_eq!(job.status(&api), "pending");

    // A pending job has not left the coordinator: cancelling it is final at once.
    let cancelled = job.cancel(&api);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");

    agent.spawn();
    // A later job of the same plan runs: the agent is connected and takes dispatches.
    let proof = agent.scratch_dir().join("proof");
    let proof_file = proof.display().to_string();
    let later = JobHandle::create(&api, plan, &[("ran_file", &proof_file)]);
    later.wait_for(&api, "success", JOB_TIMEOUT);
    assert!(proof.exists(), "the later job did not run");
    // The cancelled one had every chance to be sent: a few heartbeats, each of which brings
    // the node what waits for it.
    wait_heartbeats(&api, 1, 3, JOB_TIMEOUT);
    assert!(
        !ran.exists(),
        "the cancelled job ran: {}",
        std::fs::read_to_string(&ran).unwrap_or_default()
    );
    assert_eq!(job.status(&api), "cancelled");
    assert!(
        !agent.logged(&["job accepted", &format!("job_id={}", job.id)]),
        "the agent accepted the cancelled job:\n{}",
        agent.log()
    );
}

#[test]
fn a_job_for_an_offline_node_waits_and_runs_when_its_agent_comes() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let mut agent = Agent::configure(&api, 1);
    let plan = script_plan(
        &api,
        1,
        "#!/bin/sh\necho \"hello from $SORTIE_NODE_ID\"\n",
        &[],
    );
    let job = JobHandle::create(&api, plan, &[]);
    assert_eq!(node_status(&api, 1), "offline");
    assert_eq!(job.status(&api), "pending");

    agent.spawn();
    let done = job.wait_for(&api, "success", JOB_TIMEOUT);
    assert_eq!(job.log(&api), "hello from 1\n");
    assert!(
        done["started_at"].as_str() > done["created_at"].as_str(),
        "{done}"
    );
    assert_eq!(node_status(&api, 1), "online");
}

/// A job that runs past its plan's `timeout_s` ends `timeout` and its processes are stopped on
/// the device. Retrying it runs the same inputs again as a new
/// job of the plan.
#[test]
fn a_job_over_its_time_limit_times_out_and_can_be_retried() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let _agent = Agent::start(&api, 1);
    let marker = unique_marker();
    let script = "#!/bin/sh\necho \"try $SORTIE_EXTRA_TRY\"\nsh -c 'sleep 600; exit 0' \"$SORTIE_EXTRA_MARKER\"\n";
    let plan = script_plan(&api, 1, script, &[("marker", &marker), ("timeout_s", "1")]);
    let job = JobHandle::create(&api, plan, &[("try", "first")]);
    job.wait_for(&api, "running", JOB_TIMEOUT);

    let done = job.wait_for(&api, "timeout", JOB_TIMEOUT);
    let reason = done["reason"].as_str().unwrap_or_default();
    // The agent enforces the limit it got in the dispatch ("timed out after 1 s"); the
    // coordinator's own clock is the backstop ("ran longer than its time limit of 1 s").
    assert!(reason.contains("1 s"), "{done}");
    wait_processes_gone(&marker, JOB_TIMEOUT);

    let retried = api
        .post_json(&format!("{}/retry", job.path()), &serde_json::json!({}))
        .expect(201);
    assert_eq!(retried["job_id"], job.seq + 1, "{retried}");
    assert_eq!(
        retried["extra"]["try"], "first",
        "the retry keeps the job's inputs: {retried}"
    );
    let again = JobHandle {
        plan_id: plan,
        seq: retried["job_id"].as_u64().expect("job_id"),
        id: retried["id"].as_u64().expect("id"),
    };
    again.wait_log(&api, "try first", JOB_TIMEOUT);
    again.wait_for(&api, "timeout", JOB_TIMEOUT);
    wait_processes_gone(&marker, JOB_TIMEOUT);
}
