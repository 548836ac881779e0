//! Per-node credentials: what a node's agent needs to reach the coordinator.
//!
//! Design: these are kept in the clear (not hashed) because the coordinator itself needs the
//! HMAC key to check every envelope, and `node agent-config` must be able to print a complete
//! config again. The data dir is therefore as sensitive as the nodes' own config files.

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::auth::{random_secret, secret_digest};
use crate::model::{TokenKind, TokenRecord};

/// A node's credentials.
#[derive(Clone, Serialize, Deserialize)]
pub struct NodeSecrets {
    /// The node.
    pub node_id: u64,
    /// MQTT password of the user `node-<id>`.
    pub mqtt_password: String,
    /// The per-node key that authenticates every private envelope, hex.
    pub key_hex: String,
    /// Bearer token the agent uses to download plan files and upload outputs.
    pub api_token: String,
}

impl std::fmt::Debug for NodeSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSecrets")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

/// The MQTT user name of node `id`.
pub fn node_mqtt_user(node_id: u64) -> String {
    format!("node-{node_id}")
}

/// Node API tokens live for ten years; they are revoked by rotating the node's credentials.
const NODE_TOKEN_TTL_SECS: i64 = 10 * 365 * 24 * 3600;

impl Store {
    /// Node `id`'s credentials, creating them on first use. Fails if the node does not exist.
    pub fn node_secrets(&self, node_id: u64) -> Result<NodeSecrets, StoreError> {
        if let Some(bytes) = self.node_secrets.get(node_id.to_be_bytes())? {
            return super::decode(&bytes, "node_secrets");
        }
        self.rotate_node_secrets(node_id)
    }

    /// Node `id`'s credentials if they were ever created.
    pub fn existing_node_secrets(&self, node_id: u64) -> Result<Option<NodeSecrets>, StoreError> {
        super::get(&self.node_secrets, "node_secrets", &node_id.to_be_bytes())
    }

    /// Replaces node `id`'s credentials with fresh ones; the old ones stop working.
    pub fn rotate_node_secrets(&self, node_id: u64) -> Result<NodeSecrets, StoreError> {
        if self.node(node_id)?.is_none() {
            return Err(StoreError::not_found("node", node_id));
        }
        if let Some(old) = self.existing_node_secrets(node_id)? {
            self.tokens.remove(secret_digest(&old.api_token))?;
        }
        let secrets = NodeSecrets {
            node_id,
            mqtt_password: random_secret(),
            key_hex: random_secret(),
            api_token: random_secret(),
        };
        let now = chrono::Utc::now().timestamp();
        self.put_token(
            &secret_digest(&secrets.api_token),
            &TokenRecord {
                user_id: 0,
                kind: TokenKind::Node,
                client_id: None,
                node_id: Some(node_id),
                created_at: now,
                expires_at: now + NODE_TOKEN_TTL_SECS,
            },
        )?;
        self.node_secrets
            .insert(node_id.to_be_bytes(), super::encode(&secrets))?;
        Ok(secrets)
    }

    /// The coordinator's own MQTT password for the embedded broker, created on first use.
    pub fn coordinator_mqtt_password(&self) -> Result<String, StoreError> {
        let fresh = random_secret();
        let previous = self.meta.compare_and_swap(
            "coordinator_mqtt_password",
            None::<&[u8]>,
            Some(fresh.as_bytes()),
        )?;
        match previous {
            Ok(()) => Ok(fresh),
            Err(current) => {
                Ok(String::from_utf8_lossy(&current.current.unwrap_or_default()).into_owned())
            }
        }
    }
}
