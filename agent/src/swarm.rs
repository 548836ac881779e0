//! A simulated fleet: many agents in one process, each from its own config file, each with its
//! own data directory (`<data_dir>/<node_id>`), journal, broker connection and jobs. They share
//! only the tokio runtime; every agent runs the same [`run`](crate::run) as a lone one.

use std::path::{Path, PathBuf};

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{AgentConfig, ConfigError, ConfigLayer};

/// Why a swarm could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// A config file is bad.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The config directory could not be listed.
    #[error("listing {path}: {error}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Fewer config files than agents asked for, or none.
    #[error("{0}")]
    Count(String),
    /// Two files name the same node.
    #[error("node {0} appears in more than one config file")]
    DuplicateNode(u64),
}

/// The `*.toml` files of `dir`, sorted by name.
pub fn config_files_in(dir: &Path) -> Result<Vec<PathBuf>, SwarmError> {
    let fail = |error| SwarmError::Dir {
        path: dir.to_owned(),
        error,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(fail)? {
        let path = entry.map_err(fail)?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads the first `count` (default: all) of `files` and gives each its own data directory.
/// Only the files count: `SORTIE_AGENT_*` variables and flags would apply to every agent alike.
pub fn load_swarm(files: &[PathBuf], count: Option<usize>) -> Result<Vec<AgentConfig>, SwarmError> {
    if files.is_empty() {
        return Err(SwarmError::Count(
            "no config files (*.toml) given or found".into(),
        ));
    }
    let count = count.unwrap_or(files.len());
    if count == 0 || files.len() < count {
        return Err(SwarmError::Count(format!(
            "asked for {count} agents but found {} config files",
            files.len()
        )));
    }
    let mut configs: Vec<AgentConfig> = Vec::with_capacity(count);
    for path in &files[..count] {
        let mut config = ConfigLayer::from_file(path)?.resolve()?;
        if configs.iter().any(|c| c.node_id == config.node_id) {
            return Err(SwarmError::DuplicateNode(config.node_id));
        }
        config.data_dir = config.data_dir.join(config.node_id.to_string());
        configs.push(config);
    }
    Ok(configs)
}

/// Runs every agent until `shutdown`; returns how many of them failed.
pub async fn run_swarm(configs: Vec<AgentConfig>, shutdown: CancellationToken) -> usize {
    tracing::info!(agents = configs.len(), "swarm starting");
    let mut agents = JoinSet::new();
    for config in configs {
        let node_id = config.node_id;
        let token = shutdown.child_token();
        agents.spawn(async move { (node_id, crate::run(config, token).await) });
    }
    let mut failed = 0;
    while let Some(joined) = agents.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((node_id, Err(e))) => {
                failed += 1;
                tracing::error!(node_id, error = %e, "agent failed");
            }
            Err(e) => {
                failed += 1;
                tracing::error!(error = %e, "agent task panicked");
            }
        }
    }
    failed
}
