//! The per-node secret that authenticates every private message to and from one node.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// Length of a [`NodeKey`] in bytes.
pub const NODE_KEY_LEN: usize = 32;

/// Domain label for [`NodeKey::fingerprint`], so the fingerprint is never a value the key
/// authenticates with anywhere else.
const FINGERPRINT_CONTEXT: &[u8] = b"sortie-node-key-fingerprint";

/// A node's 32-byte HMAC-SHA256 key, shared by the coordinator and that node's agent. Both
/// directions of the node's private channel use it; the topic bound into each tag keeps them
/// apart (see [`crate::envelope`]).
///
/// Design: there is deliberately no `Display`, no `Serialize` and no `PartialEq` (which would not
/// be constant-time). `Debug` shows only a [`fingerprint`](NodeKey::fingerprint), so a key
/// cannot leak through a log line or an API response by accident; write it out with
/// [`to_hex`](NodeKey::to_hex) on purpose. It does implement `Deserialize` (from hex) so a
/// typed config struct can hold one.
#[derive(Clone)]
pub struct NodeKey([u8; NODE_KEY_LEN]);

impl NodeKey {
    /// A new random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; NODE_KEY_LEN];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        NodeKey(bytes)
    }

    /// A key from raw bytes (fixtures, key files in binary form).
    pub fn from_bytes(bytes: [u8; NODE_KEY_LEN]) -> Self {
        NodeKey(bytes)
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; NODE_KEY_LEN] {
        &self.0
    }

    /// The key as 64 lower-case hex digits, the form config files and the admin CLI use.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex digits (either case). Surrounding whitespace is ignored, so a key file
    /// that ends in a newline reads fine.
    pub fn from_hex(text: &str) -> Result<Self, InvalidNodeKey> {
        let text = text.trim();
        if text.len() != 2 * NODE_KEY_LEN {
            return Err(InvalidNodeKey {
                reason: format!("got {} characters", text.len()),
            });
        }
        let mut bytes = [0u8; NODE_KEY_LEN];
        hex::decode_to_slice(text, &mut bytes).map_err(|_| InvalidNodeKey {
            // The error's own text names the offending character; keep key material out of it.
            reason: "not hexadecimal".to_owned(),
        })?;
        Ok(NodeKey(bytes))
    }

    /// 16 hex digits identifying the key without revealing it, for logs and for comparing the
    /// coordinator's and the agent's copies by eye.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::new()
            .chain_update(FINGERPRINT_CONTEXT)
            .chain_update(self.0)
            .finalize();
        hex::encode(&digest[..8])
    }
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey")
            .field("fingerprint", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl FromStr for NodeKey {
    type Err = InvalidNodeKey;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NodeKey::from_hex(s)
    }
}

impl<'de> Deserialize<'de> for NodeKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        NodeKey::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Text that is not a node key. Never contains the text itself (it may be a mistyped secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a node key is 64 hex digits (32 bytes): {reason}")]
pub struct InvalidNodeKey {
    reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        for _ in 0..32 {
            let key = NodeKey::generate();
            let back = NodeKey::from_hex(&key.to_hex()).unwrap();
            assert_eq!(back.as_bytes(), key.as_bytes());
            let upper: NodeKey = format!(" {}\n", key.to_hex().to_uppercase())
                .parse()
                .unwrap();
            assert_eq!(upper.as_bytes(), key.as_bytes());
        }
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(
            NodeKey::generate().as_bytes(),
            NodeKey::generate().as_bytes()
        );
    }

    #[test]
    fn bad_hex_is_refused_without_echoing_it() {
        let short = NodeKey::from_hex("abcd").unwrap_err();
        assert!(short.to_string().contains("got 4 characters"));
        let not_hex = "zz".repeat(NODE_KEY_LEN);
        let err = NodeKey::from_hex(&not_hex).unwrap_err();
        assert!(!err.to_string().contains("zz"), "{err}");
    }

    #[test]
    fn debug_shows_a_fingerprint_not_the_key() {
        let key = NodeKey::from_bytes([0xab; NODE_KEY_LEN]);
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.to_hex()), "{debug}");
        assert!(!debug.contains("abab"), "{debug}");
        assert!(debug.contains(&key.fingerprint()), "{debug}");
        assert_eq!(key.fingerprint().len(), 16);
    }

    #[test]
    fn deserializes_from_a_hex_string() {
        let key = NodeKey::generate();
        let json = format!("\"{}\"", key.to_hex());
        let back: NodeKey = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_bytes(), key.as_bytes());
        assert!(serde_json::from_str::<NodeKey>("\"00\"").is_err());
    }
}
