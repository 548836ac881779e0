//! Harness for the end-to-end tests: start the real `sortie-coordinator` and `sortie-agent`
//! binaries on loopback (with the embedded broker or a private Mosquitto) and drive them over
//! HTTP.
//!
//! Every test starts its own server on `127.0.0.1:0` with its own temporary data dir, so tests
//! are independent and run in parallel. Nothing here sleeps as synchronisation: waits are bounded
//! polls ([`wait_until`]) that fail loudly with the server's log.
//!
//! # Layout
//! - `coordinator.rs`: [`Coordinator`], one server process (start, stop with SIGTERM,
//!   `kill -9`, restart on the same data dir), killed on drop so no process outlives its test;
//!   [`admin`], the admin subcommands (`user add`, `client add`, `node add`, `token issue`).
//! - `http.rs`: [`Api`] and [`Reply`], a blocking HTTP client bound to a base URL and a token;
//!   [`login`] and [`demo_token`], the OAuth password grant.
//! - `agent.rs`: [`Agent`], one node's agent (config from the API, own data dir, 1 s
//!   heartbeats; start, SIGTERM, `kill -9`, start again), killed with every process its jobs
//!   left on drop; [`AgentProgram`], the binary it runs and the runner (qemu) in front of it.
//! - `broker.rs`: [`Mosquitto`], a private external broker (kill and restart on the same
//!   port); [`BrokerKind`], the relay suite's broker from `SORTIE_TEST_BROKER`.
//! - `jobs.rs`: [`script_plan`], [`JobHandle`] (status waits, logs, cancel), heartbeat waits,
//!   and [`processes_with_marker`]: how tests check that a job's processes are gone.
//! - here: [`rss_kib`], [`wait_until`], [`sha256_hex`] and the demo credentials.
//!
//! The binaries are taken from the same target directory as the test executable
//! (`target/<profile>/sortie-coordinator`, `.../sortie-agent`), or from
//! `$SORTIE_COORDINATOR_BIN` and `$SORTIE_AGENT_BIN` if set. `cargo test --workspace` builds
//! them; `cargo test -p sortie-tests` alone does not, so run `cargo build --workspace` first.
//! `$SORTIE_AGENT_RUNNER` (e.g. `qemu-aarch64 -L /`) goes in front of
//! every agent the harness starts: `tests/arm_agent.rs` runs a cross-built agent that way.
//!
//! The relay tests (`tests/relay_*.rs`) start their servers with [`ServeOptions::relay`]:
//! `SORTIE_TEST_BROKER=mosquitto` runs all of them against a private Mosquitto per server
//! instead of the embedded broker.

mod agent;
mod broker;
mod coordinator;
mod http;
mod jobs;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use agent::{agent_bin, agent_command, agent_runner, Agent, AgentProgram, NodeCredentials};
pub use broker::{free_port, mosquitto_bin, mosquitto_or_skip, BrokerKind, Mosquitto};
pub use coordinator::{admin, coordinator_bin, Coordinator, ServeOptions};
pub use http::{demo_token, http_client, login, send, Api, Reply};
pub use jobs::{
    kill_processes, node_status, processes_with_marker, script_plan, unique_marker,
    wait_heartbeats, wait_processes_gone, JobHandle, ProcessInfo, FINAL_STATES,
};

/// The demo user that `serve --demo` seeds.
pub const DEMO_USER: &str = "demo";
/// The demo user's password.
pub const DEMO_PASSWORD: &str = "demodemo";
/// The demo OAuth client's id.
pub const DEMO_CLIENT_ID: &str = "sortie-demo";
/// The demo OAuth client's secret.
pub const DEMO_CLIENT_SECRET: &str = "sortie-demo-secret";

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The resident set size of a process in KiB (`VmRSS` of `/proc/PID/status`), or `None` if
/// the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
