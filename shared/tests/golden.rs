//! Golden wire bytes: one sealed envelope per message variant, committed as hex under
//! `tests/fixtures/`. Any change to the wire format (field order, a variant index, the
//! version, the tag construction) fails here loudly.
//!
//! If the change is intended (and append-only, or with a new `PROTOCOL_VERSION`), regenerate:
//!
//! ```sh
//! SORTIE_BLESS=1 cargo test -p sortie-shared --test golden
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::{env, fs};

use sortie_shared::{
    open, seal, CancelRequest, Command, Envelope, Event, JobDispatch, JobRef, LogLine, LogStream,
    MediaTag, Message, NodeKey, Outcome, PlanFile, PointName, StreamChunk, Topic, TopicPrefix,
};

const NODE: u64 = 7;
const SENT_AT_MS: u64 = 1_700_000_000_000;
const JOB: JobRef = JobRef {
    id: 1001,
    plan_id: 12,
    job_seq: 3,
};

/// Bytes 0x00..=0x1f.
fn key() -> NodeKey {
    NodeKey::from_bytes(std::array::from_fn(|i| i as u8))
}

struct Case {
    name: &'static str,
    topic: String,
    envelope: Envelope,
}

fn case(name: &'static str, seq: u64, body: impl Into<Message>) -> Case {
    let body = body.into();
    let topic = match body {
        Message::Command(_) => Topic::NodeCommands { node_id: NODE },
        Message::Event(_) => Topic::NodeEvents { node_id: NODE },
        Message::Stream(ref chunk) => Topic::NodeStream {
            node_id: NODE,
            point: PointName::new(chunk.point.clone()).unwrap(),
        },
    };
    Case {
        name,
        topic: topic.to_string(&TopicPrefix::default()),
        envelope: Envelope::new(NODE, seq, SENT_AT_MS, body),
    }
}

fn cases() -> Vec<Case> {
    let dispatch = JobDispatch {
        job: JOB,
        files: vec![
            PlanFile {
                role: "script".into(),
                blob_id: 55,
                name: "survey.py".into(),
                size: 2048,
                sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(),
            },
            PlanFile {
                role: "mission".into(),
                blob_id: 56,
                name: "area.geojson".into(),
                size: 300,
                sha256: "60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752".into(),
            },
        ],
        extra: BTreeMap::from([
            ("altitude".into(), "120".into()),
            ("camera".into(), "rgb".into()),
        ]),
        timeout_s: Some(600),
        abort_on_link_loss_s: None,
    };
    vec![
        case("command_dispatch", 42, Command::Dispatch(dispatch)),
        case(
            "command_cancel",
            43,
            Command::Cancel(CancelRequest {
                job: JOB,
                reason: "cancelled by alice".into(),
            }),
        ),
        case("command_ping", 44, Command::Ping { nonce: 0xdead_beef }),
        case(
            "command_ack",
            45,
            Command::Ack {
                seq: 1_700_000_000_000_123,
            },
        ),
        case("event_accepted", 100, Event::Accepted { job: JOB }),
        case(
            "event_started",
            101,
            Event::Started {
                job: JOB,
                pid: 4242,
                started_at_ms: SENT_AT_MS - 5,
            },
        ),
        case(
            "event_log_batch",
            102,
            Event::LogBatch {
                job: JOB,
                first_line: 0,
                lines: vec![
                    LogLine {
                        stream: LogStream::Stdout,
                        at_ms: SENT_AT_MS - 4,
                        text: "taking off".into(),
                    },
                    LogLine {
                        stream: LogStream::Stderr,
                        at_ms: SENT_AT_MS - 3,
                        text: "wind 12 m/s".into(),
                    },
                ],
            },
        ),
        case(
            "event_progress",
            103,
            Event::Progress {
                job: JOB,
                percent: 50,
                message: "half the area covered".into(),
            },
        ),
        case(
            "event_output",
            104,
            Event::Output {
                job: JOB,
                role: "photos".into(),
                blob_id: 77,
            },
        ),
        case(
            "event_finished",
            105,
            Event::Finished {
                job: JOB,
                outcome: Outcome::Failure,
                exit_code: Some(3),
                reason: Some("exit code 3".into()),
                finished_at_ms: SENT_AT_MS - 1,
            },
        ),
        case(
            "event_heartbeat",
            106,
            Event::Heartbeat {
                uptime_s: 3600,
                running_jobs: vec![JOB],
                agent_version: "0.1.0".into(),
            },
        ),
        case("event_pong", 107, Event::Pong { nonce: 0xdead_beef }),
        case(
            "command_stream_start",
            46,
            Command::StreamStart {
                point: "camera".into(),
                lease_s: 30,
            },
        ),
        case(
            "command_stream_stop",
            47,
            Command::StreamStop {
                point: "camera".into(),
            },
        ),
        case(
            "event_point_health",
            108,
            Event::PointHealth {
                point: "camera".into(),
                healthy: false,
                message: "exited with code 1; restarting in 2 s".into(),
                at_ms: SENT_AT_MS - 2,
            },
        ),
        case(
            "stream_chunk",
            1_700_000_000_000_000,
            Message::Stream(StreamChunk {
                point: "camera".into(),
                stream_id: 99,
                has_audio: false,
                has_video: true,
                tags: vec![MediaTag {
                    kind: MediaTag::VIDEO,
                    timestamp_ms: 1000,
                    data: vec![0x17, 0x01, 0x00, 0x00, 0x00, 0xab, 0xcd],
                }],
            }),
        ),
    ]
}

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn render(case: &Case, bytes: &[u8]) -> String {
    let mut out = format!(
        "# Golden envelope `{}`: {:?}\n# topic: {}\n# key:   {}\n\
         # Regenerate: SORTIE_BLESS=1 cargo test -p sortie-shared --test golden\n",
        case.name,
        case.envelope.body,
        case.topic,
        key().to_hex(),
    );
    for chunk in bytes.chunks(32) {
        out.push_str(&hex::encode(chunk));
        out.push('\n');
    }
    out
}

fn parse(text: &str) -> Vec<u8> {
    let digits: String = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    hex::decode(digits).expect("fixture is hex")
}

#[test]
fn sealed_envelopes_match_the_golden_fixtures() {
    let bless = env::var("SORTIE_BLESS").is_ok_and(|v| v == "1");
    let mut failures = Vec::new();
    for case in cases() {
        let sealed = seal(&case.envelope, &case.topic, &key());
        let path = fixtures_dir().join(format!("{}.hex", case.name));
        if bless {
            fs::create_dir_all(fixtures_dir()).unwrap();
            fs::write(&path, render(&case, &sealed)).unwrap();
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else {
            failures.push(format!("{}: missing fixture {}", case.name, path.display()));
            continue;
        };
        let golden = parse(&text);
        if golden != sealed {
            failures.push(format!(
                "{}: encoding changed\n  golden: {}\n  now:    {}",
                case.name,
                hex::encode(&golden),
                hex::encode(&sealed)
            ));
        }
        // Committed bytes must still open to the same envelope (decoding is compatible).
        match open(&golden, &case.topic, &key()) {
            Ok(opened) if opened == case.envelope => {}
            Ok(opened) => failures.push(format!("{}: decodes to {opened:?}", case.name)),
            Err(err) => failures.push(format!("{}: does not open: {err}", case.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "the wire format changed. If intended (append-only, or with a new PROTOCOL_VERSION), \
         run `SORTIE_BLESS=1 cargo test -p sortie-shared --test golden` and commit the \
         fixtures.\n\n{}",
        failures.join("\n\n")
    );
}

#[test]
fn every_fixture_has_a_case() {
    let names: Vec<String> = cases().iter().map(|c| format!("{}.hex", c.name)).collect();
    for entry in fs::read_dir(fixtures_dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        assert!(
            names.contains(&file),
            "stale fixture {file}: remove it or add its case"
        );
    }
}

#[test]
fn fixtures_start_with_the_version_and_pin_known_bytes() {
    // A hand-checked prefix, independent of the fixture files: version 1 as u16 LE, then
    // node_id 7, seq 42 and sent_at_ms as varints, then Message::Command (0) Dispatch (0).
    let dispatch = &cases()[0];
    let sealed = seal(&dispatch.envelope, &dispatch.topic, &key());
    let sent_at_varint = [0x80, 0xd0, 0x95, 0xff, 0xbc, 0x31];
    let mut expected = vec![0x01, 0x00, 0x07, 0x2a];
    expected.extend_from_slice(&sent_at_varint);
    expected.extend_from_slice(&[0x00, 0x00]);
    assert_eq!(&sealed[..expected.len()], &expected[..]);
}
