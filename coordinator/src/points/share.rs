//! Share tokens: short-lived, signed, read-only access to one point, for players that cannot
//! send an `Authorization` header (`.../live.flv?token=...`).
//!
//! A token is `{node_id}.{point_id}.{expires_unix}.{tag}` where `tag` is the first 16 bytes
//! of HMAC-SHA256 over the other three fields, in hex. Nothing is stored: the coordinator
//! checks the tag with its share key and the expiry with its clock. A token names one point of
//! one node and is refused anywhere else.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Bytes of the tag kept in the token.
const TAG_BYTES: usize = 16;

/// Signs and checks share tokens.
#[derive(Clone)]
pub struct ShareKey([u8; 32]);

impl std::fmt::Debug for ShareKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ShareKey(..)")
    }
}

/// Why a share token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShareError {
    /// Not of the token's shape.
    #[error("the share token is malformed")]
    Malformed,
    /// Valid for another point.
    #[error("the share token is for another point")]
    OtherPoint,
    /// Past its expiry.
    #[error("the share token expired")]
    Expired,
    /// Not signed by this coordinator.
    #[error("the share token's signature is wrong")]
    BadSignature,
}

impl ShareKey {
    /// A key derived from a secret the coordinator keeps (so tokens survive restarts).
    pub fn derive(secret: &str) -> ShareKey {
        let mut hash = Sha256::new();
        hash.update(b"sortie share key v1\0");
        hash.update(secret.as_bytes());
        ShareKey(hash.finalize().into())
    }

    /// The MAC over a token's signed fields.
    fn mac(&self, node_id: u64, point_id: u64, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(format!("{node_id}.{point_id}.{expires}").as_bytes());
        mac
    }

    /// A token for point `point_id` of node `node_id`, valid until `expires` (Unix seconds).
    pub fn issue(&self, node_id: u64, point_id: u64, expires: i64) -> String {
        let tag =
            hex::encode(&self.mac(node_id, point_id, expires).finalize().into_bytes()[..TAG_BYTES]);
        format!("{node_id}.{point_id}.{expires}.{tag}")
    }

    /// Checks `token` for point `point_id` of node `node_id` at time `now` (Unix seconds).
    pub fn check(
        &self,
        token: &str,
        node_id: u64,
        point_id: u64,
        now: i64,
    ) -> Result<(), ShareError> {
        let mut parts = token.split('.');
        let (Some(node), Some(point), Some(expires), Some(tag), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(ShareError::Malformed);
        };
        let (Ok(node), Ok(point), Ok(expires), Ok(tag)) = (
            node.parse::<u64>(),
            point.parse::<u64>(),
            expires.parse::<i64>(),
            hex::decode(tag),
        ) else {
            return Err(ShareError::Malformed);
        };
        // Constant-time comparison of the truncated tag.
        self.mac(node, point, expires)
            .verify_truncated_left(&tag)
            .map_err(|_| ShareError::BadSignature)?;
        if tag.len() != TAG_BYTES {
            return Err(ShareError::BadSignature);
        }
        if (node, point) != (node_id, point_id) {
            return Err(ShareError::OtherPoint);
        }
        if expires <= now {
            return Err(ShareError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_its_point_until_it_expires() {
        let key = ShareKey::derive("secret");
        let token = key.issue(1, 5, 1000);
        assert_eq!(key.check(&token, 1, 5, 999), Ok(()));
        assert_eq!(key.check(&token, 1, 5, 1000), Err(ShareError::Expired));
        assert_eq!(key.check(&token, 1, 6, 999), Err(ShareError::OtherPoint));
        assert_eq!(key.check(&token, 2, 5, 999), Err(ShareError::OtherPoint));
    }

    #[test]
    fn forged_and_malformed_tokens_are_refused() {
        let key = ShareKey::derive("secret");
        let token = key.issue(1, 5, 1000);
        let other = ShareKey::derive("other").issue(1, 5, 1000);
        assert_eq!(key.check(&other, 1, 5, 0), Err(ShareError::BadSignature));
        let longer = token.replace(".1000.", ".9999.");
        assert_eq!(key.check(&longer, 1, 5, 0), Err(ShareError::BadSignature));
        let short = &token[..token.len() - 2];
        assert_eq!(key.check(short, 1, 5, 0), Err(ShareError::BadSignature));
        for bad in ["", "1.5.1000", "a.b.c.d", "1.5.1000.zz", "1.5.1000.00.00"] {
            assert_eq!(key.check(bad, 1, 5, 0), Err(ShareError::Malformed), "{bad}");
        }
    }
}
