//! Passwords, tokens and the request authenticator.
//!
//! Passwords are hashed with argon2id. Tokens are 256 random bits shown to the client once as
//! 64 hex characters; the store keeps only their SHA-256, so a stolen database holds no usable
//! token. Every lookup checks expiry.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::model::{TokenKind, TokenRecord, User};
use crate::store::{Store, StoreError};

/// Hashes a password with argon2id and a random salt (PHC string format).
pub fn hash_password(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 with default parameters accepts any password")
        .to_string()
}

/// Checks a password against an argon2 PHC string. A malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A fresh random secret: 32 bytes as 64 lower-case hex characters.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 of a secret, the key it is stored under.
pub fn secret_digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A token as handed to a client.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token itself.
    pub token: String,
    /// Issued at (Unix seconds).
    pub created_at: i64,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// Issues and stores a new token for `user_id`.
pub fn issue_token(
    store: &Store,
    user_id: u64,
    kind: TokenKind,
    client_id: Option<&str>,
    ttl_secs: u64,
) -> Result<IssuedToken, StoreError> {
    let token = random_secret();
    let created_at = chrono::Utc::now().timestamp();
    let record = TokenRecord {
        user_id,
        kind,
        client_id: client_id.map(str::to_owned),
        node_id: None,
        created_at,
        expires_at: created_at.saturating_add(ttl_secs as i64),
    };
    store.put_token(&secret_digest(&token), &record)?;
    Ok(IssuedToken {
        token,
        created_at,
        expires_in: ttl_secs,
    })
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthFailure {
    /// No `Authorization` header.
    #[error("missing Authorization header: send 'Authorization: Bearer <token>' (get one from POST /oauth/token)")]
    Missing,
    /// The header is not `Bearer <token>` or `Token <token>`.
    #[error("malformed Authorization header: expected 'Bearer <token>'")]
    Malformed,
    /// No such token (or it was revoked, or it is a refresh token).
    #[error("unknown or revoked token")]
    Unknown,
    /// The token expired.
    #[error("token expired: get a new one from POST /oauth/token")]
    Expired,
}

/// Extracts the token from an `Authorization` header value. gosd accepted any scheme word;
/// we accept `Bearer` and `Token`, in any case.
pub fn parse_authorization(value: &str) -> Result<&str, AuthFailure> {
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().map(str::trim).unwrap_or_default();
    if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        || token.is_empty()
        || token.contains(' ')
    {
        return Err(AuthFailure::Malformed);
    }
    Ok(token)
}

/// Finds the user an access token belongs to.
pub fn authenticate(store: &Store, token: &str) -> Result<Result<User, AuthFailure>, StoreError> {
    let Some(record) = store.token(&secret_digest(token))? else {
        return Ok(Err(AuthFailure::Unknown));
    };
    if record.kind != TokenKind::Access {
        return Ok(Err(AuthFailure::Unknown));
    }
    if record.expires_at <= chrono::Utc::now().timestamp() {
        return Ok(Err(AuthFailure::Expired));
    }
    Ok(store.user(record.user_id)?.ok_or(AuthFailure::Unknown))
}

/// The node a node token belongs to, if `token` is a live node token.
pub fn authenticate_node(store: &Store, token: &str) -> Result<Option<u64>, StoreError> {
    let Some(record) = store.token(&secret_digest(token))? else {
        return Ok(None);
    };
    let live = record.kind == TokenKind::Node && record.expires_at > chrono::Utc::now().timestamp();
    Ok(record.node_id.filter(|_| live))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_with_the_right_password() {
        let hash = hash_password("demodemo");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("demodemo", &hash));
        assert!(!verify_password("demodem0", &hash));
        assert!(!verify_password("demodemo", "not a hash"));
    }

    #[test]
    fn authorization_schemes() {
        assert_eq!(parse_authorization("Bearer abc"), Ok("abc"));
        assert_eq!(parse_authorization("token abc"), Ok("abc"));
        assert_eq!(parse_authorization("abc"), Err(AuthFailure::Malformed));
        assert_eq!(
            parse_authorization("Basic abc"),
            Err(AuthFailure::Malformed)
        );
        assert_eq!(parse_authorization("Bearer "), Err(AuthFailure::Malformed));
    }

    #[test]
    fn tokens_are_stored_hashed_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let user = store.create_user("u", hash_password("pw"), false).unwrap();
        let live = issue_token(&store, user.id, TokenKind::Access, None, 60).unwrap();
        assert_eq!(live.token.len(), 64);
        assert_eq!(
            authenticate(&store, &live.token).unwrap().unwrap().id,
            user.id
        );
        // The raw token is not a key in the store.
        assert!(store.token(&[0; 32]).unwrap().is_none());
        let dead = issue_token(&store, user.id, TokenKind::Access, None, 0).unwrap();
        assert_eq!(
            authenticate(&store, &dead.token).unwrap().unwrap_err(),
            AuthFailure::Expired
        );
        let refresh = issue_token(&store, user.id, TokenKind::Refresh, None, 60).unwrap();
        assert_eq!(
            authenticate(&store, &refresh.token).unwrap().unwrap_err(),
            AuthFailure::Unknown
        );
    }
}
