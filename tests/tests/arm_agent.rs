//! The cross-built aarch64 agent, run under user-mode qemu against the native coordinator:
//! what runs on a Raspberry Pi, checked on this machine.
//!
//! `SORTIE_ARM_AGENT_BIN` names the binary (`scripts/cross-build.sh aarch64` prints it);
//! `SORTIE_AGENT_RUNNER` the runner in front of it (default on a non-ARM host:
//! `qemu-aarch64 -L /`; set it empty on an aarch64 host). Without the binary the test says it
//! skips and passes, unless `SORTIE_REQUIRE_ARM=1` (CI) makes that a failure. `.ci/run` builds
//! the binary and runs this.
//!
//! One node, one agent, one coordinator, and the checks in order: starting qemu and the agent
//! is the slow part, so they share it. A new check (telemetry, say) is a `fn(&ArmNode)` added
//! to [`CHECKS`].
//!
//! The agent is emulated, its jobs are not: it starts `/bin/sh` scripts through the host
//! kernel, so they run natively, as they would on the device.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sortie_tests::{
    node_status, processes_with_marker, script_plan, unique_marker, wait_processes_gone,
    wait_until, Agent, AgentProgram, Api, Coordinator, JobHandle, ServeOptions,
};

/// Bound for anything that involves the emulated agent (qemu runs it several times slower).
const ARM_TIMEOUT: Duration = Duration::from_secs(60);

/// The runner when `SORTIE_AGENT_RUNNER` is unset and this is not an aarch64 host. `-L /`:
/// the arm64 glibc of Debian's multiarch (`libc6:arm64`, which `scripts/cross-setup.sh`
/// installs), whole. `-L /usr/aarch64-linux-gnu` takes the cross package's `ld.so` but still
/// finds multiarch's newer `libc.so.6` through `/etc/ld.so.cache`; the mismatched pair hangs
/// in the first `pthread_create`.
const DEFAULT_RUNNER: &str = "qemu-aarch64 -L /";

/// ELF `e_machine` of AArch64.
const EM_AARCH64: u16 = 183;

/// What every check gets: the server, an admin's API client and node 1's emulated agent.
struct ArmNode {
    _server: Coordinator,
    api: Api,
    agent: Agent,
    program: AgentProgram,
}

/// One check against the running node; it panics with its evidence if it fails.
type Check = fn(&ArmNode);

/// The checks, in the order they run against one [`ArmNode`].
const CHECKS: &[(&str, Check)] = &[
    ("the node comes online", the_node_comes_online),
    (
        "simulated telemetry reaches the coordinator",
        simulated_telemetry_reaches_the_coordinator,
    ),
    (
        "a script runs to success with its log",
        a_script_runs_to_success_with_its_log,
    ),
    (
        "a sleeping job is cancelled with its process group",
        a_sleeping_job_is_cancelled_with_its_process_group,
    ),
];

#[test]
fn the_aarch64_agent_under_qemu_runs_and_cancels_jobs() {
    let Some(program) = arm_program_or_skip() else {
        return;
    };
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let mut agent = Agent::configure(&api, 1).with_program(program.clone());
    agent.spawn();
    let node = ArmNode {
        _server: server,
        api,
        agent,
        program,
    };
    for (name, check) in CHECKS {
        let started = Instant::now();
        check(&node);
        eprintln!(
            "arm agent: {name}: ok ({} ms)",
            started.elapsed().as_millis()
        );
    }
}

/// The aarch64 agent and its runner from the environment, or `None` (with a notice) if
/// `SORTIE_ARM_AGENT_BIN` is unset.
///
/// # Panics
/// If it is unset while `SORTIE_REQUIRE_ARM=1`, or names something that is not an aarch64
/// executable.
fn arm_program_or_skip() -> Option<AgentProgram> {
    let Some(bin) = std::env::var_os("SORTIE_ARM_AGENT_BIN").map(PathBuf::from) else {
        assert!(
            std::env::var("SORTIE_REQUIRE_ARM").as_deref() != Ok("1"),
            "SORTIE_REQUIRE_ARM=1 but SORTIE_ARM_AGENT_BIN is not set: build the agent with \
             `scripts/cross-build.sh aarch64` and point SORTIE_ARM_AGENT_BIN at it"
        );
        eprintln!(
            "skipping the aarch64 agent test: SORTIE_ARM_AGENT_BIN is not set \
             (scripts/cross-build.sh aarch64 builds it; SORTIE_REQUIRE_ARM=1 makes this a failure)"
        );
        return None;
    };
    assert_eq!(
        elf_machine(&bin),
        Some(EM_AARCH64),
        "SORTIE_ARM_AGENT_BIN={} is not an aarch64 ELF executable",
        bin.display()
    );
    let runner = match std::env::var("SORTIE_AGENT_RUNNER") {
        Ok(runner) => runner,
        Err(_) if std::env::consts::ARCH == "aarch64" => String::new(),
        Err(_) => DEFAULT_RUNNER.to_owned(),
    };
    let runner: Vec<String> = runner.split_whitespace().map(str::to_owned).collect();
    eprintln!("arm agent: {} under {runner:?}", bin.display());
    Some(AgentProgram { runner, bin })
}

/// The `e_machine` field of an ELF file (little-endian), or `None` if it is not ELF.
fn elf_machine(path: &Path) -> Option<u16> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.get(..4)? != b"\x7fELF" || *bytes.get(5)? != 1 {
        return None;
    }
    Some(u16::from_le_bytes([*bytes.get(18)?, *bytes.get(19)?]))
}

fn the_node_comes_online(node: &ArmNode) {
    let came = wait_until(ARM_TIMEOUT, || node_status(&node.api, 1) == "online");
    let log = node.agent.log();
    let hint = if log.is_empty() {
        "\n(the agent logged nothing: it never reached `main`'s first thread. Under qemu that is \
         usually an ld.so and libc.so.6 of different glibc builds: run with \
         SORTIE_AGENT_RUNNER='qemu-aarch64 -L /' and libc6:arm64 installed)"
    } else {
        ""
    };
    assert!(
        came,
        "node 1 is not online after {ARM_TIMEOUT:?}; agent log:\n{log}{hint}"
    );

    // What brought it online is the runner running the aarch64 binary, not a native agent
    // found some other way. (Checked now, not at spawn: right after `exec` the new command
    // line may not be in /proc yet.)
    let pid = node.agent.pid().expect("the agent runs");
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let bin = node.program.bin.as_os_str().as_encoded_bytes();
    assert!(
        cmdline.split(|&b| b == 0).any(|arg| arg == bin),
        "process {pid} does not run {}: {}",
        node.program.bin.display(),
        String::from_utf8_lossy(&cmdline)
    );
    if let Some(runner) = node.program.runner.first() {
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
        assert_eq!(
            exe.file_name(),
            Path::new(runner).file_name(),
            "process {pid} is {}, not the runner {runner}",
            exe.display()
        );
    }
}

/// The demo drone's status point (the simulator, sampled by the emulated agent) keeps changing
/// on the coordinator.
fn simulated_telemetry_reaches_the_coordinator(node: &ArmNode) {
    let drone = node.api.get("/api/v1/nodes/1").expect(200);
    let status = drone["points"]
        .as_array()
        .and_then(|points| {
            points
                .iter()
                .find(|p| p["point_type_name"] == "drone-status")
        })
        .unwrap_or_else(|| panic!("node 1 has no drone-status point: {drone}"))
        .clone();
    let path = format!("/api/v1/nodes/1/points/{}", status["id"]);
    let sampled_at = || node.api.get(&path).expect(200)["at"].clone();
    assert!(
        wait_until(ARM_TIMEOUT, || !sampled_at().is_null()),
        "no telemetry from the aarch64 agent: {}",
        node.api.get(&path).text()
    );
    let first = sampled_at();
    assert!(
        wait_until(ARM_TIMEOUT, || sampled_at() != first),
        "the aarch64 agent's telemetry does not move: {}",
        node.api.get(&path).text()
    );
    let value = &node.api.get(&path).expect(200)["value"];
    assert_eq!(value["source"], "sim", "{value}");
    assert!(value["battery_percent"].is_number(), "{value}");
}

fn a_script_runs_to_success_with_its_log(node: &ArmNode) {
    let script = "#!/bin/sh\n\
                  echo \"hello from node $SORTIE_NODE_ID, speed $SORTIE_EXTRA_SPEED\"\n\
                  echo 'to stderr' >&2\n\
                  echo done > \"$SORTIE_OUTPUT_DIR/result.txt\"\n";
    let plan = script_plan(&node.api, 1, script, &[("speed", "12.5")]);
    let job = JobHandle::create(&node.api, plan, &[]);
    let done = job.wait_for(&node.api, "success", ARM_TIMEOUT);
    assert_eq!(done["exit_code"], 0, "{done}");
    let log = job.log(&node.api);
    let mut lines: Vec<&str> = log.lines().collect();
    // Two pipes: each in order, their interleaving not defined.
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["hello from node 1, speed 12.5", "to stderr"],
        "log:\n{log}"
    );
    assert_eq!(done["outputs"], serde_json::json!(["result.txt"]), "{done}");
}

/// A script whose child sleeps for ten minutes; both carry the marker (environment and
/// command line).
const SLEEPER_SCRIPT: &str = r#"#!/bin/sh
echo "sleeping"
sh -c 'sleep 600; exit 0' "$SORTIE_EXTRA_MARKER" &
wait
echo "woke up"
"#;

fn a_sleeping_job_is_cancelled_with_its_process_group(node: &ArmNode) {
    let marker = unique_marker();
    let plan = script_plan(&node.api, 1, SLEEPER_SCRIPT, &[("marker", &marker)]);
    let job = JobHandle::create(&node.api, plan, &[]);
    job.wait_for(&node.api, "running", ARM_TIMEOUT);
    job.wait_log(&node.api, "sleeping", ARM_TIMEOUT);
    assert!(
        wait_until(ARM_TIMEOUT, || processes_with_marker(&marker).len() >= 2),
        "the job's processes never showed: {:?}",
        processes_with_marker(&marker)
    );
    let groups: Vec<u32> = processes_with_marker(&marker)
        .iter()
        .filter_map(|p| process_group(p.pid))
        .collect();
    let group = groups[0];
    assert!(
        groups.iter().all(|&g| g == group),
        "the job's processes are in different groups: {groups:?}"
    );
    let agent_pid = node.agent.pid().expect("the agent runs");
    assert_ne!(
        Some(group),
        process_group(agent_pid),
        "the job runs in the agent's own process group"
    );

    let canceling = job.cancel(&node.api);
    assert_eq!(canceling["status"], "canceling", "{canceling}");
    let done = job.wait_for(&node.api, "cancelled", ARM_TIMEOUT);
    assert_eq!(done["reason"], "cancelled by demo", "{done}");
    // The agent reports `cancelled` once the group is gone.
    wait_processes_gone(&marker, Duration::from_secs(2));
    let left = processes_in_group(group);
    assert!(left.is_empty(), "process group {group} still has {left:?}");
    let log = job.log(&node.api);
    assert!(!log.contains("woke up"), "log:\n{log}");
}

/// The process group of a live process (field 5 of `/proc/PID/stat`).
fn process_group(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`: comm may hold spaces, so count after the last `)`.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Live (not zombie) processes in process group `group`.
fn processes_in_group(group: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            !matches!(fields.first(), Some(&"Z" | &"X"))
                && fields.get(2).and_then(|g| g.parse().ok()) == Some(group)
        })
        .collect()
}
