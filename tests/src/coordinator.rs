//! Starting, stopping and killing `sortie-coordinator` processes, and its admin subcommands.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;

use crate::broker::{BrokerKind, Mosquitto};
use crate::{demo_token, wait_until, Api};

/// A free loopback port, chosen by the kernel.
const ANY_PORT: &str = "127.0.0.1:0";
/// How long a server may take to print its `listening on` line.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after SIGTERM (its drain grace is 10 s).
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// How long an admin subcommand may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The `sortie-coordinator` binary next to the running test executable.
///
/// # Panics
/// If it has not been built.
pub fn coordinator_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SORTIE_COORDINATOR_BIN") {
        return PathBuf::from(path);
    }
    let bin = sibling_binary("sortie-coordinator");
    assert!(
        bin.is_file(),
        "{} does not exist: run `cargo build --workspace` (or `cargo build -p sortie-coordinator`) first",
        bin.display()
    );
    bin
}

/// `target/<profile>/<name>` for the profile of the running test executable.
pub(crate) fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable has a path");
    // target/<profile>/deps/<test>-<hash> → target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| {
            if deps.ends_with("deps") {
                deps.parent()
            } else {
                Some(deps)
            }
        })
        .expect("the test executable lives in target/<profile>/deps");
    profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// How to start a server. Build with the methods; `ServeOptions::default()` is a plain server.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Pass `--demo` (seed the demo user, client and nodes).
    pub demo: bool,
    /// `--max-upload`, e.g. `"1MiB"`.
    pub max_upload: Option<String>,
    /// `--token-ttl` in seconds.
    pub token_ttl: Option<u64>,
    /// Serve this data dir instead of a fresh one inside the server's scratch dir.
    pub data_dir: Option<PathBuf>,
    /// The MQTT broker: the embedded one on a free port (the default), or a private Mosquitto
    /// that the [`Coordinator`] starts, owns and passes as `--mqtt-url`.
    pub broker: BrokerKind,
    /// Keep the HTTP and embedded-broker ports across [`Coordinator::restart`], as a real
    /// deployment does: running agents hold those addresses.
    pub keep_ports: bool,
    /// More arguments for `serve`.
    pub extra_args: Vec<String>,
}

impl ServeOptions {
    /// A server seeded with the demo fleet.
    pub fn demo() -> Self {
        ServeOptions {
            demo: true,
            ..Self::default()
        }
    }

    /// A server for the relay tests: the demo fleet, ports kept across restarts, and the
    /// broker `SORTIE_TEST_BROKER` asks for ([`BrokerKind::from_env`]).
    pub fn relay() -> Self {
        ServeOptions {
            demo: true,
            keep_ports: true,
            broker: BrokerKind::from_env(),
            ..Self::default()
        }
    }

    /// Uses a private Mosquitto instead of the embedded broker, whatever the environment says.
    pub fn mosquitto(mut self) -> Self {
        self.broker = BrokerKind::Mosquitto;
        self
    }

    /// Adds an argument for `serve`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.extra_args.push(arg.to_owned());
        self
    }

    /// Sets `--max-upload`.
    pub fn max_upload(mut self, size: &str) -> Self {
        self.max_upload = Some(size.to_owned());
        self
    }

    /// Sets `--token-ttl`.
    pub fn token_ttl(mut self, secs: u64) -> Self {
        self.token_ttl = Some(secs);
        self
    }

    /// Serves an existing data dir (prepared with [`admin`], or kept across servers).
    pub fn data_dir(mut self, dir: &Path) -> Self {
        self.data_dir = Some(dir.to_owned());
        self
    }
}

/// A running (or stopped) `sortie-coordinator serve` process.
///
/// Owns a scratch dir holding the server's stderr (`stderr.log`) and, unless a data dir was
/// given, its data dir (`work/data`). The server runs with the scratch dir's `work/` as its
/// working directory, so anything it might write by a relative path stays inside the scratch
/// dir. Dropping the value kills the process (and its Mosquitto, if it has one) and, if the
/// test is panicking, prints the log.
pub struct Coordinator {
    child: Child,
    options: ServeOptions,
    scratch: TempDir,
    data_dir: PathBuf,
    base_url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    mosquitto: Option<Mosquitto>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("pid", &self.child.id())
            .field("base_url", &self.base_url)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

impl Coordinator {
    /// Starts a server on `127.0.0.1:0` and waits (bounded) until it prints where it listens.
    ///
    /// # Panics
    /// If the binary is missing, or the server exits or stays silent for 20 s; the panic
    /// message carries the server's stderr.
    pub fn start(options: ServeOptions) -> Coordinator {
        let scratch = tempfile::Builder::new()
            .prefix("sortie-e2e-")
            .tempdir()
            .expect("creating a scratch dir");
        let work = scratch.path().join("work");
        std::fs::create_dir_all(&work).expect("creating the server's working dir");
        let data_dir = options
            .data_dir
            .clone()
            .unwrap_or_else(|| work.join("data"));
        let mosquitto = (options.broker == BrokerKind::Mosquitto).then(Mosquitto::start);
        Self::spawn(options, scratch, data_dir, mosquitto, ANY_PORT, ANY_PORT)
    }

    fn spawn(
        options: ServeOptions,
        scratch: TempDir,
        data_dir: PathBuf,
        mosquitto: Option<Mosquitto>,
        listen: &str,
        mqtt_listen: &str,
    ) -> Coordinator {
        let log_path = scratch.path().join("stderr.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("opening the server log");
        let mut command = Command::new(coordinator_bin());
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["serve", "--listen", listen])
            .current_dir(scratch.path().join("work"))
            .env_remove("SORTIE_CONFIG")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        match &mosquitto {
            Some(broker) => command.args(["--mqtt-url", &broker.url()]),
            None => command.args(["--mqtt-listen", mqtt_listen]),
        };
        if options.demo {
            command.arg("--demo");
        }
        command.args(&options.extra_args);
        if let Some(size) = &options.max_upload {
            command.args(["--max-upload", size]);
        }
        if let Some(ttl) = options.token_ttl {
            command.args(["--token-ttl", &ttl.to_string()]);
        }
        let mut child = command.spawn().expect("spawning sortie-coordinator");

        // One thread reads stdout for the process's whole life: it hands over the `listening on`
        // line, then keeps the rest (the demo walkthrough) so the pipe never fills up.
        let stdout = child.stdout.take().expect("stdout is piped");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (found, listening) = mpsc::channel();
        {
            let lines = Arc::clone(&lines);
            std::thread::Builder::new()
                .name("coordinator-stdout".into())
                .spawn(move || {
                    for line in BufReader::new(stdout).lines() {
                        let Ok(line) = line else { break };
                        if let Some(url) = line.strip_prefix("listening on ") {
                            let _ = found.send(url.trim().to_owned());
                        }
                        lines.lock().unwrap().push(line);
                    }
                })
                .expect("spawning the stdout reader");
        }
        let base_url = match listening.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "sortie-coordinator did not print `listening on` within {STARTUP_TIMEOUT:?} (exit: {status:?}); stderr:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
        };
        Coordinator {
            child,
            options,
            scratch,
            data_dir,
            base_url,
            stdout: lines,
            mosquitto,
        }
    }

    /// The API's base URL, e.g. `http://127.0.0.1:41234/gosd`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// An HTTP client for this server, without a token.
    pub fn api(&self) -> Api {
        Api::new(&self.base_url)
    }

    /// An HTTP client for this server with a token of the demo user.
    pub fn demo_api(&self) -> Api {
        Api::new(&self.base_url).with_token(&demo_token(&self.base_url))
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The data dir the server uses.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The scratch dir (holds `stderr.log` and the server's working dir `work/`).
    pub fn scratch_dir(&self) -> &Path {
        self.scratch.path()
    }

    /// What the server has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.scratch.path().join("stderr.log")).unwrap_or_default()
    }

    /// What the server has written to stdout so far, one entry per line.
    pub fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Where the embedded MQTT broker listens (`host:port`), as the server printed it at start.
    pub fn mqtt_addr(&self) -> Option<String> {
        self.stdout_lines()
            .iter()
            .find_map(|line| line.strip_prefix("mqtt broker on "))
            .map(|addr| addr.trim().to_owned())
    }

    /// The private Mosquitto this server uses, if it has one ([`ServeOptions::mosquitto`]).
    pub fn mosquitto(&mut self) -> Option<&mut Mosquitto> {
        self.mosquitto.as_mut()
    }

    /// The API's `host:port`.
    pub fn http_addr(&self) -> &str {
        let rest = self
            .base_url
            .strip_prefix("http://")
            .unwrap_or(&self.base_url);
        rest.split('/').next().unwrap_or(rest)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills the process with SIGKILL (`kill -9`): no flush, no shutdown.
    pub fn kill_9(&mut self) {
        let _ = self.child.kill();
        self.child.wait().expect("waiting for the killed server");
    }

    /// Asks the process to stop with SIGTERM and waits (bounded) for it to exit.
    ///
    /// # Panics
    /// If it is still running after 20 s (it is then killed).
    pub fn stop(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.child.try_wait() {
            return status;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {} failed", self.child.id());
        let mut status = None;
        let exited = wait_until(SHUTDOWN_TIMEOUT, || {
            status = self.child.try_wait().expect("polling the server");
            status.is_some()
        });
        if !exited {
            self.kill_9();
            panic!(
                "the server did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                self.stderr()
            );
        }
        status.expect("exited")
    }

    /// Stops the process if it still runs (SIGTERM), then starts a new one with the same
    /// options on the same data dir (and the same Mosquitto, if it has one). The new server
    /// listens on new ports, unless [`ServeOptions::keep_ports`] is set. Call [`stop`] or
    /// [`kill_9`] first to check how the old one ended.
    ///
    /// [`stop`]: Coordinator::stop
    /// [`kill_9`]: Coordinator::kill_9
    pub fn restart(mut self) -> Coordinator {
        self.stop();
        let (listen, mqtt_listen) = if self.options.keep_ports {
            let mqtt = self.mqtt_addr().unwrap_or_else(|| ANY_PORT.to_owned());
            (self.http_addr().to_owned(), mqtt)
        } else {
            (ANY_PORT.to_owned(), ANY_PORT.to_owned())
        };
        // Move the parts out; `self` is then dropped with nothing left to kill.
        let options = self.options.clone();
        let data_dir = self.data_dir.clone();
        let placeholder = tempfile::tempdir().expect("creating a placeholder dir");
        let scratch = std::mem::replace(&mut self.scratch, placeholder);
        let mosquitto = self.mosquitto.take();
        drop(self);
        Self::spawn(options, scratch, data_dir, mosquitto, &listen, &mqtt_listen)
    }
}

impl Drop for Coordinator {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            let log = self.stderr();
            // Polling GETs would drown what happened.
            let tail: Vec<&str> = log
                .lines()
                .rev()
                .filter(|line| !line.contains("api: request method=GET"))
                .take(80)
                .collect();
            eprintln!(
                "--- sortie-coordinator stderr ({}), last {} lines but GET requests ---",
                self.base_url,
                tail.len()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Runs an admin subcommand, e.g. `admin(dir, &["user", "add", "bob", "--password-stdin"],
/// Some("secretpw\n"))`, on `data_dir`, feeding `stdin` if given. Bounded to 30 s.
pub fn admin(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(coordinator_bin())
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("SORTIE_CONFIG")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sortie-coordinator");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(text) = stdin {
        // The command may exit without reading; a broken pipe is its answer, not ours.
        let _ = input.write_all(text.as_bytes());
    }
    drop(input);
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match output.recv_timeout(ADMIN_TIMEOUT) {
        Ok(output) => output.expect("running an admin command"),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!(
                "`sortie-coordinator {}` did not finish within {ADMIN_TIMEOUT:?}",
                args.join(" ")
            );
        }
    }
}
