//! The point tasks against a real journal, real source processes and a captured MQTT client
//! (every publish lands in a channel the test reads).

use std::path::Path;
use std::time::Duration;

use rumqttc::{AsyncClient, Publish, QoS, Request};
use serde_json::json;
use sortie_shared::{
    open, Event, JsonPayload, Message, NodeKey, PointName, StreamChunk, TelemetryPayload,
    TopicPrefix,
};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::telemetry::{parse_line, run_telemetry};
use super::video::{run_video, VideoControl};
use super::*;
use crate::config::{PointConfig, PointSpec, Reading, TelemetrySource, VideoSource};
use crate::journal::Journal;
use crate::testing::eventually;

const KEY: [u8; 32] = [7; 32];

/// A link that is up, through a client whose publishes the test reads.
fn captured_link() -> (
    watch::Sender<LinkState>,
    watch::Receiver<LinkState>,
    flume::Receiver<Request>,
) {
    let (link_tx, link_rx, requests) = {
        let (tx, rx) = flume::unbounded();
        let (link_tx, link_rx) = watch::channel(LinkState::Up {
            generation: 1,
            client: AsyncClient::from_senders(tx),
        });
        (link_tx, link_rx, rx)
    };
    (link_tx, link_rx, requests)
}

fn deps(dir: &Path, link: watch::Receiver<LinkState>) -> PointDeps {
    PointDeps {
        node_id: 1,
        link,
        journal: Journal::open(&dir.join("journal"), 1).unwrap(),
        hardware: None,
        streams: StreamSender::new(1, NodeKey::from_bytes(KEY), TopicPrefix::default()),
        data_dir: dir.to_owned(),
        hal_socket: None,
        restart: RestartPolicy {
            first: Duration::from_millis(20),
            max: Duration::from_millis(80),
            healthy_after: Duration::from_secs(30),
        },
    }
}

fn point(name: &str, spec: PointSpec) -> PointConfig {
    PointConfig {
        name: PointName::new(name).unwrap(),
        spec,
    }
}

/// The point's health events so far: (healthy, message).
async fn health(journal: &Journal) -> Vec<(bool, String)> {
    journal
        .outbox_after(None, 10_000)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, event)| match event {
            Event::PointHealth {
                healthy, message, ..
            } => Some((healthy, message)),
            _ => None,
        })
        .collect()
}

async fn health_until(
    journal: &Journal,
    done: impl Fn(&[(bool, String)]) -> bool,
) -> Vec<(bool, String)> {
    eventually("point health events", || async {
        let events = health(journal).await;
        done(&events).then_some(events)
    })
    .await
}

fn publishes(requests: &flume::Receiver<Request>) -> Vec<Publish> {
    requests
        .try_iter()
        .filter_map(|r| match r {
            Request::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

#[test]
fn telemetry_lines_are_json_values() {
    assert_eq!(parse_line(r#"{"a":1}"#).unwrap(), json!({"a": 1}));
    assert_eq!(parse_line("42").unwrap(), json!(42));
    assert_eq!(parse_line("\"text\"").unwrap(), json!("text"));
    let err = parse_line("nope").unwrap_err();
    assert!(err.contains("expected"), "{err}");
    assert!(parse_line(r#"{"a":1} {"b":2}"#).is_err());
}

#[tokio::test]
async fn a_telemetry_command_is_published_retained_and_restarted_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx, requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let source = TelemetrySource::Command(
        r#"echo '{"a":1}'; echo 'not json'; printf '\r\n{"b":[2]}\r\n'; exit 1"#.into(),
    );
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_telemetry(
        point("wx", PointSpec::Telemetry(source.clone())),
        source,
        deps.clone(),
        stop.clone(),
    ));
    let events = health_until(&deps.journal, |events| {
        events.iter().filter(|(healthy, _)| !healthy).count() >= 3
    })
    .await;
    stop.cancel();
    task.await.unwrap();

    // Each run produced data (healthy), then exited (unhealthy): one event per transition,
    // the invalid line logged but not counted against a source that printed valid ones.
    for (i, (healthy, message)) in events.iter().take(6).enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                (*healthy, message.as_str()),
                (true, "started"),
                "{events:?}"
            );
        } else {
            assert!(!healthy, "{events:?}");
            assert!(
                message.starts_with("exited with code 1; restarting in ")
                    && message.ends_with(" ms"),
                "{events:?}"
            );
        }
    }
    let published = publishes(&requests);
    assert!(published.len() >= 6, "{published:?}");
    for p in &published {
        assert_eq!(
            (p.topic.as_str(), p.qos, p.retain),
            ("nodes/1/msg/wx", QoS::AtMostOnce, true)
        );
    }
    let values: Vec<serde_json::Value> = published
        .iter()
        .map(|p| TelemetryPayload::from_json(&p.payload).unwrap().value)
        .collect();
    assert_eq!(values[..2], [json!({"a": 1}), json!({"b": [2]})]);
}

#[tokio::test]
async fn a_telemetry_command_that_prints_no_json_is_unhealthy_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx, requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let source = TelemetrySource::Command("echo nope; echo still nope; sleep 30".into());
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_telemetry(
        point("wx", PointSpec::Telemetry(source.clone())),
        source,
        deps.clone(),
        stop.clone(),
    ));
    let events = health_until(&deps.journal, |events| !events.is_empty()).await;
    assert_eq!(events.len(), 1);
    assert!(!events[0].0);
    assert!(
        events[0]
            .1
            .starts_with("printed no valid JSON line (line 1: expected ident"),
        "{events:?}"
    );
    stop.cancel();
    task.await.unwrap();
    assert!(publishes(&requests).is_empty());
}

#[tokio::test]
async fn a_telemetry_point_skips_samples_while_the_link_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let (link_tx, link_rx) = crate::testing::link_down();
    let deps = deps(dir.path(), link_rx);
    let source = TelemetrySource::Command("echo 1; echo 2; sleep 30".into());
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_telemetry(
        point("wx", PointSpec::Telemetry(source.clone())),
        source,
        deps.clone(),
        stop.clone(),
    ));
    // The source is healthy; its samples just have nowhere to go (and are not queued).
    let events = health_until(&deps.journal, |events| !events.is_empty()).await;
    assert_eq!(events, [(true, "started".to_owned())]);
    stop.cancel();
    task.await.unwrap();
    drop(link_tx);
}

#[tokio::test]
async fn a_hal_telemetry_point_publishes_the_drone_status() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx, requests) = captured_link();
    let mut deps = deps(dir.path(), link_rx);
    let hal = sortie_hal::HalConfig::example_sim_drone();
    let hardware = sortie_hal::Hardware::open_sim_manual(&hal).unwrap();
    deps.hardware = Some(crate::hardware::HardwareHandle::spawn(hardware).unwrap());
    let source = TelemetrySource::Hal {
        reading: Reading::DroneStatus,
        rate_hz: 50.0,
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(run_telemetry(
        point("status", PointSpec::Telemetry(source.clone())),
        source,
        deps.clone(),
        stop.clone(),
    ));
    let published = eventually("two samples", || async {
        let mut seen = Vec::new();
        while let Ok(Request::Publish(p)) = requests.try_recv() {
            seen.push(p);
        }
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    let sample = TelemetryPayload::from_json(&published[0].payload).unwrap();
    assert_eq!(published[0].topic, "nodes/1/msg/status");
    assert_eq!(sample.value["battery_percent"], json!(100.0));
    assert_eq!(sample.value["state"], json!("landed"));
    assert_eq!(health(&deps.journal).await, [(true, "started".to_owned())]);
}

fn open_chunk(p: &Publish) -> (u64, StreamChunk) {
    assert_eq!(p.topic, "sortie/v1/nodes/1/live/camera");
    assert_eq!((p.qos, p.retain), (QoS::AtMostOnce, false));
    let envelope = open(&p.payload, &p.topic, &NodeKey::from_bytes(KEY)).unwrap();
    match envelope.body {
        Message::Stream(chunk) => (envelope.seq, chunk),
        other => panic!("not a chunk: {other:?}"),
    }
}

/// Receives chunks until one has a tag at or after `ts` ms.
async fn chunks_until(requests: &flume::Receiver<Request>, ts: u32) -> Vec<(u64, StreamChunk)> {
    let mut got = Vec::new();
    loop {
        let request = tokio::time::timeout(Duration::from_secs(60), requests.recv_async())
            .await
            .expect("a chunk within a minute")
            .unwrap();
        let Request::Publish(p) = request else {
            continue;
        };
        let (seq, chunk) = open_chunk(&p);
        let last = chunk.tags.last().map_or(0, |t| t.timestamp_ms);
        got.push((seq, chunk));
        if last >= ts {
            return got;
        }
    }
}

/// Waits (in paused time) until no chunk comes for 5 s; returns those that came.
async fn chunks_until_quiet(requests: &flume::Receiver<Request>) -> Vec<(u64, StreamChunk)> {
    let mut got = Vec::new();
    while let Ok(Ok(Request::Publish(p))) =
        tokio::time::timeout(Duration::from_secs(5), requests.recv_async()).await
    {
        got.push(open_chunk(&p));
    }
    got
}

/// An H.264 keyframe (not a sequence header, which has the keyframe type too).
fn key(tag: &sortie_shared::MediaTag) -> bool {
    tag.is_keyframe() && tag.data.get(1) == Some(&1)
}

fn tags(chunks: &[(u64, StreamChunk)]) -> Vec<&sortie_shared::MediaTag> {
    chunks.iter().flat_map(|(_, c)| &c.tags).collect()
}

fn start_video(
    deps: &PointDeps,
    source: VideoSource,
    always_on: bool,
) -> (
    mpsc::Sender<VideoControl>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (control, control_rx) = mpsc::channel(8);
    let stop = CancellationToken::new();
    let spec = PointSpec::Video {
        source: source.clone(),
        always_on,
    };
    let task = tokio::spawn(run_video(
        point("camera", spec),
        source,
        always_on,
        deps.clone(),
        control_rx,
        stop.clone(),
    ));
    (control, stop, task)
}

#[tokio::test(start_paused = true)]
async fn the_demo_clip_streams_while_leased_with_its_headers_first_and_keyframes_marked() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx, requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let (control, stop, task) = start_video(&deps, VideoSource::Demo, false);

    // Nobody watches: nothing is sent.
    assert!(chunks_until_quiet(&requests).await.is_empty());

    let started = Instant::now();
    control
        .send(VideoControl::Start { lease_s: 2 })
        .await
        .unwrap();
    let mut first = chunks_until(&requests, 1500).await;
    // A renewal at 1.5 s holds the stream to 3.5 s.
    control
        .send(VideoControl::Start { lease_s: 2 })
        .await
        .unwrap();
    first.extend(chunks_until_quiet(&requests).await);
    let expired_after = started.elapsed();

    let all = tags(&first);
    assert!(
        all[0].kind == sortie_shared::MediaTag::SCRIPT,
        "onMetaData first"
    );
    assert!(all[0].data.starts_with(b"\x02\x00\x0aonMetaData"));
    assert_eq!(
        (all[1].kind, all[1].data[..2].to_vec()),
        (9, vec![0x17, 0]),
        "AVC sequence header second"
    );
    assert!(key(all[2]));
    let keyframes: Vec<u32> = all
        .iter()
        .filter(|t| key(t))
        .map(|t| t.timestamp_ms)
        .collect();
    assert_eq!(keyframes, [0, 1000, 2000, 3000]);
    let last = all.last().unwrap().timestamp_ms;
    assert!((3400..3500).contains(&last), "streamed until {last} ms");
    assert!(
        expired_after >= Duration::from_millis(3500) && expired_after < Duration::from_secs(9),
        "{expired_after:?}"
    );
    // One stream: one id, the header's flags, strictly increasing seqs, whole tags.
    let stream_id = first[0].1.stream_id;
    assert!(first.iter().all(|(_, c)| c.stream_id == stream_id
        && c.has_video
        && !c.has_audio
        && c.point == "camera"));
    assert!(first.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(all
        .windows(2)
        .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));

    // Watched again: a new stream id, starting with the headers again; StreamStop ends it.
    control
        .send(VideoControl::Start { lease_s: 30 })
        .await
        .unwrap();
    let second = chunks_until(&requests, 500).await;
    control.send(VideoControl::Stop).await.unwrap();
    let rest = chunks_until_quiet(&requests).await;
    assert!(
        rest.len() < 5,
        "stopped at once: {} more chunks",
        rest.len()
    );
    assert_ne!(second[0].1.stream_id, stream_id);
    assert!(second[0].0 > first.last().unwrap().0);
    let again = tags(&second);
    assert!(again[0].data.starts_with(b"\x02\x00\x0aonMetaData"));
    assert_eq!(again[1].data[..2], [0x17, 0]);
    assert!(key(again[2]) && again[2].timestamp_ms == 0);

    stop.cancel();
    task.await.unwrap();
    assert_eq!(health(&deps.journal).await, [(true, "started".to_owned())]);
}

#[tokio::test(start_paused = true)]
async fn video_resumes_at_a_keyframe_after_the_link_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let (link_tx, link_rx, requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let (_control, stop, task) = start_video(&deps, VideoSource::Demo, true);
    chunks_until(&requests, 400).await;
    let client = match &*link_tx.borrow() {
        LinkState::Up { client, .. } => client.clone(),
        LinkState::Down { .. } => unreachable!(),
    };
    link_tx.send_replace(LinkState::Down {
        since: Instant::now(),
    });
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let _ = publishes(&requests);
    link_tx.send_replace(LinkState::Up {
        generation: 2,
        client,
    });
    let after = chunks_until(&requests, 3000).await;
    let first = after[0].1.tags[0].clone();
    assert!(key(&first), "resumed with {first:?}");
    assert_eq!(first.timestamp_ms, 2000);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn malformed_flv_from_a_command_is_reported_and_the_source_restarted() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx, requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let (_control, stop, task) = start_video(
        &deps,
        VideoSource::Command("printf 'garbage garbage'; sleep 30".into()),
        true,
    );
    let events = health_until(&deps.journal, |e| !e.is_empty()).await;
    assert!(!events[0].0);
    assert!(
        events[0].1.starts_with(
            "malformed FLV at byte 0: not an FLV stream: signature [67, 61, 72] at byte 0, expected \"FLV\"; restarting in "
        ),
        "{events:?}"
    );
    // The same failure on the next attempts is not reported again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(health(&deps.journal).await.len(), 1);
    stop.cancel();
    task.await.unwrap();
    assert!(publishes(&requests).is_empty());
}

#[tokio::test]
async fn a_command_that_exits_with_too_little_flv_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx, _requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let (_control, stop, task) =
        start_video(&deps, VideoSource::Command("printf garbage".into()), true);
    let events = health_until(&deps.journal, |e| !e.is_empty()).await;
    assert!(
        events[0].1.starts_with(
            "exited with code 0; malformed FLV at byte 7: stream ends at byte 7 in the middle of the file header; restarting in "
        ),
        "{events:?}"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn a_command_video_source_streams_its_flv() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.flv");
    std::fs::write(&clip, clip::DEMO_CLIP).unwrap();
    let (_link, link_rx, requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let command = format!("cat {}; sleep 30", clip.display());
    let (_control, stop, task) = start_video(&deps, VideoSource::Command(command), true);
    let got = chunks_until(&requests, 9960).await;
    stop.cancel();
    task.await.unwrap();
    let all = tags(&got);
    assert!(all[0].data.starts_with(b"\x02\x00\x0aonMetaData"));
    assert_eq!(all.iter().filter(|t| key(t)).count(), 10);
    // Chunks are packed up to the size bound when the source is faster than real time.
    assert!(
        got.len() < all.len(),
        "{} chunks for {} tags",
        got.len(),
        all.len()
    );
    assert_eq!(health(&deps.journal).await, [(true, "started".to_owned())]);
}

#[tokio::test]
async fn stream_requests_reach_only_video_points() {
    let dir = tempfile::tempdir().unwrap();
    let (_link, link_rx, _requests) = captured_link();
    let deps = deps(dir.path(), link_rx);
    let tracker = tokio_util::task::TaskTracker::new();
    let stop = CancellationToken::new();
    let points = spawn_points(
        &[
            point(
                "camera",
                PointSpec::Video {
                    source: VideoSource::Demo,
                    always_on: false,
                },
            ),
            point(
                "wx",
                PointSpec::Telemetry(TelemetrySource::Command("sleep 30".into())),
            ),
        ],
        &deps,
        &tracker,
        &stop,
    );
    points.stream_start("wx", 30);
    points.stream_start("nope", 30);
    points.stream_stop("camera");
    stop.cancel();
    tracker.close();
    tracker.wait().await;
}
