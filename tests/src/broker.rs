//! An external MQTT broker for the relay tests: a private Mosquitto on a free loopback port.
//!
//! The relay suite runs against the coordinator's embedded broker by default and against
//! Mosquitto with `SORTIE_TEST_BROKER=mosquitto` ([`BrokerKind::from_env`]). Tests that kill
//! and restart the broker itself always use Mosquitto; they skip when it is not installed,
//! unless `SORTIE_REQUIRE_MOSQUITTO` is set ([`mosquitto_or_skip`]).

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::wait_until;

/// How long Mosquitto may take to say it is running.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// What Mosquitto logs once it listens (`mosquitto version 2.0.11 running`).
const RUNNING: &str = " running";
/// How many free ports `start` tries when one is taken between probing and binding.
const PORT_ATTEMPTS: usize = 5;

/// Which broker the coordinator of a relay test uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BrokerKind {
    /// The coordinator's embedded broker (`--mqtt-listen`).
    #[default]
    Embedded,
    /// A private Mosquitto per coordinator (`--mqtt-url`).
    Mosquitto,
}

impl BrokerKind {
    /// `SORTIE_TEST_BROKER`: unset, empty or `embedded` → [`Embedded`](BrokerKind::Embedded);
    /// `mosquitto` → [`Mosquitto`](BrokerKind::Mosquitto).
    ///
    /// # Panics
    /// On any other value, and for `mosquitto` when it is not installed: a run that asked for
    /// Mosquitto must not pass silently on the embedded broker.
    pub fn from_env() -> BrokerKind {
        let value = std::env::var("SORTIE_TEST_BROKER").unwrap_or_default();
        match value.trim() {
            "" | "embedded" => BrokerKind::Embedded,
            "mosquitto" => {
                assert!(
                    mosquitto_bin().is_some(),
                    "SORTIE_TEST_BROKER=mosquitto, but mosquitto is not installed \
                     (apt-get install mosquitto, or set SORTIE_MOSQUITTO_BIN)"
                );
                BrokerKind::Mosquitto
            }
            other => panic!("SORTIE_TEST_BROKER={other:?}: expected `embedded` or `mosquitto`"),
        }
    }
}

/// The Mosquitto binary: `$SORTIE_MOSQUITTO_BIN` if set, else `mosquitto` on the `PATH`, else
/// the Debian location `/usr/sbin/mosquitto` (not on a normal user's `PATH`). `None` if missing.
pub fn mosquitto_bin() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SORTIE_MOSQUITTO_BIN") {
        return Some(PathBuf::from(path)).filter(|path| path.is_file());
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("mosquitto"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"].map(PathBuf::from))
        .find(|path| path.is_file())
}

/// For a test that needs Mosquitto whatever `SORTIE_TEST_BROKER` says: `true` if it is
/// installed; otherwise says why the test is skipped and returns `false`.
///
/// # Panics
/// If Mosquitto is missing and `SORTIE_REQUIRE_MOSQUITTO` is set (CI installs it, so a skip
/// there would hide a lost test).
pub fn mosquitto_or_skip(test: &str) -> bool {
    if mosquitto_bin().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("SORTIE_REQUIRE_MOSQUITTO").is_none(),
        "{test}: mosquitto is not installed, and SORTIE_REQUIRE_MOSQUITTO is set"
    );
    eprintln!(
        "SKIPPED {test}: needs mosquitto (apt-get install mosquitto); \
         set SORTIE_REQUIRE_MOSQUITTO=1 to make this a failure"
    );
    false
}

/// A Mosquitto process on `127.0.0.1:<port>`, anonymous access, no persistence. Killed on
/// drop; [`kill_9`](Mosquitto::kill_9) and [`start_again`](Mosquitto::start_again) simulate a
/// broker crash and its return on the same port.
pub struct Mosquitto {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    scratch: TempDir,
}

impl std::fmt::Debug for Mosquitto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mosquitto")
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("port", &self.port)
            .finish()
    }
}

impl Mosquitto {
    /// Starts Mosquitto on a free port and waits (bounded) until it says it is running.
    ///
    /// # Panics
    /// If it is not installed or does not start.
    pub fn start() -> Mosquitto {
        let bin = mosquitto_bin().expect("mosquitto is not installed");
        let scratch = tempfile::Builder::new()
            .prefix("sortie-mosquitto-")
            .tempdir()
            .expect("creating a scratch dir");
        let mut broker = Mosquitto {
            bin,
            child: None,
            port: 0,
            scratch,
        };
        // Design: the port is probed free, then handed to mosquitto; another test may take it
        // in between, so a broker that fails to bind is retried on a new port.
        for _ in 0..PORT_ATTEMPTS {
            broker.port = free_port();
            if broker.spawn() {
                return broker;
            }
        }
        panic!(
            "mosquitto did not start after {PORT_ATTEMPTS} attempts; its log:\n{}",
            broker.log()
        );
    }

    /// The port it listens on (the same after [`start_again`](Mosquitto::start_again)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `mqtt://127.0.0.1:<port>`, for `--mqtt-url`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills it with SIGKILL: connections drop, queued messages and sessions are lost.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (after [`kill_9`](Mosquitto::kill_9)).
    ///
    /// # Panics
    /// If it is running, or does not come up within a few attempts.
    pub fn start_again(&mut self) {
        assert!(!self.is_running(), "mosquitto is still running");
        let mut started = false;
        let came_up = wait_until(STARTUP_TIMEOUT, || {
            started = self.spawn();
            started
        });
        assert!(
            came_up,
            "mosquitto did not start again on port {}; its log:\n{}",
            self.port,
            self.log()
        );
    }

    /// How many subscriptions of `client_id` to a filter ending in `filter_end` it logged,
    /// across restarts (it logs `<client id> <qos> <filter>` for each SUBSCRIBE).
    pub fn subscriptions(&self, client_id: &str, filter_end: &str) -> usize {
        let prefix = format!("{client_id} ");
        self.log()
            .lines()
            .filter_map(|line| line.split_once(": ").map(|(_, rest)| rest))
            .filter(|rest| rest.starts_with(&prefix) && rest.ends_with(filter_end))
            .count()
    }

    /// Everything it logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.scratch.path().join("mosquitto.log")
    }

    /// Writes the config for the current port, spawns, and waits for `running` in the log.
    /// `false` if the process exited (typically: the port is taken).
    fn spawn(&mut self) -> bool {
        let conf = self.scratch.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n\
                 log_type information\nlog_type subscribe\n",
                self.port
            ),
        )
        .expect("writing mosquitto.conf");
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the mosquitto log");
        let runs_before = self.log().matches(RUNNING).count();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&conf)
            .current_dir(self.scratch.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("cloning a file handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", self.bin.display()));
        self.child = Some(child);
        let mut exited = false;
        let running = wait_until(STARTUP_TIMEOUT, || {
            if !self.is_running() {
                exited = true;
                return true;
            }
            self.log().matches(RUNNING).count() > runs_before
        });
        if exited || !running {
            self.kill_9();
            return false;
        }
        true
    }

    /// The scratch dir (config and log).
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill_9();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- mosquitto (port {}) log, last lines ---", self.port);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding a probe socket")
        .port()
}
