//! `serve --demo`: a user, a client and two nodes, so the README's curl lines work at once.

use serde_json::{json, Map};

use crate::auth::{hash_password, secret_digest};
use crate::model::{OAuthClient, Timestamp};
use crate::store::{NodeSpec, PointSpec, Store, StoreError};

/// The demo user's name.
pub const DEMO_USER: &str = "demo";
/// The demo user's password.
pub const DEMO_PASSWORD: &str = "demodemo";
/// The demo client's id.
pub const DEMO_CLIENT_ID: &str = "sortie-demo";
/// The demo client's secret.
pub const DEMO_CLIENT_SECRET: &str = "sortie-demo-secret";

/// What the demo seeded or found.
#[derive(Debug)]
pub struct DemoFleet {
    /// The drone node's id.
    pub drone_id: u64,
    /// The depot node's id.
    pub depot_id: u64,
}

/// Creates whatever of the demo fleet is absent; leaves what exists alone.
pub fn seed(store: &Store) -> Result<DemoFleet, StoreError> {
    if store.user_by_name(DEMO_USER)?.is_none() {
        store.create_user(DEMO_USER, hash_password(DEMO_PASSWORD), true)?;
        tracing::info!(user = DEMO_USER, "demo user created");
    }
    if store.client(DEMO_CLIENT_ID)?.is_none() {
        store.create_client(&OAuthClient {
            client_id: DEMO_CLIENT_ID.into(),
            name: "Sortie demo".into(),
            secret_sha256: hex::encode(secret_digest(DEMO_CLIENT_SECRET)),
            created_at: Timestamp::now(),
        })?;
    }
    let point = |type_name: &str, name: &str, params: Map<String, serde_json::Value>| PointSpec {
        name: name.into(),
        point_type_name: type_name.into(),
        params,
    };
    let drone = ensure_node(
        store,
        NodeSpec {
            name: "drone-1".into(),
            description: "Demo drone (simulated)".into(),
            type_name: "air".into(),
            points: vec![
                point("livestream_flv", "camera", Map::new()),
                point("drone-status", "status", rate(1.0)),
            ],
        },
    )?;
    let depot = ensure_node(
        store,
        NodeSpec {
            name: "depot-1".into(),
            description: "Demo drone depot (simulated)".into(),
            type_name: "depot".into(),
            points: vec![point("depot-status", "status", rate(0.5))],
        },
    )?;
    Ok(DemoFleet {
        drone_id: drone,
        depot_id: depot,
    })
}

fn rate(hz: f64) -> Map<String, serde_json::Value> {
    let mut params = Map::new();
    params.insert("rate_hz".into(), json!(hz));
    params
}

fn ensure_node(store: &Store, spec: NodeSpec) -> Result<u64, StoreError> {
    match store.node_by_name(&spec.name)? {
        Some(node) => Ok(node.id),
        None => {
            let node = store.create_node(&spec)?;
            tracing::info!(node_id = node.id, name = %node.name, "demo node created");
            Ok(node.id)
        }
    }
}

/// The curl walkthrough printed at start, against `base_url` (e.g. `http://localhost:8000/gosd`).
pub fn walkthrough(base_url: &str, fleet: &DemoFleet) -> String {
    let drone = fleet.drone_id;
    format!(
        r#"
Sortie demo is ready. Try it (bash):

  # a token for user {DEMO_USER}
  TOKEN=$(curl -s {base_url}/oauth/token -F grant_type=password -F username={DEMO_USER} \
      -F password={DEMO_PASSWORD} -F client_id={DEMO_CLIENT_ID} -F client_secret={DEMO_CLIENT_SECRET} \
      | sed 's/.*"access_token":"\([0-9a-f]*\)".*/\1/')
  curl -s {base_url}/api/v1/nodes/ -H "Authorization: Bearer $TOKEN"

  # upload a script and run it as a plan on the drone (node {drone});
  # the blob, plan and job ids below are those a fresh data dir hands out
  printf '#!/bin/sh\necho hello from $SORTIE_NODE_ID\n' > hello.sh
  curl -s -X POST {base_url}/api/v2/blobs/ -H "Authorization: Bearer $TOKEN" -F script=@hello.sh
  curl -s -X POST {base_url}/api/v2/plans/ -H "Authorization: Bearer $TOKEN" \
      -H 'content-type: application/json' \
      -d '{{"name":"hello","description":"demo","node_id":{drone},"files":{{"script":"1"}},"extra":{{"speed":"5"}}}}'
  curl -s -X POST {base_url}/api/v2/plans/1/jobs/ -H "Authorization: Bearer $TOKEN"
  curl -s {base_url}/api/v2/plans/1/jobs/ -H "Authorization: Bearer $TOKEN"
  curl -s -X POST {base_url}/api/v2/plans/1/jobs/1/cancel -H "Authorization: Bearer $TOKEN"

  OpenAPI document: {base_url}/api/openapi.json
"#
    )
}
