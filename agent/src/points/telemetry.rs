//! Telemetry points: JSON samples from the hardware layer or from a command, published by the
//! agent itself on the public, retained `nodes/{id}/msg/{point}` (QoS 0), so a new watcher sees
//! the latest value at once.
//!
//! ```text
//!  hal:     every 1/rate_hz ─▶ drone_status() / depot_status() ─┐
//!  command: sh -c … stdout ─▶ one JSON value per line ───────────┴▶ {"at":…,"value":…} ─▶ link Up? publish : skip
//! ```
//!
//! While the link is down samples are skipped: the retained value is replaced by the next
//! sample after reconnecting, and old samples are worth nothing.

use std::time::Duration;

use rumqttc::QoS;
use serde_json::Value;
use sortie_shared::{JsonPayload, TelemetryPayload, Topic, TopicPrefix};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::command::{describe_exit, CommandProcess};
use super::health::HealthReporter;
use super::PointDeps;
use crate::config::{PointConfig, Reading, TelemetrySource};
use crate::link::LinkState;

/// Longest line a telemetry command may print; longer ones are skipped.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// Publishes one point's samples through whatever connection the link has.
#[derive(Debug, Clone)]
pub struct TelemetryPublisher {
    topic: String,
    link: watch::Receiver<LinkState>,
}

impl TelemetryPublisher {
    /// For `point` of `node_id`.
    pub fn new(node_id: u64, point: &PointConfig, link: watch::Receiver<LinkState>) -> Self {
        let topic = Topic::NodeTelemetry {
            node_id,
            point: point.name.clone(),
        }
        .to_string(&TopicPrefix::default());
        TelemetryPublisher { topic, link }
    }

    /// Publishes `value` sampled now; false if it was skipped (link down or its queue full).
    pub fn publish(&self, value: Value) -> bool {
        let LinkState::Up { client, .. } = &*self.link.borrow() else {
            return false;
        };
        let payload = TelemetryPayload {
            at: chrono::Utc::now(),
            value,
        };
        // Never wait for the link: a sample that cannot go now is replaced by the next one.
        match client.try_publish(&self.topic, QoS::AtMostOnce, true, payload.to_json()) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(topic = %self.topic, error = %e, "telemetry sample skipped");
                false
            }
        }
    }
}

/// Runs a telemetry point until `stop`.
pub async fn run_telemetry(
    point: PointConfig,
    source: TelemetrySource,
    deps: PointDeps,
    stop: CancellationToken,
) {
    let publisher = TelemetryPublisher::new(deps.node_id, &point, deps.link.clone());
    let health = HealthReporter::new(point.name.as_str(), deps.journal.clone());
    match source {
        TelemetrySource::Hal { reading, rate_hz } => {
            run_hal(reading, rate_hz, &deps, publisher, health, stop).await
        }
        TelemetrySource::Command(command) => {
            run_command(
                point.name.as_str(),
                &command,
                &deps,
                publisher,
                health,
                stop,
            )
            .await
        }
    }
}

async fn run_hal(
    reading: Reading,
    rate_hz: f64,
    deps: &PointDeps,
    publisher: TelemetryPublisher,
    mut health: HealthReporter,
    stop: CancellationToken,
) {
    let Some(hardware) = deps.hardware.clone() else {
        // The configuration check makes this unreachable; say so rather than panic.
        health
            .unhealthy("no hardware layer is configured ([hal])", None)
            .await;
        return;
    };
    let period = Duration::from_secs_f64(1.0 / rate_hz);
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticker.tick() => {}
        }
        match hardware.reading(reading).await {
            Ok(value) => {
                health.healthy().await;
                publisher.publish(value);
            }
            Err(e) => {
                health
                    .unhealthy(&format!("reading {}: {e}", reading.as_str()), None)
                    .await
            }
        }
    }
}

/// A line of a telemetry command's output as a sample.
pub fn parse_line(line: &str) -> Result<Value, String> {
    serde_json::from_str(line).map_err(|e| e.to_string())
}

async fn run_command(
    point: &str,
    command: &str,
    deps: &PointDeps,
    publisher: TelemetryPublisher,
    mut health: HealthReporter,
    stop: CancellationToken,
) {
    let mut backoff = Backoff::new(deps.restart);
    let env = deps.source_env(point);
    loop {
        let run = async {
            let (mut process, stdout) =
                match CommandProcess::spawn(point, command, &deps.data_dir, &env) {
                    Ok(started) => started,
                    Err(e) => return (format!("could not start: {e}"), Duration::ZERO),
                };
            let outcome = read_samples(stdout, &publisher, &mut health).await;
            let exit = process.wait().await;
            let mut reason = describe_exit(&exit);
            if let (None, Some(error)) = (outcome.healthy_since, &outcome.last_error) {
                reason.push_str(&format!("; printed no valid JSON line (last: {error})"));
            }
            (
                reason,
                outcome
                    .healthy_since
                    .map_or(Duration::ZERO, |t| t.elapsed()),
            )
        };
        // Cancelling drops the running process, whose Drop kills its group.
        let (reason, healthy_for) = tokio::select! {
            _ = stop.cancelled() => return,
            ended = run => ended,
        };
        let delay = backoff.failed(healthy_for);
        health.unhealthy(&reason, Some(delay)).await;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}

/// What one run of a telemetry command printed.
#[derive(Debug, Default)]
struct Samples {
    healthy_since: Option<Instant>,
    last_error: Option<String>,
}

/// Reads lines until the command closes its stdout; publishes each valid one.
async fn read_samples(
    stdout: impl AsyncRead + Unpin,
    publisher: &TelemetryPublisher,
    health: &mut HealthReporter,
) -> Samples {
    let mut reader = BufReader::new(stdout);
    let mut samples = Samples::default();
    let mut line_no = 0u64;
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let line = match read_bounded_line(&mut reader, &mut buffer).await {
            Ok(Some(line)) => line,
            Ok(None) => return samples,
            Err(e) => {
                samples.last_error = Some(format!("reading stdout: {e}"));
                return samples;
            }
        };
        line_no += 1;
        let parsed = match line {
            Line::TooLong => Err(format!("longer than {MAX_LINE_BYTES} bytes")),
            Line::Text(text) if text.trim().is_empty() => continue,
            Line::Text(text) => parse_line(text.trim()),
        };
        match parsed {
            Ok(value) => {
                if samples.healthy_since.is_none() {
                    samples.healthy_since = Some(Instant::now());
                    health.healthy().await;
                }
                publisher.publish(value);
            }
            Err(error) => {
                let error = format!("line {line_no}: {error}");
                tracing::warn!(point = %health.point(), %error, "telemetry line is not JSON; skipped");
                if samples.healthy_since.is_none() && samples.last_error.is_none() {
                    // Nothing valid yet: that is a failing source, even if it keeps running.
                    health
                        .unhealthy(&format!("printed no valid JSON line ({error})"), None)
                        .await;
                }
                samples.last_error = Some(error);
            }
        }
    }
}

enum Line<'a> {
    Text(std::borrow::Cow<'a, str>),
    TooLong,
}

/// Reads one line of at most [`MAX_LINE_BYTES`] (the rest of a longer one is discarded);
/// `None` at the end.
async fn read_bounded_line<'a, R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    buffer: &'a mut Vec<u8>,
) -> std::io::Result<Option<Line<'a>>> {
    let mut too_long = false;
    let mut read_any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if !read_any {
                return Ok(None);
            }
            break;
        }
        read_any = true;
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(at) => (&available[..at], true),
            None => (available, false),
        };
        let consumed = chunk.len() + usize::from(done);
        if !too_long {
            if buffer.len() + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                buffer.clear();
            } else {
                buffer.extend_from_slice(chunk);
            }
        }
        reader.consume(consumed);
        if done {
            break;
        }
    }
    if too_long {
        return Ok(Some(Line::TooLong));
    }
    if buffer.last() == Some(&b'\r') {
        buffer.pop();
    }
    Ok(Some(Line::Text(String::from_utf8_lossy(buffer))))
}
