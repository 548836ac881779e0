//! Harness for the end-to-end tests: start the real `sortie-coordinator` binary on loopback and
//! drive it over HTTP.
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
//! - here: [`rss_kib`], [`wait_until`], [`sha256_hex`] and the demo credentials.
//!
//! The binary is taken from the same target directory as the test executable
//! (`target/<profile>/sortie-coordinator`), or from `$SORTIE_COORDINATOR_BIN` if set. `cargo test
//! --workspace` builds it; `cargo test -p sortie-tests` alone does not, so run
//! `cargo build -p sortie-coordinator` first.

mod coordinator;
mod http;

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub use coordinator::{admin, coordinator_bin, Coordinator, ServeOptions};
pub use http::{demo_token, http_client, login, send, Api, Reply};

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
