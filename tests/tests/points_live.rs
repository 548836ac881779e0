//! Points end to end: the demo drone's agent streams its simulated status and the demo clip;
//! the coordinator serves them over HTTP (value, Server-Sent Events, HTTP-FLV) and the broker
//! to MQTT watchers who log in with their API account.
//!
//! Embedded broker only: the watcher logins and read-only ACLs are the embedded broker's.

use std::io::Read;
use std::process::Command;
use std::time::{Duration, Instant};

use rumqttc::{Client, ConnectReturnCode, Event, MqttOptions, Packet, QoS, SubscribeReasonCode};
use serde_json::Value;
use sortie_shared::flv::{FlvItem, FlvReader, Tag, TagKind};
use sortie_tests::{node_status, wait_until, Agent, Api, Coordinator, ServeOptions};

/// Bound for anything to arrive.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The demo drone (node 1) online with its agent.
fn demo_drone() -> (Coordinator, Api, Agent) {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let agent = Agent::start(&api, 1);
    assert!(
        wait_until(TIMEOUT, || node_status(&api, 1) == "online"),
        "node 1 did not come online"
    );
    (server, api, agent)
}

/// The node's point of this type.
fn point_of_type(api: &Api, node_id: u64, type_name: &str) -> Value {
    let node = api.get(&format!("/api/v1/nodes/{node_id}")).expect(200);
    node["points"]
        .as_array()
        .expect("points")
        .iter()
        .find(|p| p["point_type_name"] == type_name)
        .unwrap_or_else(|| panic!("node {node_id} has no {type_name} point: {node}"))
        .clone()
}

/// An HTTP-FLV response being read.
struct FlvStream {
    response: reqwest::blocking::Response,
    reader: FlvReader,
    header_seen: bool,
}

impl FlvStream {
    /// Reads until `count` more tags have arrived.
    fn tags(&mut self, count: usize) -> Vec<Tag> {
        let mut out = Vec::new();
        let mut buf = [0u8; 64 * 1024];
        let deadline = Instant::now() + TIMEOUT;
        while out.len() < count && Instant::now() < deadline {
            let n = self.response.read(&mut buf).expect("reading the stream");
            assert!(n > 0, "the stream ended after {} tags", out.len());
            self.reader.push(&buf[..n]);
            while let Some(item) = self.reader.next_item() {
                match item.expect("the coordinator sends valid FLV") {
                    FlvItem::Header(header) => {
                        assert!(header.has_video, "the header announces no video");
                        self.header_seen = true;
                    }
                    FlvItem::Tag(tag) => out.push(tag),
                }
            }
        }
        assert!(self.header_seen, "no FLV header");
        out
    }
}

fn open_live(api: &Api, url: &str) -> FlvStream {
    let response = sortie_tests::http_client()
        .get(url)
        .bearer_auth(api.token().expect("a token"))
        .timeout(Duration::from_secs(120))
        .send()
        .expect("GET live.flv");
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "video/x-flv"
    );
    FlvStream {
        response,
        reader: FlvReader::new(),
        header_seen: false,
    }
}

/// A viewer's first video tags: the sequence header, then a keyframe before any other frame.
fn assert_starts_clean(tags: &[Tag]) {
    let video: Vec<&Tag> = tags.iter().filter(|t| t.kind == TagKind::Video).collect();
    assert!(
        video[0].is_video_sequence_header(),
        "the first video tag is not the AVC sequence header"
    );
    let first_frame = video
        .iter()
        .find(|t| !t.is_video_sequence_header())
        .expect("a video frame");
    assert!(
        first_frame.is_keyframe(),
        "the first frame is not a keyframe"
    );
    let first_ts = tags[0].timestamp_ms;
    assert!(
        first_ts < 1000,
        "the viewer's timeline starts at {first_ts} ms"
    );
}

#[test]
fn live_video_plays_for_viewers_who_join_late_and_slow_viewers_hold_nobody_back() {
    let (_server, api, _agent) = demo_drone();
    let camera = point_of_type(&api, 1, "livestream_flv");
    let url = camera["params"]["url"]
        .as_str()
        .unwrap_or_else(|| panic!("the camera point has no params.url: {camera}"))
        .to_owned();
    assert!(url.ends_with(&format!("/api/v1/nodes/1/points/{}/live.flv", camera["id"])));

    // The first viewer makes the device stream; it starts clean.
    let mut first = open_live(&api, &url);
    let tags = first.tags(30);
    assert_starts_clean(&tags);
    assert!(tags.iter().any(Tag::is_metadata), "no onMetaData");

    // A late joiner (the stream has run for a while) also starts on a keyframe, after the
    // sequence header, from the cached group of pictures.
    std::thread::sleep(Duration::from_millis(1500));
    let mut late = open_live(&api, &url);
    assert_starts_clean(&late.tags(30));

    // A viewer that stops reading does not hold the others back: `first` keeps getting video
    // at the source's pace while `late` reads nothing.
    let started = Instant::now();
    let more = first.tags(150);
    let span_ms = more.last().unwrap().timestamp_ms - more[0].timestamp_ms;
    assert!(
        span_ms >= 4000,
        "the reading viewer got only {span_ms} ms of video in {:?}",
        started.elapsed()
    );
    drop(late);

    // The server notices a viewer that left on its next write.
    let point_path = format!("/api/v1/nodes/1/points/{}", camera["id"]);
    assert!(
        wait_until(TIMEOUT, || api.get(&point_path).expect(200)["viewers"] == 1),
        "the viewer that left is still counted: {}",
        api.get(&point_path).text()
    );
    let point = api.get(&point_path).expect(200);
    assert_eq!(point["source"]["healthy"], true, "{point}");
}

#[test]
fn ffprobe_finds_h264_through_a_share_link_and_bad_tokens_are_refused() {
    let (server, api, _agent) = demo_drone();
    let camera = point_of_type(&api, 1, "livestream_flv");
    let share = api
        .post_json(
            &format!("/api/v1/nodes/1/points/{}/share?ttl_s=120", camera["id"]),
            &serde_json::json!({}),
        )
        .expect(201);
    let url = share["url"].as_str().expect("a share url").to_owned();
    assert!(url.contains("?token="), "{share}");

    // No header, no token: 401 with a JSON error; a forged token: 401.
    let anonymous = server.api();
    let path = format!("/api/v1/nodes/1/points/{}/live.flv", camera["id"]);
    anonymous.get(&path).expect_error(401);
    let forged = format!(
        "{path}?token=1.{}.9999999999.{}",
        camera["id"],
        "0".repeat(32)
    );
    let refused = anonymous.get(&forged).expect_error(401);
    assert!(
        refused["message"].as_str().unwrap().contains("signature"),
        "{refused}"
    );
    // The token opens this point only.
    let status = point_of_type(&api, 1, "drone-status");
    let token = url.split("token=").nth(1).unwrap();
    anonymous
        .get(&format!(
            "/api/v1/nodes/1/points/{}/events?token={token}",
            status["id"]
        ))
        .expect_error(401);

    let Some(ffprobe) = tool("ffprobe", "ffmpeg") else {
        return;
    };
    let output = Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-rw_timeout",
            "20000000",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(&url)
        .output()
        .expect("running ffprobe");
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let probe: Value = serde_json::from_slice(&output.stdout).expect("ffprobe JSON");
    let video = probe["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("no video stream: {probe}"));
    assert_eq!(video["codec_name"], "h264", "{probe}");
}

/// An external tool on the `PATH`; `None` (the check is skipped) if it is missing, unless
/// `SORTIE_REQUIRE_TOOLS` is set (as in CI), which makes a missing tool a failure.
fn tool(program: &str, package: &str) -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("SORTIE_REQUIRE_TOOLS").is_err(),
            "SORTIE_REQUIRE_TOOLS is set but {program} is not installed (apt-get install {package})"
        );
        eprintln!("skipping the {program} check: it is not installed (apt-get install {package})");
    }
    found
}

/// An MQTT watcher logged in with `user`/`password` (None: no login).
fn watcher(broker: &str, login: Option<(&str, &str)>) -> (Client, rumqttc::Connection) {
    let url = url::Url::parse(broker).expect("mqtt url");
    let mut options = MqttOptions::new(
        format!("watcher-{}", std::process::id()),
        url.host_str().unwrap(),
        url.port().unwrap(),
    );
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    Client::new(options, 16)
}

fn next_packet(connection: &mut rumqttc::Connection) -> Packet {
    let deadline = Instant::now() + TIMEOUT;
    while Instant::now() < deadline {
        match connection.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(Event::Incoming(packet))) => return packet,
            Ok(Ok(Event::Outgoing(_))) | Err(_) => {}
            Ok(Err(e)) => panic!("MQTT connection failed: {e}"),
        }
    }
    panic!("nothing arrived from the broker");
}

#[test]
fn telemetry_is_retained_for_watchers_and_streams_over_sse() {
    let (_server, api, agent) = demo_drone();
    let status = point_of_type(&api, 1, "drone-status");
    let path = format!("/api/v1/nodes/1/points/{}", status["id"]);
    assert!(
        wait_until(TIMEOUT, || !api.get(&path).expect(200)["value"].is_null()),
        "no telemetry value reached the coordinator"
    );
    let point = api.get(&path).expect(200);
    assert!(point["at"].is_string(), "{point}");
    assert!(point["value"].is_object(), "{point}");

    // A watcher logs in with the demo user's API password and gets the retained value at
    // once; it cannot subscribe to everything, nor publish.
    let broker = &agent.credentials().mqtt_url;
    let (client, mut connection) = watcher(broker, Some(("demo", "demodemo")));
    match next_packet(&mut connection) {
        Packet::ConnAck(ack) => assert_eq!(ack.code, ConnectReturnCode::Success),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    let topic = format!("nodes/1/msg/{}", status["name"].as_str().unwrap());
    client.subscribe("#", QoS::AtMostOnce).unwrap();
    client.subscribe(&topic, QoS::AtMostOnce).unwrap();
    let mut subacks = Vec::new();
    let mut retained = None;
    while subacks.len() < 2 || retained.is_none() {
        match next_packet(&mut connection) {
            Packet::SubAck(ack) => subacks.push(ack.return_codes[0]),
            Packet::Publish(publish) if publish.topic == topic && retained.is_none() => {
                assert!(publish.retain, "the first value was not the retained one");
                retained = Some(publish.payload);
            }
            _ => {}
        }
    }
    assert_eq!(
        subacks[0],
        SubscribeReasonCode::Failure,
        "`#` must be refused"
    );
    assert!(matches!(subacks[1], SubscribeReasonCode::Success(_)));
    let payload: Value = serde_json::from_slice(&retained.unwrap()).expect("JSON telemetry");
    assert!(
        payload["at"].is_string() && payload["value"].is_object(),
        "{payload}"
    );

    // The same with the stock command-line client.
    if let Some(mosquitto_sub) = tool("mosquitto_sub", "mosquitto-clients") {
        let url = url::Url::parse(broker).unwrap();
        let output = Command::new(mosquitto_sub)
            .args(["-h", url.host_str().unwrap(), "-p"])
            .arg(url.port().unwrap().to_string())
            .args([
                "-u", "demo", "-P", "demodemo", "-t", &topic, "-C", "1", "-W", "5",
            ])
            .output()
            .expect("running mosquitto_sub");
        assert!(
            output.status.success(),
            "mosquitto_sub got nothing: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let value: Value = serde_json::from_slice(&output.stdout).expect("JSON from mosquitto_sub");
        assert!(value["value"].is_object(), "{value}");
    }

    // Without a login, or with a wrong password, the broker refuses the watcher.
    for login in [None, Some(("demo", "wrong-password"))] {
        let (_client, mut connection) = watcher(broker, login);
        let refused = (0..20).any(
            |_| match connection.recv_timeout(Duration::from_millis(500)) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    ack.code != ConnectReturnCode::Success
                }
                Ok(Err(_)) => true,
                _ => false,
            },
        );
        assert!(refused, "the broker let a watcher in with {login:?}");
    }

    // Server-Sent Events: the current value at once, then the next ones.
    let mut events = sortie_tests::http_client()
        .get(api.url(&format!("{path}/events")))
        .bearer_auth(api.token().unwrap())
        .timeout(Duration::from_secs(60))
        .send()
        .expect("GET events");
    assert_eq!(events.status().as_u16(), 200);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + TIMEOUT;
    let values = |text: &str| {
        text.lines()
            .filter_map(|line| line.strip_prefix("data: "))
            .map(|data| serde_json::from_str::<Value>(data).expect("SSE data is JSON"))
            .collect::<Vec<_>>()
    };
    while values(&text).len() < 3 && Instant::now() < deadline {
        let n = events.read(&mut buf).expect("reading SSE");
        assert!(n > 0, "the event stream ended");
        text.push_str(std::str::from_utf8(&buf[..n]).unwrap());
    }
    let seen = values(&text);
    assert!(seen.len() >= 3, "{text}");
    assert!(text.contains("event: value"), "{text}");
    assert_ne!(
        seen[1]["at"], seen[2]["at"],
        "values did not change: {text}"
    );
}

#[test]
fn a_camera_that_sends_garbage_is_reported_restarted_and_the_agent_keeps_working() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let mut agent = Agent::configure(&api, 1);
    // Replace the demo clip with a "camera" that prints garbage and exits.
    let path = agent.scratch_dir().join("agent.toml");
    let mut config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let points = config["points"].as_array_mut().expect("[[points]]");
    let camera = points
        .iter_mut()
        .find(|p| p["kind"].as_str() == Some("video"))
        .expect("a video point")
        .as_table_mut()
        .unwrap();
    camera.insert("source".into(), "command".into());
    camera.insert(
        "command".into(),
        "printf 'this is not an FLV stream'".into(),
    );
    camera.insert("always_on".into(), true.into());
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    agent.spawn();

    let camera = point_of_type(&api, 1, "livestream_flv");
    let point_path = format!("/api/v1/nodes/1/points/{}", camera["id"]);
    assert!(
        wait_until(TIMEOUT, || {
            let point = api.get(&point_path).expect(200);
            point["source"]["healthy"] == false
                && point["source"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("FLV") && m.contains("restarting"))
        }),
        "the failing source was not reported: {}",
        api.get(&point_path).text()
    );
    // It is retried (the agent says so again after its backoff), and the agent still works:
    // its telemetry keeps coming and it stays online.
    agent.wait_logged(&["FLV"], TIMEOUT);
    let status = point_of_type(&api, 1, "drone-status");
    let status_path = format!("/api/v1/nodes/1/points/{}", status["id"]);
    let first = wait_value_at(&api, &status_path);
    assert!(
        wait_until(TIMEOUT, || wait_value_at(&api, &status_path) != first),
        "telemetry stopped"
    );
    assert!(agent.is_running(), "the agent died");
    assert_eq!(node_status(&api, 1), "online");
}

/// The `at` of a telemetry point's latest value, once it has one.
fn wait_value_at(api: &Api, path: &str) -> Value {
    let mut at = Value::Null;
    assert!(
        wait_until(TIMEOUT, || {
            at = api.get(path).expect(200)["at"].clone();
            !at.is_null()
        }),
        "no telemetry value at {path}"
    );
    at
}

#[test]
fn the_device_streams_only_while_someone_watches() {
    let (_server, api, agent) = demo_drone();
    let camera = point_of_type(&api, 1, "livestream_flv");
    let url = camera["params"]["url"].as_str().unwrap().to_owned();
    let mut viewer = open_live(&api, &url);
    viewer.tags(10);
    agent.wait_logged(&["video stream starting", "camera"], TIMEOUT);
    assert!(!agent.logged(&["video stream stopping"]), "{}", agent.log());
    drop(viewer);
    // The coordinator tells the device to stop 5 s after the last viewer left.
    agent.wait_logged(&["video stream stopping", "nobody watches"], TIMEOUT);
}
