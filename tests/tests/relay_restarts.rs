//! Crashes and redeliveries: `kill -9` of the agent or of the coordinator in the middle of a
//! job, and a dispatch delivered twice. Every job runs at most once, and reaches the final
//! state its process earned (or `error`, when the agent cannot vouch for it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sortie_tests::{
    processes_with_marker, script_plan, unique_marker, wait_heartbeats, wait_processes_gone,
    wait_until, Agent, Api, Coordinator, JobHandle, ServeOptions,
};

/// Bound for a job to be picked up, run, or reported. Generous: reconnects back off up to 5 s.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Appends a line to the runs file (outside the agent's work dir, so a rerun cannot hide),
/// prints five lines, then sleeps in a child that carries the marker.
const RUN_ONCE_THEN_SLEEP: &str = r#"#!/bin/sh
echo "run $SORTIE_JOB_ID" >> "$SORTIE_EXTRA_RUNS_FILE"
for i in 1 2 3 4 5; do echo "before kill $i"; done
sh -c 'sleep 600; exit 0' "$SORTIE_EXTRA_MARKER"
echo "after sleep"
"#;

/// Prints, then waits (bounded, 60 s) for the go file, then writes the done file and exits 0.
/// The test decides when the job ends, without timing assumptions.
const WAIT_FOR_GO: &str = r#"#!/bin/sh
echo "run $SORTIE_JOB_ID" >> "$SORTIE_EXTRA_RUNS_FILE"
echo "started"
i=0
while [ ! -e "$SORTIE_EXTRA_GO_FILE" ] && [ "$i" -lt 600 ]; do
  sleep 0.1
  i=$((i + 1))
done
echo "finishing"
echo done > "$SORTIE_EXTRA_DONE_FILE"
"#;

/// The lines of a runs file (absent: none).
fn runs(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The files of one [`WAIT_FOR_GO`] job, in a dir of the test's.
struct GoFiles {
    runs: PathBuf,
    go: PathBuf,
    done: PathBuf,
}

impl GoFiles {
    fn new(dir: &Path, name: &str) -> GoFiles {
        let file = |suffix: &str| dir.join(format!("{name}.{suffix}"));
        GoFiles {
            runs: file("runs"),
            go: file("go"),
            done: file("done"),
        }
    }

    /// A plan on node 1 running [`WAIT_FOR_GO`] with these files.
    fn plan(&self, api: &Api) -> u64 {
        let (runs, go, done) = (
            self.runs.display().to_string(),
            self.go.display().to_string(),
            self.done.display().to_string(),
        );
        script_plan(
            api,
            1,
            WAIT_FOR_GO,
            &[("runs_file", &runs), ("go_file", &go), ("done_file", &done)],
        )
    }

    /// Lets the job end.
    fn go(&self) {
        std::fs::write(&self.go, "go").expect("writing the go file");
    }
}

#[test]
fn agent_kill_9_mid_job_ends_it_as_error_after_restart_without_rerun() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let mut agent = Agent::start(&api, 1);
    let marker = unique_marker();
    let runs_file = agent.scratch_dir().join("runs");
    let plan = script_plan(
        &api,
        1,
        RUN_ONCE_THEN_SLEEP,
        &[
            ("marker", &marker),
            ("runs_file", &runs_file.display().to_string()),
        ],
    );
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", TIMEOUT);
    job.wait_log(&api, "before kill 5", TIMEOUT);

    agent.kill_9();
    // The job outlives its agent: what ends it now is the restarted agent's recovery.
    assert!(
        !processes_with_marker(&marker).is_empty(),
        "the job's processes died with the agent"
    );
    agent.spawn();
    let done = job.wait_for(&api, "error", TIMEOUT);
    let reason = done["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("agent restarted"), "{done}");
    wait_processes_gone(&marker, Duration::from_secs(5));

    // Give a redelivered dispatch its chances: heartbeats bring the node what waits for it.
    wait_heartbeats(&api, 1, 3, TIMEOUT);
    assert_eq!(runs(&runs_file), [format!("run {}", job.id)], "ran twice?");
    let log = job.log(&api);
    let expected: String = (1..=5).map(|i| format!("before kill {i}\n")).collect();
    assert_eq!(log, expected, "the log lost or gained lines");
    assert_eq!(job.status(&api), "error");
}

/// `kill -9` of the coordinator while a job runs (with the embedded broker, the broker dies
/// too), restart on the same data dir and ports: the relay picks the job up where the store
/// left it, and the job's end, after the restart, arrives as `success`.
#[test]
fn coordinator_kill_9_mid_job_then_restart_gets_the_final_state() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let agent = Agent::start(&api, 1);
    let files = GoFiles::new(agent.scratch_dir(), "job");
    let plan = files.plan(&api);
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", TIMEOUT);
    job.wait_log(&api, "started", TIMEOUT);

    let mut server = server;
    server.kill_9();
    // Same data dir, same ports (the agent holds the broker's address).
    let server = server.restart();
    let api = Api::new(server.base_url()).with_token(api.token().expect("a token"));
    assert_eq!(job.status(&api), "running");
    wait_heartbeats(&api, 1, 1, TIMEOUT);

    files.go();
    let done = job.wait_for(&api, "success", TIMEOUT);
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(job.log(&api), "started\nfinishing\n");
    assert_eq!(runs(&files.runs).len(), 1);
}

/// Like the test above, but the job ends while the coordinator is dead, so its `Finished`
/// must wait (in the agent's outbox, or the external broker's session) and arrive after the
/// restart.
///
/// With the embedded broker, the restarted broker accepts the agent before the coordinator has
/// subscribed, so the agent's resent outbox is dropped. The coordinator then sees a gap in the
/// agent's seqs, does not ack past it, and asks for the outbox again, so `Finished` arrives.
#[test]
fn a_job_that_ends_while_the_coordinator_is_dead_is_reported_after_restart() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let agent = Agent::start(&api, 1);
    let files = GoFiles::new(agent.scratch_dir(), "job");
    let plan = files.plan(&api);
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", TIMEOUT);
    job.wait_log(&api, "started", TIMEOUT);

    let mut server = server;
    server.kill_9();
    files.go();
    assert!(
        wait_until(TIMEOUT, || files.done.exists()),
        "the job never finished"
    );
    agent.wait_logged(&["job finished", &format!("job_id={}", job.id)], TIMEOUT);

    let server = server.restart();
    let api = Api::new(server.base_url()).with_token(api.token().expect("a token"));
    let done = job.wait_for(&api, "success", TIMEOUT);
    assert_eq!(done["exit_code"], 0, "{done}");
    assert_eq!(job.log(&api), "started\nfinishing\n");
    assert_eq!(runs(&files.runs).len(), 1);
}

/// The relay sends a dispatch again when the job stays `dispatched` (not accepted, as far as
/// the coordinator knows) for 10 s: the node's next heartbeat brings it. Here the agent has
/// accepted job B but cannot start it while job A runs (one job at a time), and `Accepted`
/// does not move a `dispatched` job, so the coordinator redelivers B's dispatch on every
/// heartbeat after 10 s. The agent must recognise it and run B exactly once — and an agent
/// restart after B succeeded must not run it again either.
#[test]
fn a_redelivered_dispatch_runs_the_job_only_once() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let mut agent = Agent::start(&api, 1);
    let blocker_files = GoFiles::new(agent.scratch_dir(), "a");
    let blocker = JobHandle::create(&api, blocker_files.plan(&api), &[]);
    blocker.wait_for(&api, "running", TIMEOUT);

    let queued_files = GoFiles::new(agent.scratch_dir(), "b");
    queued_files.go(); // B ends as soon as it starts
    let queued = JobHandle::create(&api, queued_files.plan(&api), &[]);
    agent.wait_logged(&["job accepted", &format!("job_id={}", queued.id)], TIMEOUT);
    assert_eq!(queued.status(&api), "dispatched");
    agent.wait_logged(
        &[
            "dispatch of a job already known",
            &format!("job_id={}", queued.id),
        ],
        TIMEOUT,
    );

    blocker_files.go();
    blocker.wait_for(&api, "success", TIMEOUT);
    queued.wait_for(&api, "success", TIMEOUT);
    assert_eq!(runs(&queued_files.runs), [format!("run {}", queued.id)]);

    // A clean restart after success: nothing of B is queued, nothing runs again.
    let stopped = agent.stop();
    assert!(stopped.success(), "the agent stopped with {stopped}");
    agent.spawn();
    wait_heartbeats(&api, 1, 3, TIMEOUT);
    assert_eq!(runs(&queued_files.runs), [format!("run {}", queued.id)]);
    assert_eq!(runs(&blocker_files.runs), [format!("run {}", blocker.id)]);
    assert_eq!(queued.status(&api), "success");
}
