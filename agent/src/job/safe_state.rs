//! The safe state: hardware steps (`safe_state`, on the agent's hardware thread) and then a
//! shell command (`safe_state_command`), run before the agent stops a job, so hardware the job
//! drives is left safe (motors off, door closed) before the job's processes die. Every line
//! they report goes into the job's log with the `safe-state:` prefix.

use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::hardware::HardwareHandle;
use crate::process::signal_group;

/// Prefix of every log line about the safe-state command.
pub const PREFIX: &str = "safe-state:";

/// Runs the hardware `steps` (stopping at the first that fails) for at most `limit`; returns
/// the lines to log: one per step and how they ended.
pub async fn run_steps(
    hardware: &HardwareHandle,
    steps: &[sortie_hal::Step],
    limit: Duration,
) -> Vec<String> {
    let started = Instant::now();
    let outcome = hardware.run_steps(steps, limit).await;
    let mut lines: Vec<String> = outcome
        .lines
        .iter()
        .map(|line| format!("{PREFIX} {line}"))
        .collect();
    let how = if outcome.ok { "done" } else { "FAILED" };
    lines.push(format!(
        "{PREFIX} steps {how} after {} ms",
        started.elapsed().as_millis()
    ));
    lines
}

/// Runs `command` with `/bin/sh -c` for at most `limit`; returns the lines to log (its output
/// and how it ended), without the `[sortie]` marker.
pub async fn run_safe_state(command: &str, limit: Duration) -> Vec<String> {
    let started = Instant::now();
    let mut shell = tokio::process::Command::new("/bin/sh");
    shell
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    crate::process::scrub_agent_env(&mut shell);
    let child = match shell.spawn() {
        Ok(child) => child,
        Err(e) => return vec![format!("{PREFIX} could not start: {e}")],
    };
    let pgid = child.id().map(|id| id as i32);
    let mut lines = Vec::new();
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(output)) => {
            for text in [&output.stdout, &output.stderr] {
                lines.extend(
                    String::from_utf8_lossy(text)
                        .lines()
                        .map(|line| format!("{PREFIX} {line}")),
                );
            }
            let status = match output.status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_owned(),
            };
            lines.push(format!(
                "{PREFIX} {status} after {} ms",
                started.elapsed().as_millis()
            ));
        }
        Ok(Err(e)) => lines.push(format!("{PREFIX} failed: {e}")),
        Err(_) => {
            if let Some(pgid) = pgid {
                signal_group(pgid, Signal::SIGKILL);
            }
            lines.push(format!(
                "{PREFIX} still running after {} s; killed",
                limit.as_secs()
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_output_and_status() {
        let lines = run_safe_state(
            "echo motors off; echo warn >&2; exit 4",
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(lines[0], "safe-state: motors off");
        assert_eq!(lines[1], "safe-state: warn");
        assert!(
            lines[2].starts_with("safe-state: exit code 4 after "),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn is_bounded_in_time() {
        let lines = run_safe_state("sleep 30", Duration::from_millis(200)).await;
        assert_eq!(lines, ["safe-state: still running after 0 s; killed"]);
    }
}
