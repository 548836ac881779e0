//! The broker goes away: an external Mosquitto is killed mid-job and started again on the same
//! port. A job survives a short outage; a job that asked for the dead-man's switch
//! (`abort_on_link_loss_s`) is stopped by its agent when the link stays down.
//!
//! These tests always use Mosquitto (the embedded broker cannot die without its coordinator);
//! they skip when it is not installed, unless `SORTIE_REQUIRE_MOSQUITTO` is set.

use std::time::{Duration, Instant};

use sortie_tests::{
    mosquitto_or_skip, processes_with_marker, script_plan, unique_marker, wait_heartbeats,
    wait_processes_gone, wait_until, Agent, Coordinator, JobHandle, ServeOptions,
};

/// Bound for a job to be picked up, run, or reported. Generous: reconnects back off up to 5 s.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Prints, then waits (bounded, 60 s) for the go file, prints again and exits 0.
const WAIT_FOR_GO: &str = r#"#!/bin/sh
echo "started"
i=0
while [ ! -e "$SORTIE_EXTRA_GO_FILE" ] && [ "$i" -lt 600 ]; do
  sleep 0.1
  i=$((i + 1))
done
echo "finishing"
"#;

#[test]
fn a_job_survives_a_broker_restart() {
    if !mosquitto_or_skip("a_job_survives_a_broker_restart") {
        return;
    }
    let mut server = Coordinator::start(ServeOptions::relay().mosquitto());
    let api = server.demo_api();
    let agent = Agent::start(&api, 1);
    let go = agent.scratch_dir().join("go");
    let plan = script_plan(
        &api,
        1,
        WAIT_FOR_GO,
        &[("go_file", &go.display().to_string())],
    );
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", TIMEOUT);
    job.wait_log(&api, "started", TIMEOUT);

    let broker = server.mosquitto().expect("a mosquitto");
    broker.kill_9();
    agent.wait_logged(&["lost the broker"], TIMEOUT);
    broker.start_again();
    // Both sides are back once the coordinator hears the agent again.
    wait_heartbeats(&api, 1, 1, TIMEOUT);
    assert_eq!(job.status(&api), "running");

    std::fs::write(&go, "go").expect("writing the go file");
    let done = job.wait_for(&api, "success", TIMEOUT);
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(job.log(&api), "started\nfinishing\n");
}

/// The job ends while the broker is down; its `Finished` waits in the agent's outbox and must
/// arrive once the broker is back.
///
/// Mosquitto (no persistence) comes back without the coordinator's subscription; when the
/// agent reconnects first, it resends its outbox before the coordinator has subscribed and the
/// broker drops it. The coordinator then sees a gap in the agent's seqs, does not ack past it,
/// and asks for the outbox again (a `Ping`), so the `Finished` still arrives.
#[test]
fn a_job_that_ends_while_the_broker_is_down_is_reported_when_it_returns() {
    if !mosquitto_or_skip("a_job_that_ends_while_the_broker_is_down_is_reported_when_it_returns") {
        return;
    }
    let mut server = Coordinator::start(ServeOptions::relay().mosquitto());
    let api = server.demo_api();
    let agent = Agent::start(&api, 1);
    let go = agent.scratch_dir().join("go");
    let plan = script_plan(
        &api,
        1,
        WAIT_FOR_GO,
        &[("go_file", &go.display().to_string())],
    );
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", TIMEOUT);
    job.wait_log(&api, "started", TIMEOUT);

    let broker = server.mosquitto().expect("a mosquitto");
    broker.kill_9();
    std::fs::write(&go, "go").expect("writing the go file");
    agent.wait_logged(&["job finished", &format!("job_id={}", job.id)], TIMEOUT);
    broker.start_again();

    let done = job.wait_for(&api, "success", TIMEOUT);
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(job.log(&api), "started\nfinishing\n");
}

/// A job with `abort_on_link_loss_s=1` is stopped by its own agent when the broker stays
/// unreachable for a second, and reported as `error` once the link is back.
#[test]
fn the_dead_mans_switch_stops_a_job_when_the_link_is_lost() {
    if !mosquitto_or_skip("the_dead_mans_switch_stops_a_job_when_the_link_is_lost") {
        return;
    }
    let mut server = Coordinator::start(ServeOptions::relay().mosquitto());
    let api = server.demo_api();
    let mut agent = Agent::start(&api, 1);
    let marker = unique_marker();
    let script = "#!/bin/sh\necho sleeping\nsh -c 'sleep 600; exit 0' \"$SORTIE_EXTRA_MARKER\"\n";
    let plan = script_plan(
        &api,
        1,
        script,
        &[("marker", &marker), ("abort_on_link_loss_s", "1")],
    );
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", TIMEOUT);
    job.wait_log(&api, "sleeping", TIMEOUT);
    assert!(
        wait_until(TIMEOUT, || !processes_with_marker(&marker).is_empty()),
        "the job's process never showed"
    );

    let broker = server.mosquitto().expect("a mosquitto");
    let killed = Instant::now();
    broker.kill_9();
    // 1 s without the broker, then SIGTERM (SIGKILL after the 3 s grace): well within 10 s.
    wait_processes_gone(&marker, Duration::from_secs(10));
    eprintln!(
        "broker killed → job processes gone: {} ms",
        killed.elapsed().as_millis()
    );
    assert!(
        agent.logged(&["stopping the job", "link to the coordinator lost for 1 s"]),
        "the agent did not say why it stopped the job:\n{}",
        agent.log()
    );

    agent.wait_logged(&["job finished", &format!("job_id={}", job.id)], TIMEOUT);

    // Workaround (see the ignored test above): the job's `Finished` waits in the agent's
    // outbox, and is lost if the agent resends it before the coordinator has subscribed to
    // the restarted broker. Freeze the agent until the coordinator is back, so what is tested
    // here is the switch and its report, not that race.
    agent.freeze();
    let subscribed = |broker: &sortie_tests::Mosquitto| {
        broker.subscriptions("sortie-coordinator", "/nodes/+/evt")
    };
    let before = subscribed(broker);
    broker.start_again();
    assert!(
        wait_until(TIMEOUT, || subscribed(broker) > before),
        "the coordinator did not subscribe to the restarted broker"
    );
    agent.thaw();
    let done = job.wait_for(&api, "error", TIMEOUT);
    assert_eq!(
        done["reason"], "link to the coordinator lost for 1 s",
        "{done}"
    );
    let log = job.log(&api);
    assert!(
        log.contains("[sortie] stopping the job: link to the coordinator lost for 1 s"),
        "log:\n{log}"
    );
}
