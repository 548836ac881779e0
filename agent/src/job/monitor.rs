//! Watching a running job: its output, its exit, and the reasons to stop it early.
//!
//! ```text
//!  select: output line → batch │ 50 ms tick → flush │ exit → done
//!          cancel / agent stop │ timeout │ link down for abort_on_link_loss_s
//!              └─▶ stop: "[sortie] stopping", safe-state command, SIGTERM, SIGKILL after grace
//!                  (output keeps flowing into the log meanwhile)
//! ```
//!
//! Once the leader has exited, whatever is left of its process group is killed: a job is over
//! when its main process is, and nothing may keep running unsupervised.

use std::time::Duration;

use nix::sys::signal::Signal;
use sortie_shared::LogStream;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::logs::JobLog;
use super::{safe_state, JobContext, StopReason, SAFE_STATE_TIMEOUT};
use crate::link::LinkState;
use crate::process::{signal_group, Exit, JobProcess, OutputLine, Stream};

/// How often batched output is sent.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How long output is still read after the process group is gone.
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// The job's limits.
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    /// Stop as `Timeout` after running this long.
    pub timeout: Option<Duration>,
    /// Stop when the broker has been unreachable this long.
    pub link_loss: Option<Duration>,
}

/// How the process ended.
pub(super) struct ProcessEnd {
    /// Its exit, or why it could not be waited for.
    pub exit: std::io::Result<Exit>,
    /// Why the agent stopped it, if it did.
    pub stop: Option<StopReason>,
}

/// Waits until a stop is requested, and returns its reason. Never returns if the supervisor
/// went away without asking (it then waits for the job).
pub(super) async fn stop_requested(stop: &mut watch::Receiver<Option<StopReason>>) -> StopReason {
    let reason = match stop.wait_for(Option::is_some).await {
        Ok(reason) => reason.clone(),
        Err(_) => None,
    };
    match reason {
        Some(reason) => reason,
        None => std::future::pending().await,
    }
}

/// Runs the job's process to its end.
pub(super) async fn watch_process(
    ctx: &JobContext,
    mut process: JobProcess,
    mut lines: mpsc::Receiver<OutputLine>,
    agent_lines: mpsc::Sender<OutputLine>,
    log: &mut JobLog,
    stop: &mut watch::Receiver<Option<StopReason>>,
    limits: Limits,
) -> ProcessEnd {
    let started = Instant::now();
    let far = started + Duration::from_secs(100 * 365 * 24 * 3600);
    let timeout_at = limits.timeout.map(|t| started + t);
    let mut link = ctx.link.clone();
    let mut link_open = true;
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    flush.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut lines_open = true;
    let reason = loop {
        let link_deadline = limits.link_loss.and_then(|limit| match &*link.borrow() {
            LinkState::Down { since } => Some((*since).max(started) + limit),
            LinkState::Up { .. } => None,
        });
        tokio::select! {
            biased;
            line = lines.recv(), if lines_open => match line {
                Some(line) => log.line(stream_of(line.stream), line.text).await,
                None => lines_open = false,
            },
            exit = process.wait() => {
                drop(agent_lines);
                let pgid = process.pgid();
                signal_group(pgid, Signal::SIGKILL);
                drain(&mut lines, log).await;
                return ProcessEnd { exit, stop: None };
            }
            reason = stop_requested(stop) => break reason,
            _ = tokio::time::sleep_until(timeout_at.unwrap_or(far)), if timeout_at.is_some() => {
                break StopReason::Timeout(limits.timeout.unwrap_or_default());
            }
            _ = tokio::time::sleep_until(link_deadline.unwrap_or(far)), if link_deadline.is_some() => {
                break StopReason::LinkLost(limits.link_loss.unwrap_or_default());
            }
            changed = link.changed(), if link_open => link_open = changed.is_ok(),
            _ = flush.tick() => log.flush().await,
        }
    };
    // Stop it, while its output keeps flowing into the log.
    let exit = {
        let stopping = stop_process(ctx, &mut process, &reason, agent_lines);
        tokio::pin!(stopping);
        loop {
            tokio::select! {
                exit = &mut stopping => break exit,
                line = lines.recv(), if lines_open => match line {
                    Some(line) => log.line(stream_of(line.stream), line.text).await,
                    None => lines_open = false,
                },
                _ = flush.tick() => log.flush().await,
            }
        }
    };
    drain(&mut lines, log).await;
    ProcessEnd {
        exit,
        stop: Some(reason),
    }
}

/// The cancel path: say why, run the safe-state steps and command, then SIGTERM and, after the grace
/// period, SIGKILL the whole group. Its log lines go through `notes` so they interleave with
/// the job's own output in order.
async fn stop_process(
    ctx: &JobContext,
    process: &mut JobProcess,
    reason: &StopReason,
    notes: mpsc::Sender<OutputLine>,
) -> std::io::Result<Exit> {
    let note = |text: String| {
        let notes = notes.clone();
        async move {
            let line = OutputLine {
                stream: Stream::Stderr,
                text: format!("[sortie] {text}"),
            };
            let _ = notes.send(line).await;
        }
    };
    let begun = Instant::now();
    let (_, why) = reason.outcome();
    note(format!("stopping the job: {why}")).await;
    tracing::info!(reason = %why, "stopping the job");
    if let (Some(hardware), false) = (&ctx.hardware, ctx.safe_state.is_empty()) {
        for line in safe_state::run_steps(hardware, &ctx.safe_state, SAFE_STATE_TIMEOUT).await {
            note(line).await;
        }
    }
    if let Some(command) = &ctx.safe_state_command {
        for line in safe_state::run_safe_state(command, SAFE_STATE_TIMEOUT).await {
            note(line).await;
        }
    }
    let term_sent = Instant::now();
    let exit = process.stop(ctx.kill_grace).await;
    let ended = term_sent.elapsed();
    let how = match &exit {
        Ok(Exit::Code(code)) => format!("exit code {code}"),
        Ok(Exit::Signal(signal)) => format!("signal {signal}"),
        Err(e) => format!("unknown ({e})"),
    };
    let killed = if ended >= ctx.kill_grace {
        ", SIGKILL sent after the grace period"
    } else {
        ""
    };
    note(format!(
        "stopped: safe-state {} ms, process group ended {} ms after SIGTERM ({how}{killed}), {} ms in all",
        term_sent.duration_since(begun).as_millis(),
        ended.as_millis(),
        begun.elapsed().as_millis(),
    ))
    .await;
    exit
}

/// Reads what is left of the output once the process group is gone, for a bounded time (a
/// process that left the group could hold the pipes open forever).
async fn drain(lines: &mut mpsc::Receiver<OutputLine>, log: &mut JobLog) {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, lines.recv()).await {
            Ok(Some(line)) => log.line(stream_of(line.stream), line.text).await,
            Ok(None) => return,
            Err(_) => {
                log.note("output still open after the job ended; not reading it further")
                    .await;
                return;
            }
        }
    }
}

fn stream_of(stream: Stream) -> LogStream {
    match stream {
        Stream::Stdout => LogStream::Stdout,
        Stream::Stderr => LogStream::Stderr,
    }
}
