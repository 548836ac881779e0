//! `sortie-agent swarm --register`: a simulated fleet that registers its own nodes. For each
//! agent it creates (or reuses) a node named `<prefix><n>` through the coordinator's API with an
//! admin token, fetches that node's agent config (`GET /api/v1/nodes/{id}/agent-config`), and
//! gives it a data directory of its own.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{json, Value};

use crate::config::{AgentConfig, ConfigLayer};

/// Why the fleet could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The coordinator could not be reached or answered with an error.
    #[error("{what}: {detail}")]
    Api {
        /// What was being done.
        what: String,
        /// The error or the answer.
        detail: String,
    },
    /// A fetched config is unusable.
    #[error("node {node_id}'s agent config: {detail}")]
    Config {
        /// The node.
        node_id: u64,
        /// Why.
        detail: String,
    },
}

/// Creates or reuses `count` nodes `<prefix>00001`… and returns their agent configs, each
/// with the data directory `<data_dir>/<node id>`.
pub async fn register_fleet(
    coordinator_url: &str,
    admin_token: &str,
    count: usize,
    prefix: &str,
    data_dir: &Path,
) -> Result<Vec<AgentConfig>, RegisterError> {
    let base = coordinator_url.trim_end_matches('/');
    let http = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| api_error("building the HTTP client", e))?;
    let existing: Vec<Value> = send(
        http.get(format!("{base}/api/v1/nodes/"))
            .bearer_auth(admin_token),
        "listing nodes",
    )
    .await?;
    let mut by_name: HashMap<String, u64> = existing
        .iter()
        .filter_map(|n| Some((n["name"].as_str()?.to_owned(), n["id"].as_u64()?)))
        .collect();
    let mut configs = Vec::with_capacity(count);
    for n in 1..=count {
        let name = format!("{prefix}{n:05}");
        let node_id = match by_name.get(&name) {
            Some(id) => *id,
            None => {
                let body = json!({"name": name, "type_name": "air", "description": "simulated by sortie-agent swarm"});
                let node: Value = send(
                    http.post(format!("{base}/api/v1/nodes/"))
                        .bearer_auth(admin_token)
                        .json(&body),
                    &format!("creating node {name}"),
                )
                .await?;
                let id = node["id"].as_u64().ok_or_else(|| {
                    api_error(&format!("creating node {name}"), "no id in the answer")
                })?;
                by_name.insert(name.clone(), id);
                id
            }
        };
        let what = format!("fetching node {node_id}'s agent config");
        let response = http
            .get(format!("{base}/api/v1/nodes/{node_id}/agent-config"))
            .bearer_auth(admin_token)
            .send()
            .await
            .map_err(|e| api_error(&what, e))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| api_error(&what, e))?;
        if !status.is_success() {
            return Err(api_error(&what, format!("{status}: {text}")));
        }
        let layer = ConfigLayer::from_toml(&text)
            .map_err(|detail| RegisterError::Config { node_id, detail })?;
        let mut config = layer.resolve().map_err(|e| RegisterError::Config {
            node_id,
            detail: e.to_string(),
        })?;
        config.data_dir = data_dir.join(node_id.to_string());
        configs.push(config);
    }
    Ok(configs)
}

async fn send<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    what: &str,
) -> Result<T, RegisterError> {
    let response = request.send().await.map_err(|e| api_error(what, e))?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(api_error(what, format!("{status}: {text}")));
    }
    response.json().await.map_err(|e| api_error(what, e))
}

fn api_error(what: &str, detail: impl std::fmt::Display) -> RegisterError {
    RegisterError::Api {
        what: what.to_owned(),
        detail: detail.to_string(),
    }
}
