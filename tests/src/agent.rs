//! Starting, stopping and killing `sortie-agent` processes for one node.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use tempfile::TempDir;

use crate::{kill_processes, processes_with_marker, wait_until, Api, ProcessInfo};

/// How long an agent may take to exit after SIGTERM (it stops its job first: kill grace 3 s).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);

/// The `sortie-agent` binary next to the running test executable, or `$SORTIE_AGENT_BIN`.
///
/// # Panics
/// If it has not been built.
pub fn agent_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SORTIE_AGENT_BIN") {
        return PathBuf::from(path);
    }
    let bin = crate::coordinator::sibling_binary("sortie-agent");
    assert!(
        bin.is_file(),
        "{} does not exist: run `cargo build --workspace` (or `cargo build -p sortie-agent`) first",
        bin.display()
    );
    bin
}

/// The runner `$SORTIE_AGENT_RUNNER` names, split on whitespace (no quoting), e.g.
/// `qemu-aarch64 -L /` to run a cross-built agent under user-mode qemu.
/// Empty when unset or blank: the binary runs directly.
pub fn agent_runner() -> Vec<String> {
    std::env::var("SORTIE_AGENT_RUNNER")
        .map(|runner| runner.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// How to start `sortie-agent`: the binary, and a runner (an emulator) in front of it or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentProgram {
    /// The runner's program and arguments; empty to execute [`bin`](AgentProgram::bin) itself.
    pub runner: Vec<String>,
    /// The agent binary.
    pub bin: PathBuf,
}

impl AgentProgram {
    /// [`agent_bin`] under [`agent_runner`]: what every agent the harness starts runs, unless a
    /// test chooses otherwise ([`Agent::with_program`]).
    ///
    /// # Panics
    /// If the binary has not been built.
    pub fn from_env() -> AgentProgram {
        AgentProgram {
            runner: agent_runner(),
            bin: agent_bin(),
        }
    }

    /// A command that starts the agent (arguments still to add).
    pub fn command(&self) -> Command {
        match self.runner.split_first() {
            Some((runner, runner_args)) => {
                let mut command = Command::new(runner);
                command.args(runner_args).arg(&self.bin);
                command
            }
            None => Command::new(&self.bin),
        }
    }
}

/// A command that starts [`AgentProgram::from_env`]: the agent binary, under
/// `$SORTIE_AGENT_RUNNER` if that is set. Tests that spawn agents themselves use this.
pub fn agent_command() -> Command {
    AgentProgram::from_env().command()
}

/// The parts of a node's agent configuration a test needs to act as that node.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// The node.
    pub node_id: u64,
    /// `mqtt://node-<id>:<password>@host:port`.
    pub mqtt_url: String,
    /// The private topic prefix.
    pub mqtt_prefix: String,
    /// The envelope key, 64 hex digits.
    pub node_key: String,
}

/// The agent of one node: its config (from `GET /api/v1/nodes/{id}/agent-config`, with
/// `data_dir` in a scratch dir of its own and 1 s heartbeats), its data and its log.
///
/// The process may be started, SIGTERMed, `kill -9`ed and started again on the same data dir.
/// Dropping the value kills the agent and every process its jobs left (found by the data dir,
/// which is in each job process's environment), and prints the log if the test panics.
pub struct Agent {
    child: Option<Child>,
    /// What [`spawn`](Agent::spawn) runs; `None`: [`AgentProgram::from_env`], looked up then.
    program: Option<AgentProgram>,
    node_id: u64,
    scratch: TempDir,
    credentials: NodeCredentials,
}

impl std::fmt::Debug for Agent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Agent")
            .field("node_id", &self.node_id)
            .field("pid", &self.child.as_ref().map(Child::id))
            .field("scratch", &self.scratch.path())
            .finish()
    }
}

impl Agent {
    /// Writes node `node_id`'s agent config (fetched with `admin`, an admin's client) without
    /// starting the agent: the node stays offline until [`spawn`](Agent::spawn).
    pub fn configure(admin: &Api, node_id: u64) -> Agent {
        let reply = admin.get(&format!("/api/v1/nodes/{node_id}/agent-config"));
        assert_eq!(
            reply.status.as_u16(),
            200,
            "agent-config of node {node_id}: {}",
            reply.text()
        );
        let mut config: toml::Table = reply
            .text()
            .parse()
            .unwrap_or_else(|e| panic!("agent-config is not TOML ({e}): {}", reply.text()));
        let scratch = tempfile::Builder::new()
            .prefix(&format!("sortie-agent-{node_id}-"))
            .tempdir()
            .expect("creating the agent's scratch dir");
        let data_dir = scratch.path().join("data");
        config.insert(
            "data_dir".into(),
            toml::Value::String(data_dir.display().to_string()),
        );
        config.insert("heartbeat_secs".into(), toml::Value::Integer(1));
        let text = |key: &str| {
            config
                .get(key)
                .and_then(toml::Value::as_str)
                .unwrap_or_else(|| panic!("agent-config has no string {key}"))
                .to_owned()
        };
        let credentials = NodeCredentials {
            node_id,
            mqtt_url: text("mqtt_url"),
            mqtt_prefix: text("mqtt_prefix"),
            node_key: text("node_key"),
        };
        let path = scratch.path().join("agent.toml");
        std::fs::write(&path, toml::to_string(&config).expect("TOML serializes"))
            .expect("writing the agent config");
        Agent {
            child: None,
            program: None,
            node_id,
            scratch,
            credentials,
        }
    }

    /// Runs `program` instead of [`AgentProgram::from_env`] from the next
    /// [`spawn`](Agent::spawn) on (e.g. a cross-built agent under qemu).
    pub fn with_program(mut self, program: AgentProgram) -> Agent {
        self.program = Some(program);
        self
    }

    /// [`configure`](Agent::configure), then [`spawn`](Agent::spawn).
    pub fn start(admin: &Api, node_id: u64) -> Agent {
        let mut agent = Agent::configure(admin, node_id);
        agent.spawn();
        agent
    }

    /// Starts the agent process (again, on the same data dir after a stop or kill).
    ///
    /// # Panics
    /// If it is already running.
    pub fn spawn(&mut self) {
        assert!(
            !self.is_running(),
            "the agent of node {} runs",
            self.node_id
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the agent log");
        let mut command = match &self.program {
            Some(program) => program.command(),
            None => agent_command(),
        };
        command
            .arg("--config")
            .arg(self.scratch.path().join("agent.toml"))
            .current_dir(self.scratch.path())
            // `SORTIE_TEST_AGENT_LOG=sortie_agent=trace` shows acks, resends and commands.
            .env(
                "RUST_LOG",
                std::env::var("SORTIE_TEST_AGENT_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                log.try_clone().expect("cloning the log file handle"),
            ))
            .stderr(Stdio::from(log));
        // Only the file configures it: nothing from the test's environment (this also keeps
        // `SORTIE_AGENT_RUNNER` and `SORTIE_AGENT_BIN` away from the agent).
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("SORTIE_AGENT_") {
                command.env_remove(key);
            }
        }
        self.child = Some(command.spawn().expect("spawning sortie-agent"));
    }

    /// The node it runs.
    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    /// Its node's credentials, as its config file has them.
    pub fn credentials(&self) -> &NodeCredentials {
        &self.credentials
    }

    /// The agent's data dir (journal, job work dirs).
    pub fn data_dir(&self) -> PathBuf {
        self.scratch.path().join("data")
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the agent with SIGKILL: no journal flush, no goodbye; its jobs keep running.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the agent with SIGSTOP: it neither runs nor reconnects until
    /// [`thaw`](Agent::thaw); its connections stay open. Lets a test decide who reconnects
    /// first after an outage.
    pub fn freeze(&mut self) {
        self.signal("-STOP");
    }

    /// Lets a frozen agent run again (SIGCONT).
    pub fn thaw(&mut self) {
        self.signal("-CONT");
    }

    fn signal(&mut self, signal: &str) {
        let pid = self.pid().expect("the agent is not running");
        let sent = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill {signal} {pid} failed");
    }

    /// Asks the agent to stop with SIGTERM (it stops a running job first) and waits, bounded.
    ///
    /// # Panics
    /// If it is not running, or still runs after 20 s (it is then killed).
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the agent is not running");
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {} failed", child.id());
        let mut status = None;
        let exited = wait_until(SHUTDOWN_TIMEOUT, || {
            status = child.try_wait().expect("polling the agent");
            status.is_some()
        });
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the agent did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM; log:\n{}",
                self.log()
            );
        }
        status.expect("exited")
    }

    /// Everything the agent logged (all its runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Whether a line of the log contains every one of `parts` (a message and its fields,
    /// e.g. `["job finished", "job_id=3"]`; a field matches only whole, `job_id=3` is not
    /// `job_id=31`).
    pub fn logged(&self, parts: &[&str]) -> bool {
        self.log().lines().any(|line| line_has_all(line, parts))
    }

    /// Waits (bounded) until [`logged`](Agent::logged) holds.
    ///
    /// # Panics
    /// If it does not within `timeout`; the message carries the log.
    #[track_caller]
    pub fn wait_logged(&self, parts: &[&str], timeout: Duration) {
        if !wait_until(timeout, || self.logged(parts)) {
            panic!(
                "the agent of node {} did not log {parts:?} within {timeout:?}; log:\n{}",
                self.node_id,
                self.log()
            );
        }
    }

    /// Live processes started by this agent's jobs: their environment names the agent's data
    /// dir (`SORTIE_OUTPUT_DIR`), whatever they did to their command line or process group.
    pub fn job_processes(&self) -> Vec<ProcessInfo> {
        processes_with_marker(&self.job_marker())
    }

    fn job_marker(&self) -> String {
        format!("{}/jobs/", self.data_dir().display())
    }

    fn log_path(&self) -> PathBuf {
        self.scratch.path().join("agent.log")
    }

    /// The scratch dir (config, log, data).
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill_9();
        // A job whose agent was killed keeps running; nothing may outlive the test.
        kill_processes(&self.job_processes());
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!(
                "--- sortie-agent (node {}) log, last {} lines ---",
                self.node_id,
                tail.len()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Whether `line` contains every part; a part ending in a number matches only if no digit
/// follows it.
fn line_has_all(line: &str, parts: &[&str]) -> bool {
    parts.iter().all(|part| {
        let ends_in_digit = part.ends_with(|c: char| c.is_ascii_digit());
        line.match_indices(part).any(|(at, _)| {
            !ends_in_digit || !line[at + part.len()..].starts_with(|c: char| c.is_ascii_digit())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::line_has_all;

    #[test]
    fn fields_match_whole_numbers() {
        let line = "INFO job finished job_id=31 outcome=Success";
        assert!(line_has_all(line, &["job finished", "job_id=31"]));
        assert!(!line_has_all(line, &["job finished", "job_id=3"]));
        assert!(!line_has_all(line, &["job started", "job_id=31"]));
    }
}
