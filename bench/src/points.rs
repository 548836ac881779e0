//! Points benchmarks: many HTTP-FLV viewers of one 4 Mbit/s stream, and telemetry messages per
//! second from many devices through the broker to a watcher.
//!
//! The device side is simulated in this process with real node credentials (a node created
//! through the API, its `agent-config`), so the figures are about the coordinator and the
//! broker, not about an encoder: frames are synthetic H.264-shaped FLV tags that carry their
//! send time and a frame number in their first bytes.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{json, Value};
use sortie_shared::flv::{FlvItem, FlvReader};
use sortie_shared::{seal, Envelope, MediaTag, Message, NodeKey, StreamChunk, Topic, TopicPrefix};

use crate::harness::{Fleet, Percentiles};

/// Figures of the viewers scenario.
pub struct ViewerFigures {
    /// Viewers connected.
    pub viewers: usize,
    /// Stream bitrate, Mbit/s.
    pub mbit_s: f64,
    /// Seconds measured.
    pub seconds: f64,
    /// Frames the device sent while measured.
    pub frames_sent: u64,
    /// Frames a viewer missed (gaps in frame numbers), summed over viewers.
    pub frames_missed: u64,
    /// Viewers that missed at least one frame.
    pub viewers_with_gaps: usize,
    /// Source → viewer added latency, ms, over every frame of every viewer.
    pub latency: Percentiles,
}

/// Figures of the telemetry scenario.
pub struct TelemetryFigures {
    /// Devices publishing.
    pub devices: usize,
    /// Messages published per second (all devices).
    pub published_per_s: f64,
    /// Messages a watcher subscribed to `nodes/+/msg/#` received per second.
    pub delivered_per_s: f64,
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A node created through the API, with its agent credentials.
struct Device {
    node_id: u64,
    client_id: String,
    user: String,
    password: String,
    key: NodeKey,
    prefix: TopicPrefix,
}

fn create_device(fleet: &Fleet, name: &str, points: Value) -> anyhow::Result<Device> {
    let node = fleet.post(
        "/api/v1/nodes/",
        Some(json!({"name": name, "type_name": "air", "points": points})),
    )?;
    let node_id = node["id"].as_u64().context("node id")?;
    let config: toml::Table = fleet
        .get_text(&format!("/api/v1/nodes/{node_id}/agent-config"))?
        .parse()?;
    let text = |key: &str| -> anyhow::Result<String> {
        Ok(config
            .get(key)
            .and_then(|v| v.as_str())
            .with_context(|| format!("agent-config has no {key}"))?
            .to_owned())
    };
    let url = url::Url::parse(&text("mqtt_url")?)?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Device {
        node_id,
        client_id: format!("sortie-node-{node_id}"),
        user: decode(url.username()),
        password: decode(url.password().unwrap_or_default()),
        key: NodeKey::from_hex(&text("node_key")?)?,
        prefix: TopicPrefix::new(text("mqtt_prefix")?)?,
    })
}

fn device_client(
    fleet: &Fleet,
    device: &Device,
    cap: usize,
) -> anyhow::Result<(rumqttc::Client, std::thread::JoinHandle<()>)> {
    let (host, port) = fleet.mqtt_addr.rsplit_once(':').context("broker addr")?;
    let mut options = rumqttc::MqttOptions::new(&device.client_id, host, port.parse()?);
    options
        .set_credentials(&device.user, &device.password)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut connection) = rumqttc::Client::new(options, cap);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    connection.eventloop.set_network_options(network);
    let thread = std::thread::spawn(move || {
        for event in connection.iter() {
            if event.is_err() {
                return;
            }
        }
    });
    Ok((client, thread))
}

/// A synthetic 25 fps H.264-shaped stream of `mbit_s`, one keyframe a second.
fn frame(number: u64, mbit_s: f64) -> MediaTag {
    let per_frame = (mbit_s * 1_000_000.0 / 8.0 / 25.0) as usize;
    let key = number.is_multiple_of(25);
    // Keyframes are bigger; the average stays at the bitrate.
    let size = if key {
        per_frame * 3
    } else {
        per_frame * 22 / 24
    };
    let mut data = vec![0u8; size.max(21)];
    data[0] = if key { 0x17 } else { 0x27 };
    data[1] = 1; // AVC NALU
    data[5..13].copy_from_slice(&unix_us().to_be_bytes());
    data[13..21].copy_from_slice(&number.to_be_bytes());
    MediaTag {
        kind: MediaTag::VIDEO,
        timestamp_ms: (number * 40) as u32,
        data,
    }
}

/// `viewers` HTTP-FLV viewers of one `mbit_s` stream for `seconds`.
pub fn viewers(
    fleet: &Fleet,
    viewers: usize,
    mbit_s: f64,
    seconds: u64,
) -> anyhow::Result<ViewerFigures> {
    let name = format!("bench-cam-{viewers}");
    let device = create_device(
        fleet,
        &name,
        json!([{"name": "cam", "point_type_name": "livestream_flv"}]),
    )?;
    let (client, _connection) = device_client(fleet, &device, 256)?;
    let topic = Topic::NodeStream {
        node_id: device.node_id,
        point: sortie_shared::PointName::new("cam")?,
    }
    .to_string(&device.prefix);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    // The device: always on, 25 frames a second, each frame its own chunk.
    let publisher = {
        let (stop, sent) = (Arc::clone(&stop), Arc::clone(&sent));
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut seq = unix_us() * 1000;
            let header = MediaTag {
                kind: MediaTag::VIDEO,
                timestamp_ms: 0,
                data: vec![0x17, 0, 0, 0, 0, 1, 0x42, 0, 0x1e],
            };
            let started = Instant::now();
            let mut number = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mut tags = vec![frame(number, mbit_s)];
                if number.is_multiple_of(25) {
                    tags.insert(0, header.clone());
                }
                let chunk = StreamChunk {
                    point: "cam".into(),
                    stream_id: 1,
                    has_audio: false,
                    has_video: true,
                    tags,
                };
                seq += 1;
                let envelope = Envelope::new(
                    device.node_id,
                    seq,
                    unix_us() / 1000,
                    Message::Stream(chunk),
                );
                client.publish(
                    &topic,
                    rumqttc::QoS::AtMostOnce,
                    false,
                    seal(&envelope, &topic, &device.key),
                )?;
                sent.store(number + 1, Ordering::Relaxed);
                number += 1;
                let due = started + Duration::from_millis(40 * number);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            Ok(())
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let url = format!(
        "{}/api/v1/nodes/{}/points/cam/live.flv",
        fleet.base_url, device.node_id
    );
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let missed = Arc::new(AtomicU64::new(0));
    let with_gaps = Arc::new(AtomicU64::new(0));
    let measure_from = Arc::new(Mutex::new(None::<(Instant, u64)>));
    let mut handles = Vec::new();
    for _ in 0..viewers {
        let (url, token) = (url.clone(), fleet.token().to_owned());
        let (stop, latencies, missed, with_gaps) = (
            Arc::clone(&stop),
            Arc::clone(&latencies),
            Arc::clone(&missed),
            Arc::clone(&with_gaps),
        );
        handles.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let http = reqwest::blocking::Client::builder()
                .no_proxy()
                .timeout(None)
                .build()?;
            let mut response = http
                .get(&url)
                .bearer_auth(token)
                .send()?
                .error_for_status()?;
            let mut reader = FlvReader::new();
            let mut buf = vec![0u8; 256 * 1024];
            let (mut mine, mut last, mut gaps) = (Vec::new(), None::<u64>, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let n = response.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                reader.push(&buf[..n]);
                while let Some(item) = reader.next_item() {
                    let FlvItem::Tag(tag) = item? else { continue };
                    if tag.data.len() < 21 || tag.data[1] != 1 {
                        continue;
                    }
                    let at = u64::from_be_bytes(tag.data[5..13].try_into()?);
                    let number = u64::from_be_bytes(tag.data[13..21].try_into()?);
                    if let Some(last) = last {
                        gaps += number.saturating_sub(last + 1);
                    }
                    last = Some(number);
                    mine.push((unix_us().saturating_sub(at)) as f64 / 1000.0);
                }
            }
            missed.fetch_add(gaps, Ordering::Relaxed);
            if gaps > 0 {
                with_gaps.fetch_add(1, Ordering::Relaxed);
            }
            latencies.lock().unwrap().extend(mine);
            Ok(())
        }));
    }
    // Let every viewer connect and settle, then measure.
    std::thread::sleep(Duration::from_secs(2));
    latencies.lock().unwrap().clear();
    *measure_from.lock().unwrap() = Some((Instant::now(), sent.load(Ordering::Relaxed)));
    std::thread::sleep(Duration::from_secs(seconds));
    let (from, sent_before) = measure_from.lock().unwrap().context("measured")?;
    let frames_sent = sent.load(Ordering::Relaxed) - sent_before;
    let elapsed = from.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        if let Err(e) = handle.join().expect("viewer thread") {
            eprintln!("a viewer failed: {e:#}");
        }
    }
    publisher.join().expect("publisher thread")?;
    let samples = std::mem::take(&mut *latencies.lock().unwrap());
    Ok(ViewerFigures {
        viewers,
        mbit_s,
        seconds: elapsed,
        frames_sent,
        frames_missed: missed.load(Ordering::Relaxed),
        viewers_with_gaps: with_gaps.load(Ordering::Relaxed) as usize,
        latency: Percentiles::of(samples),
    })
}

/// `devices` devices publishing telemetry at `rate` messages a second in all (retained, QoS 0,
/// as agents do) for `seconds`; one watcher subscribed to all of it counts what arrives.
pub fn telemetry(
    fleet: &Fleet,
    devices: usize,
    rate: u64,
    seconds: u64,
) -> anyhow::Result<TelemetryFigures> {
    let (watcher, rx) = crate::harness::mqtt_client(
        "bench-telemetry-watcher",
        &fleet.mqtt_addr,
        "demo",
        "demodemo",
    )?;
    watcher.subscribe("nodes/+/msg/#", rumqttc::QoS::AtMostOnce)?;
    rx.recv_timeout(Duration::from_secs(10))
        .context("no SUBACK")?;
    let received = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let counter = {
        let (received, counting) = (Arc::clone(&received), Arc::clone(&counting));
        std::thread::spawn(move || {
            while let Ok(message) = rx.recv() {
                if message.is_some() && counting.load(Ordering::Relaxed) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let mut publishers = Vec::new();
    let run = unix_us();
    for i in 0..devices {
        let device = create_device(
            fleet,
            &format!("bench-telemetry-{run}-{i}"),
            json!([{"name": "status", "point_type_name": "drone-status"}]),
        )?;
        let (client, _connection) = device_client(fleet, &device, 1024)?;
        let topic = format!("nodes/{}/msg/status", device.node_id);
        let (stop, published, counting) = (
            Arc::clone(&stop),
            Arc::clone(&published),
            Arc::clone(&counting),
        );
        publishers.push(std::thread::spawn(move || {
            let _connection = _connection;
            // Paced in 10 ms slices.
            let per_slice = (rate / devices as u64 / 100).max(1);
            let started = Instant::now();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if n.is_multiple_of(per_slice) {
                    let due = started + Duration::from_millis(10 * (n / per_slice));
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                let payload = format!(
                    r#"{{"at":"2026-01-01T00:00:00Z","value":{{"battery_percent":{},"seq":{n}}}}}"#,
                    n % 100
                );
                if client
                    .publish(&topic, rumqttc::QoS::AtMostOnce, true, payload)
                    .is_err()
                {
                    return;
                }
                n += 1;
                if counting.load(Ordering::Relaxed) {
                    published.fetch_add(1, Ordering::Relaxed);
                }
            }
            let _ = client.disconnect();
        }));
    }
    std::thread::sleep(Duration::from_secs(2));
    counting.store(true, Ordering::Relaxed);
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    counting.store(false, Ordering::Relaxed);
    let elapsed = from.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for publisher in publishers {
        let _ = publisher.join();
    }
    let _ = watcher.disconnect();
    drop(counter);
    Ok(TelemetryFigures {
        devices,
        published_per_s: published.load(Ordering::Relaxed) as f64 / elapsed,
        delivered_per_s: received.load(Ordering::Relaxed) as f64 / elapsed,
    })
}
