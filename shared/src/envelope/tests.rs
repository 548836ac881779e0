//! Tamper and bounds tests for `seal`/`open`. Golden bytes live in `tests/golden.rs`.

use super::*;
use crate::messages::{CancelRequest, Command, Event, JobRef};

const TOPIC: &str = "sortie/v1/nodes/7/cmd";

fn key() -> NodeKey {
    NodeKey::from_bytes([7; NODE_KEY_LEN])
}

fn envelope() -> Envelope {
    let job = JobRef {
        id: 1,
        plan_id: 2,
        job_seq: 3,
    };
    Envelope::new(
        7,
        100,
        1_700_000_000_000,
        Command::Cancel(CancelRequest {
            job,
            reason: "operator".into(),
        }),
    )
}

#[test]
fn seal_then_open_returns_the_envelope() {
    let sealed = seal(&envelope(), TOPIC, &key());
    assert_eq!(open(&sealed, TOPIC, &key()).unwrap(), envelope());
}

#[test]
fn envelope_starts_with_the_version_and_ends_with_the_tag() {
    let sealed = seal(&envelope(), TOPIC, &key());
    assert_eq!(&sealed[..2], &PROTOCOL_VERSION.to_le_bytes());
    let body = postcard::to_stdvec(&envelope()).unwrap();
    assert_eq!(sealed.len(), body.len() + TAG_LEN);
    assert_eq!(&sealed[..body.len()], &body[..]);
}

#[test]
fn flipping_any_bit_of_any_byte_fails() {
    let sealed = seal(&envelope(), TOPIC, &key());
    for index in 0..sealed.len() {
        for bit in 0..8 {
            let mut tampered = sealed.clone();
            tampered[index] ^= 1 << bit;
            let err = open(&tampered, TOPIC, &key()).unwrap_err();
            assert!(
                matches!(err, WireError::BadTag),
                "byte {index} bit {bit}: {err}"
            );
        }
    }
}

#[test]
fn another_topic_fails() {
    let sealed = seal(&envelope(), TOPIC, &key());
    for topic in [
        "sortie/v1/nodes/8/cmd",
        "sortie/v1/nodes/7/evt",
        "other/v1/nodes/7/cmd",
        "",
    ] {
        assert!(
            matches!(open(&sealed, topic, &key()), Err(WireError::BadTag)),
            "{topic}"
        );
    }
}

#[test]
fn another_key_fails() {
    let sealed = seal(&envelope(), TOPIC, &key());
    let other = NodeKey::from_bytes([8; NODE_KEY_LEN]);
    assert!(matches!(
        open(&sealed, TOPIC, &other),
        Err(WireError::BadTag)
    ));
    assert!(matches!(
        open(&sealed, TOPIC, &NodeKey::generate()),
        Err(WireError::BadTag)
    ));
}

#[test]
fn newer_version_is_reported_with_the_version_seen() {
    let mut newer = envelope();
    newer.version = 2;
    let sealed = seal(&newer, TOPIC, &key());
    let err = open(&sealed, TOPIC, &key()).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::UnsupportedVersion {
                seen: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 2"), "{err}");
}

#[test]
fn version_is_checked_before_the_body_is_understood() {
    // A future version with a body this build cannot decode still reads as "unsupported".
    let mut body = 9u16.to_le_bytes().to_vec();
    body.extend_from_slice(&[0xff; 40]);
    let tag = tagger(&key(), TOPIC, &body).finalize().into_bytes();
    body.extend_from_slice(&tag);
    let err = open(&body, TOPIC, &key()).unwrap_err();
    assert!(
        matches!(err, WireError::UnsupportedVersion { seen: 9, .. }),
        "{err}"
    );
}

#[test]
fn authentic_garbage_is_a_decode_error() {
    let mut bytes = PROTOCOL_VERSION.to_le_bytes().to_vec();
    bytes.push(0xff);
    let tag = tagger(&key(), TOPIC, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag);
    assert!(matches!(
        open(&bytes, TOPIC, &key()),
        Err(WireError::Decode(_))
    ));

    // Too short for even the version.
    let tag = tagger(&key(), TOPIC, &[]).finalize().into_bytes();
    assert!(matches!(
        open(&tag, TOPIC, &key()),
        Err(WireError::Decode(_))
    ));
}

#[test]
fn trailing_bytes_are_refused() {
    let mut bytes = postcard::to_stdvec(&envelope()).unwrap();
    bytes.push(0);
    let tag = tagger(&key(), TOPIC, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag);
    assert!(matches!(
        open(&bytes, TOPIC, &key()),
        Err(WireError::TrailingBytes { count: 1 })
    ));
}

#[test]
fn truncated_envelopes_fail() {
    let sealed = seal(&envelope(), TOPIC, &key());
    for len in 0..sealed.len() {
        let err = open(&sealed[..len], TOPIC, &key()).unwrap_err();
        if len < TAG_LEN {
            assert!(
                matches!(err, WireError::TooShort { len: l } if l == len),
                "{len}: {err}"
            );
        } else {
            assert!(matches!(err, WireError::BadTag), "{len}: {err}");
        }
    }
}

#[test]
fn oversized_envelopes_are_refused_before_the_tag() {
    let huge = vec![0u8; MAX_ENVELOPE_BYTES + 1];
    let err = open(&huge, TOPIC, &key()).unwrap_err();
    assert!(
        matches!(err, WireError::TooLarge { len, max } if len == MAX_ENVELOPE_BYTES + 1 && max == MAX_ENVELOPE_BYTES)
    );
}

#[test]
fn an_envelope_at_the_limit_opens() {
    let text_len = MAX_ENVELOPE_BYTES - 200;
    let lines = vec![crate::messages::LogLine {
        stream: crate::messages::LogStream::Stdout,
        at_ms: 0,
        text: "x".repeat(text_len),
    }];
    let mut big = Envelope::new(
        7,
        1,
        0,
        Event::LogBatch {
            job: JobRef {
                id: 1,
                plan_id: 1,
                job_seq: 1,
            },
            first_line: 0,
            lines,
        },
    );
    // Pad the text so the sealed envelope is exactly the limit.
    let sealed_len = seal(&big, TOPIC, &key()).len();
    if let crate::Message::Event(Event::LogBatch { lines, .. }) = &mut big.body {
        lines[0]
            .text
            .push_str(&"x".repeat(MAX_ENVELOPE_BYTES - sealed_len));
    }
    let sealed = seal(&big, TOPIC, &key());
    assert_eq!(sealed.len(), MAX_ENVELOPE_BYTES);
    assert_eq!(open(&sealed, TOPIC, &key()).unwrap(), big);
}

#[test]
fn check_node_refuses_a_foreign_node_id() {
    envelope().check_node(7).unwrap();
    let err = envelope().check_node(8).unwrap_err();
    assert!(matches!(
        err,
        WireError::NodeMismatch {
            expected: 8,
            found: 7
        }
    ));
}

#[test]
fn topic_and_body_boundary_is_unambiguous() {
    // Moving bytes between the topic and the body must not keep the tag valid.
    let sealed = seal(&envelope(), "a/b", &key());
    let (body, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    let mut shifted = b"b".to_vec();
    shifted.extend_from_slice(body);
    shifted.extend_from_slice(tag);
    assert!(matches!(
        open(&shifted, "a/", &key()),
        Err(WireError::BadTag)
    ));
}
