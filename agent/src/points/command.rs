//! A point's `command` source: `/bin/sh -c COMMAND` as the leader of its own process group,
//! stdin from `/dev/null`, stdout read by the point, stderr logged (bounded), and the whole
//! group killed when the point stops or the value is dropped.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, ChildStdout};
use tokio::time::Instant;

use crate::process::{signal_group, Exit};

/// Longest stderr line logged; the rest is cut.
const MAX_STDERR_LINE: usize = 1024;
/// Stderr lines logged per [`STDERR_WINDOW`]; the others are counted and summarized.
const STDERR_LINES_PER_WINDOW: u32 = 20;
const STDERR_WINDOW: Duration = Duration::from_secs(10);
/// How long a stopped source may take to exit after SIGTERM before its group is SIGKILLed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// A running command source.
#[derive(Debug)]
pub struct CommandProcess {
    child: Child,
    pgid: i32,
}

impl CommandProcess {
    /// Starts `command` for `point` in `work_dir` with `env` added (and the agent's own
    /// `SORTIE_AGENT_*` variables removed); returns it and its stdout.
    pub fn spawn(
        point: &str,
        command: &str,
        work_dir: &Path,
        env: &[(String, String)],
    ) -> std::io::Result<(CommandProcess, ChildStdout)> {
        let mut shell = tokio::process::Command::new("/bin/sh");
        shell
            .arg("-c")
            .arg(command)
            .current_dir(work_dir)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        crate::process::scrub_agent_env(&mut shell);
        let mut child = shell.spawn()?;
        let pgid = child.id().map_or(0, |id| id as i32);
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("the source's stdout is not piped"))?;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(log_stderr(point.to_owned(), stderr));
        }
        Ok((CommandProcess { child, pgid }, stdout))
    }

    /// Waits for the shell to exit.
    pub async fn wait(&mut self) -> std::io::Result<Exit> {
        let status = self.child.wait().await?;
        // What it left behind in its group goes too: nothing runs unsupervised.
        signal_group(self.pgid, Signal::SIGKILL);
        Ok(exit_of(status))
    }

    /// Stops the whole group: SIGTERM, SIGKILL after a short grace.
    pub async fn stop(&mut self) {
        signal_group(self.pgid, Signal::SIGTERM);
        if tokio::time::timeout(STOP_GRACE, self.child.wait())
            .await
            .is_err()
        {
            tracing::debug!(pgid = self.pgid, "point source ignored SIGTERM");
        }
        signal_group(self.pgid, Signal::SIGKILL);
        let _ = self.child.wait().await;
    }
}

impl Drop for CommandProcess {
    fn drop(&mut self) {
        // The point's task was cancelled or panicked: never leave the camera running.
        if matches!(self.child.try_wait(), Ok(None)) {
            signal_group(self.pgid, Signal::SIGKILL);
        }
    }
}

/// How an exit reads in a health message.
pub fn describe_exit(exit: &std::io::Result<Exit>) -> String {
    match exit {
        Ok(Exit::Code(code)) => format!("exited with code {code}"),
        Ok(Exit::Signal(signal)) => format!("killed by signal {signal}"),
        Err(e) => format!("could not be waited for: {e}"),
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

/// Logs the source's stderr at warn, at most [`STDERR_LINES_PER_WINDOW`] lines per window: a
/// chatty ffmpeg must not fill the device's disk with logs.
async fn log_stderr(point: String, stderr: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stderr);
    let mut buffer = Vec::new();
    let mut window_start = Instant::now();
    let mut logged = 0u32;
    let mut suppressed = 0u32;
    loop {
        buffer.clear();
        match lines.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        if window_start.elapsed() >= STDERR_WINDOW {
            if suppressed > 0 {
                tracing::warn!(%point, suppressed, "point source: stderr lines not logged");
            }
            window_start = Instant::now();
            logged = 0;
            suppressed = 0;
        }
        if logged >= STDERR_LINES_PER_WINDOW {
            suppressed += 1;
            continue;
        }
        logged += 1;
        buffer.truncate(MAX_STDERR_LINE);
        let text = String::from_utf8_lossy(&buffer);
        let text = text.trim_end();
        if !text.is_empty() {
            tracing::warn!(%point, stderr = %text, "point source");
        }
    }
    if suppressed > 0 {
        tracing::warn!(%point, suppressed, "point source: stderr lines not logged");
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn runs_in_its_own_group_and_stop_kills_the_group() {
        let dir = std::env::temp_dir();
        let (mut process, mut stdout) = CommandProcess::spawn(
            "test",
            "(trap '' TERM; sleep 600) & echo $SORTIE_POINT; sleep 600",
            &dir,
            &[("SORTIE_POINT".into(), "cam".into())],
        )
        .unwrap();
        let mut first = [0u8; 4];
        stdout.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"cam\n");
        let pgid = process.pgid;
        assert!(crate::process::group_alive(pgid));
        process.stop().await;
        crate::testing::eventually("the group to be gone", || async {
            (!crate::testing::group_has_live_process(pgid)).then_some(())
        })
        .await;
    }

    #[tokio::test]
    async fn exits_are_described() {
        let dir = std::env::temp_dir();
        let (mut process, _stdout) = CommandProcess::spawn("t", "exit 3", &dir, &[]).unwrap();
        assert_eq!(describe_exit(&process.wait().await), "exited with code 3");
    }
}
