//! `sortie-bench`: starts the real coordinator (embedded broker) and one agent on loopback,
//! then measures, in the same run:
//!
//! - the raw MQTT publish → subscribe round trip through the coordinator's broker (QoS 1),
//! - dispatch latency: `POST .../jobs/` sent → the job's process started (the agent's
//!   `started_at`, same machine clock),
//! - cancel latency: `POST .../cancel` sent → the job seen `cancelled` through the API (the agent
//!   reports it only after the process group is gone).
//!
//! Build everything first: `cargo build --release --workspace`, then
//! `target/release/sortie-bench --jobs 1000 [--json out.json]`.

mod harness;
mod points;

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use serde_json::json;

use harness::{Fleet, Percentiles};

/// Measures dispatch and cancel latency against the raw MQTT round trip.
#[derive(Debug, Parser)]
#[command(name = "sortie-bench", version, about)]
struct Cli {
    /// Jobs per scenario (dispatch, cancel), and MQTT round trips.
    #[arg(long, default_value_t = 1000)]
    jobs: usize,
    /// Also write the figures as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Which scenarios: `latency` (MQTT, dispatch, cancel), `points` (viewers, telemetry), `all`.
    #[arg(long, default_value = "all", value_parser = ["latency", "points", "all"])]
    only: String,
    /// HTTP-FLV viewers of one stream.
    #[arg(long, default_value_t = 200)]
    viewers: usize,
    /// The stream's bitrate, Mbit/s.
    #[arg(long, default_value_t = 4.0)]
    mbit: f64,
    /// Devices publishing telemetry.
    #[arg(long, default_value_t = 10)]
    telemetry_devices: usize,
    /// Telemetry messages a second, all devices together.
    #[arg(long, default_value_t = 100_000)]
    telemetry_rate: u64,
    /// Seconds each points scenario is measured.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let fleet = Fleet::start().context("starting the coordinator and the agent")?;
    eprintln!(
        "coordinator {} · broker {} · agent online",
        fleet.base_url, fleet.mqtt_addr
    );

    let mut figures = serde_json::Map::new();
    if cli.only != "points" {
        figures.extend(latency_scenarios(&fleet, &cli)?);
    }
    if cli.only != "latency" {
        figures.extend(points_scenarios(&fleet, &cli)?);
    }
    if let Some(path) = &cli.json {
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)?;
    }
    Ok(())
}

fn points_scenarios(
    fleet: &Fleet,
    cli: &Cli,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let video = points::viewers(fleet, cli.viewers, cli.mbit, cli.seconds)?;
    let telemetry = points::telemetry(
        fleet,
        cli.telemetry_devices,
        cli.telemetry_rate,
        cli.seconds,
    )?;
    println!();
    println!(
        "livestream: {} viewers of a {:.1} Mbit/s stream for {:.1} s: {} frames sent; {} frames missed by {} viewers",
        video.viewers, video.mbit_s, video.seconds, video.frames_sent, video.frames_missed, video.viewers_with_gaps
    );
    println!(
        "livestream added latency source → viewer (ms): p50 {:.2}  p99 {:.2}  p999 {:.2}  max {:.2}  (target p99 < 100 with ≥ 200 viewers, none missing frames)",
        video.latency.p50, video.latency.p99, video.latency.p999, video.latency.max
    );
    println!(
        "telemetry: {} devices published {:.0} msg/s; a watcher of nodes/+/msg/# received {:.0} msg/s (target ≥ 100k/s)",
        telemetry.devices, telemetry.published_per_s, telemetry.delivered_per_s
    );
    let mut out = serde_json::Map::new();
    out.insert(
        "livestream".into(),
        json!({
            "viewers": video.viewers,
            "mbit_s": video.mbit_s,
            "seconds": video.seconds,
            "frames_sent": video.frames_sent,
            "frames_missed": video.frames_missed,
            "viewers_with_gaps": video.viewers_with_gaps,
            "added_latency_ms": video.latency.to_json(),
        }),
    );
    out.insert(
        "telemetry".into(),
        json!({
            "devices": telemetry.devices,
            "published_per_s": telemetry.published_per_s,
            "delivered_per_s": telemetry.delivered_per_s,
        }),
    );
    Ok(out)
}

fn latency_scenarios(
    fleet: &Fleet,
    cli: &Cli,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mqtt = harness::mqtt_round_trips(fleet, cli.jobs)?;
    let dispatch = dispatch_latency(fleet, cli.jobs)?;
    let cancel = cancel_latency(fleet, cli.jobs)?;

    println!();
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "figure (ms)", "p50", "p99", "p999", "max", "n"
    );
    for (name, p) in [
        ("raw MQTT round trip (QoS 1)", &mqtt),
        ("dispatch: POST job → started", &dispatch),
        ("cancel: POST cancel → cancelled", &cancel),
    ] {
        println!(
            "{:<34} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7}",
            name, p.p50, p.p99, p.p999, p.max, p.n
        );
    }
    println!();
    println!(
        "dispatch p99 / raw MQTT p99 = {:.2}  (target ≤ 3, and dispatch p99 < 10 ms)",
        dispatch.p99 / mqtt.p99
    );
    println!("cancel p99 = {:.2} ms  (target < 20 ms)", cancel.p99);
    let figures = json!({
        "jobs": cli.jobs,
        "mqtt_round_trip_ms": mqtt.to_json(),
        "dispatch_ms": dispatch.to_json(),
        "cancel_ms": cancel.to_json(),
        "dispatch_p99_over_mqtt_p99": dispatch.p99 / mqtt.p99,
    });
    Ok(figures.as_object().cloned().unwrap_or_default())
}

/// POST a job of a plan whose script exits at once; latency = the agent's `started_at` minus
/// the time the request was sent.
fn dispatch_latency(fleet: &Fleet, jobs: usize) -> anyhow::Result<Percentiles> {
    let plan = fleet.plan("dispatch", b"#!/bin/sh\nexit 0\n", &[])?;
    let mut samples = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let sent = harness::unix_ms_f64();
        let job = fleet.post(&format!("/api/v2/plans/{plan}/jobs/"), None)?;
        let seq = job["job_id"].as_u64().context("job_id")?;
        let done = fleet.wait_status(plan, seq, &["success"], Duration::from_secs(10))?;
        let started =
            harness::parse_rfc3339_ms(done["started_at"].as_str().context("started_at")?)?;
        samples.push(started - sent);
        progress("dispatch", i, jobs);
    }
    Ok(Percentiles::of(samples))
}

/// Start a long job, wait until it runs, POST cancel; latency = until the API shows it
/// `cancelled` (recorded only after the agent saw the process group gone).
fn cancel_latency(fleet: &Fleet, jobs: usize) -> anyhow::Result<Percentiles> {
    let plan = fleet.plan("cancel", b"#!/bin/sh\nexec sleep 600\n", &[])?;
    let mut samples = Vec::with_capacity(jobs);
    for i in 0..jobs {
        let job = fleet.post(&format!("/api/v2/plans/{plan}/jobs/"), None)?;
        let seq = job["job_id"].as_u64().context("job_id")?;
        fleet.wait_status(plan, seq, &["running"], Duration::from_secs(10))?;
        let sent = Instant::now();
        let answer = fleet.post(&format!("/api/v2/plans/{plan}/jobs/{seq}/cancel"), None)?;
        let state = answer["status"].as_str().unwrap_or_default().to_owned();
        if state != "cancelled" {
            fleet.wait_status_fast(plan, seq, "cancelled", Duration::from_secs(10))?;
        }
        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
        progress("cancel", i, jobs);
    }
    Ok(Percentiles::of(samples))
}

fn progress(what: &str, i: usize, total: usize) {
    if (i + 1).is_multiple_of(200) || i + 1 == total {
        eprintln!("{what}: {}/{total}", i + 1);
    }
}
