//! Running a job's process: its own process group, stdout and stderr as lines, and a stop that
//! reaches every process the job started.
//!
//! Design: the job runs as the leader of a new process group, so a cancel signals the whole
//! group (`killpg`) — a shell script's children die with it. SIGTERM first, so the job can land
//! the drone or close the door; SIGKILL after the grace period for whatever is left.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A line of output, without its newline. Invalid UTF-8 is replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// Where it came from.
    pub stream: Stream,
    /// The text.
    pub text: String,
}

/// How a job's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this code.
    Code(i32),
    /// Killed by this signal number.
    Signal(i32),
}

/// A running job process.
#[derive(Debug)]
pub struct JobProcess {
    child: Child,
    pgid: i32,
}

/// Longest line kept; longer lines are cut (the rest is dropped, with a marker).
const MAX_LINE: usize = 16 * 1024;

impl JobProcess {
    /// Starts `program` with `args` in `work_dir` as the leader of a new process group, with
    /// `env` added to the environment and the agent's own `SORTIE_AGENT_*` variables removed
    /// (they may hold its secrets). Each line of stdout and stderr goes to `lines`.
    pub fn spawn(
        program: &Path,
        args: &[String],
        work_dir: &Path,
        env: &[(String, String)],
        lines: mpsc::Sender<OutputLine>,
    ) -> std::io::Result<JobProcess> {
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(work_dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        scrub_agent_env(&mut command);
        let mut child = command.spawn()?;
        let pid = child.id().expect("a just-spawned child has a pid") as i32;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward_lines(stdout, Stream::Stdout, lines.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_lines(stderr, Stream::Stderr, lines));
        }
        Ok(JobProcess { child, pgid: pid })
    }

    /// The process group id (the leader's pid).
    pub fn pgid(&self) -> i32 {
        self.pgid
    }

    /// Waits for the leader to exit.
    pub async fn wait(&mut self) -> std::io::Result<Exit> {
        let status = self.child.wait().await?;
        Ok(exit_of(status))
    }

    /// Stops the whole group: SIGTERM, then SIGKILL after `grace` if the leader is still alive.
    /// Returns how the leader ended.
    pub async fn stop(&mut self, grace: Duration) -> std::io::Result<Exit> {
        signal_group(self.pgid, Signal::SIGTERM);
        let exit = match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(status) => exit_of(status?),
            Err(_) => {
                signal_group(self.pgid, Signal::SIGKILL);
                exit_of(self.child.wait().await?)
            }
        };
        // Children that ignored SIGTERM outlive a leader that obeyed it.
        signal_group(self.pgid, Signal::SIGKILL);
        Ok(exit)
    }
}

/// Removes the agent's own `SORTIE_AGENT_*` variables (its configuration, secrets included)
/// from a child's environment.
pub fn scrub_agent_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SORTIE_AGENT_") {
            command.env_remove(key);
        }
    }
}

fn exit_of(status: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Exit::Code(code),
        (None, Some(signal)) => Exit::Signal(signal),
        (None, None) => Exit::Code(-1),
    }
}

/// Sends `signal` to process group `pgid`, ignoring a group that is already gone.
pub fn signal_group(pgid: i32, signal: Signal) {
    if pgid <= 1 {
        return; // Never signal init's group or "every process".
    }
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(e) => tracing::warn!(pgid, ?signal, error = %e, "signalling a job's process group"),
    }
}

/// True while any process of group `pgid` is alive.
pub fn group_alive(pgid: i32) -> bool {
    pgid > 1 && killpg(Pid::from_raw(pgid), None).is_ok()
}

async fn forward_lines<R: tokio::io::AsyncRead + Unpin>(
    reader: R,
    stream: Stream,
    lines: mpsc::Sender<OutputLine>,
) {
    let mut reader = BufReader::new(reader);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        match reader.read_until(b'\n', &mut buffer).await {
            Ok(0) => return,
            Ok(_) => {
                while buffer.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buffer.pop();
                }
                let mut text = String::from_utf8_lossy(&buffer).into_owned();
                if text.len() > MAX_LINE {
                    let mut cut = MAX_LINE;
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    text.push_str(" [line cut]");
                }
                if lines.send(OutputLine { stream, text }).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(?stream, error = %e, "reading job output");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, lines: mpsc::Sender<OutputLine>) -> JobProcess {
        let dir = std::env::temp_dir();
        JobProcess::spawn(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &dir,
            &[("GREETING".into(), "hi".into())],
            lines,
        )
        .unwrap()
    }

    #[tokio::test]
    async fn lines_arrive_in_order_with_their_stream() {
        let (tx, mut rx) = mpsc::channel(16);
        let mut process = sh("echo $GREETING; echo oops >&2; echo two; exit 3", tx);
        assert_eq!(process.wait().await.unwrap(), Exit::Code(3));
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        while let Some(line) = rx.recv().await {
            match line.stream {
                Stream::Stdout => stdout.push(line.text),
                Stream::Stderr => stderr.push(line.text),
            }
        }
        assert_eq!(stdout, ["hi", "two"]);
        assert_eq!(stderr, ["oops"]);
    }

    #[tokio::test]
    async fn stop_kills_the_whole_group() {
        let (tx, mut rx) = mpsc::channel(16);
        // A child that ignores SIGTERM, in the background, plus a foreground sleep.
        let mut process = sh("(trap '' TERM; sleep 600) & echo started; sleep 600", tx);
        assert_eq!(rx.recv().await.unwrap().text, "started");
        let pgid = process.pgid();
        assert!(group_alive(pgid));
        let exit = process.stop(Duration::from_millis(300)).await.unwrap();
        assert!(matches!(exit, Exit::Signal(_)), "{exit:?}");
        for _ in 0..100 {
            if !group_alive(pgid) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("process group {pgid} survived the stop");
    }
}
