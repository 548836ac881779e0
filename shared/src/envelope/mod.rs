//! The envelope every private message travels in, and its authentication.
//!
//! ```text
//!  wire = postcard(Envelope) ‖ tag                                  (at most 256 KiB)
//!  tag  = HMAC-SHA256(node key, "sortie-mqtt-envelope" ‖ u64be(len(topic)) ‖ topic ‖ postcard(Envelope))
//!
//!  postcard(Envelope):
//!   ┌──────────────┬───────────────┬───────────┬──────────────────┬──────────────┐
//!   │ version u16le│ node_id varint│ seq varint│ sent_at_ms varint│ body: Message│
//!   └──────────────┴───────────────┴───────────┴──────────────────┴──────────────┘
//! ```
//!
//! The tag binds the MQTT topic, so an envelope republished on another node's topic, or
//! reflected from a node's `cmd` topic onto its `evt` topic, fails authentication.
//! [`open`] checks, in order: the length bounds, the tag (in constant time), the version,
//! then decodes. Replay protection is the receiver's next step: see [`ReplayGuard`].
//!
//! Design: the version is a fixed two bytes (not postcard's varint) and the tag construction
//! is frozen across protocol versions, so a receiver can always authenticate a message from
//! a newer peer and report [`WireError::UnsupportedVersion`] instead of garbage.

mod key;
mod replay;

pub use key::{InvalidNodeKey, NodeKey, NODE_KEY_LEN};
pub use replay::{check_clock_skew, ReplayGuard, SeqCounter, DEFAULT_MAX_CLOCK_SKEW_MS};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::messages::Message;

/// The protocol version this build speaks, the first two bytes of every envelope.
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest envelope accepted on the wire, tag included. Senders split log batches to stay
/// under it.
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// Length of the HMAC-SHA256 tag that ends every envelope.
pub const TAG_LEN: usize = 32;

/// Domain separation for the tag: these keys authenticate nothing else, but if they ever do,
/// the two uses cannot be confused.
const MAC_CONTEXT: &[u8] = b"sortie-mqtt-envelope";

type HmacSha256 = Hmac<Sha256>;

/// One private message with its routing and replay metadata.
///
/// Design: the field list is frozen (postcard carries no field names, so even an added field
/// would break older receivers); changing it means a new [`PROTOCOL_VERSION`].
/// `tests/fixtures/*.hex` pins the encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Protocol version, [`PROTOCOL_VERSION`] when sent by this build. Encoded as two
    /// little-endian bytes so any version can be read without understanding the rest.
    #[serde(with = "postcard::fixint::le")]
    pub version: u16,
    /// The node whose channel this is, in both directions (its key signs the tag).
    pub node_id: u64,
    /// The sender's monotonic counter for this channel ([`SeqCounter`], [`ReplayGuard`]).
    pub seq: u64,
    /// When the envelope was sealed, Unix milliseconds ([`check_clock_skew`]).
    pub sent_at_ms: u64,
    /// The message.
    pub body: Message,
}

/// The first field of every envelope, decoded on its own so the version check does not depend
/// on understanding what follows.
#[derive(Deserialize)]
struct VersionPrefix {
    #[serde(with = "postcard::fixint::le")]
    version: u16,
}

impl Envelope {
    /// An envelope of the current [`PROTOCOL_VERSION`].
    pub fn new(node_id: u64, seq: u64, sent_at_ms: u64, body: impl Into<Message>) -> Self {
        Envelope {
            version: PROTOCOL_VERSION,
            node_id,
            seq,
            sent_at_ms,
            body: body.into(),
        }
    }

    /// Refuses an envelope that names a node other than the one whose topic (and key) it
    /// arrived on. The tag already proves the key holder chose this topic, so a mismatch is a
    /// sender bug, but the receiver should not act on it.
    pub fn check_node(&self, expected: u64) -> Result<(), WireError> {
        if self.node_id != expected {
            return Err(WireError::NodeMismatch {
                expected,
                found: self.node_id,
            });
        }
        Ok(())
    }
}

/// Encodes and authenticates `envelope` for publishing on `topic` (the full topic string,
/// prefix included). The result should stay under [`MAX_ENVELOPE_BYTES`] or the receiver
/// refuses it.
pub fn seal(envelope: &Envelope, topic: &str, key: &NodeKey) -> Vec<u8> {
    let mut bytes = postcard::to_stdvec(envelope)
        .expect("envelopes hold only sized collections and always serialize");
    let tag = tagger(key, topic, &bytes).finalize().into_bytes();
    bytes.extend_from_slice(&tag);
    bytes
}

/// Authenticates and decodes an envelope received on `topic` with the key of the node that
/// topic belongs to.
pub fn open(bytes: &[u8], topic: &str, key: &NodeKey) -> Result<Envelope, WireError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(WireError::TooLarge {
            len: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    if bytes.len() < TAG_LEN {
        return Err(WireError::TooShort { len: bytes.len() });
    }
    let (body, tag) = bytes.split_at(bytes.len() - TAG_LEN);
    tagger(key, topic, body)
        .verify_slice(tag)
        .map_err(|_| WireError::BadTag)?;
    let (prefix, _) = postcard::take_from_bytes::<VersionPrefix>(body)?;
    if prefix.version != PROTOCOL_VERSION {
        return Err(WireError::UnsupportedVersion {
            seen: prefix.version,
            supported: PROTOCOL_VERSION,
        });
    }
    let (envelope, rest) = postcard::take_from_bytes::<Envelope>(body)?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes { count: rest.len() });
    }
    Ok(envelope)
}

/// The HMAC over everything the tag covers, ready to finalize or verify.
fn tagger(key: &NodeKey, topic: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(MAC_CONTEXT);
    // Length-prefixed, so no topic/body split of the same bytes can produce the same input.
    mac.update(&(topic.len() as u64).to_be_bytes());
    mac.update(topic.as_bytes());
    mac.update(body);
    mac
}

/// Why an envelope was refused.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Longer than [`MAX_ENVELOPE_BYTES`]; refused before any work.
    #[error("envelope of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Bytes received.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Shorter than the tag alone.
    #[error("envelope of {len} bytes is shorter than its {TAG_LEN}-byte tag")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// The tag does not match: wrong key, wrong topic, or altered bytes. Deliberately one
    /// error, so a prober learns nothing about which.
    #[error("envelope failed authentication (wrong key, wrong topic or altered bytes)")]
    BadTag,
    /// Authentic, but from a protocol version this build does not speak.
    #[error("envelope has protocol version {seen}; this build speaks version {supported}")]
    UnsupportedVersion {
        /// The version in the envelope.
        seen: u16,
        /// [`PROTOCOL_VERSION`].
        supported: u16,
    },
    /// Authentic and of our version, but the bytes do not decode (a sender bug).
    #[error("malformed envelope: {0}")]
    Decode(#[from] postcard::Error),
    /// Authentic and decoded, with bytes left over (a sender bug).
    #[error("{count} unexpected bytes after the envelope")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// The envelope names another node than the channel it arrived on.
    #[error("envelope for node {found} arrived on node {expected}'s topic")]
    NodeMismatch {
        /// The node of the topic and key.
        expected: u64,
        /// The node the envelope names.
        found: u64,
    },
    /// A `seq` at or below the last one accepted from this sender.
    #[error("seq {seq} from node {node_id} is not above the last accepted seq {last}")]
    Replayed {
        /// The sender's node id.
        node_id: u64,
        /// The refused seq.
        seq: u64,
        /// The last seq accepted from this sender.
        last: u64,
    },
    /// `sent_at_ms` is too far from the receiver's clock.
    #[error(
        "envelope sent at {sent_at_ms} ms is more than {max_skew_ms} ms from now ({now_ms} ms)"
    )]
    ClockSkew {
        /// The envelope's `sent_at_ms`.
        sent_at_ms: u64,
        /// The receiver's clock.
        now_ms: u64,
        /// The bound.
        max_skew_ms: u64,
    },
}

#[cfg(test)]
mod tests;
