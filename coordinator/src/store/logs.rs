//! Job logs, keyed by (global job id, line number), and the relay's per-node counters.

use serde::{Deserialize, Serialize};

use super::{decode_u64, Store, StoreError};
use crate::model::Timestamp;

/// One stored log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredLogLine {
    /// 0-based line number within the job.
    pub line: u64,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When the device saw it.
    pub at: Timestamp,
    /// The text, without newline.
    pub text: String,
}

fn log_key(job_id: u64, line: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&job_id.to_be_bytes());
    key[8..].copy_from_slice(&line.to_be_bytes());
    key
}

impl Store {
    /// Stores log lines of job `job_id`. A line number already stored is kept as it was, so a
    /// redelivered batch adds nothing. Returns the lines that were new.
    pub fn append_logs(
        &self,
        job_id: u64,
        lines: &[StoredLogLine],
    ) -> Result<Vec<StoredLogLine>, StoreError> {
        let mut fresh = Vec::new();
        for line in lines {
            let inserted = self.logs.compare_and_swap(
                log_key(job_id, line.line),
                None::<&[u8]>,
                Some(super::encode(line)),
            )?;
            if inserted.is_ok() {
                fresh.push(line.clone());
            }
        }
        Ok(fresh)
    }

    /// Job `job_id`'s log lines from line `from` on, at most `limit`.
    pub fn logs(
        &self,
        job_id: u64,
        from: u64,
        limit: usize,
    ) -> Result<Vec<StoredLogLine>, StoreError> {
        self.logs
            .range(log_key(job_id, from)..log_key(job_id + 1, 0))
            .values()
            .take(limit)
            .map(|v| super::decode(&v?, "logs"))
            .collect()
    }

    /// How many lines job `job_id` has logged (one past the highest line number).
    pub fn log_len(&self, job_id: u64) -> Result<u64, StoreError> {
        let last = self
            .logs
            .range(log_key(job_id, 0)..log_key(job_id + 1, 0))
            .next_back()
            .transpose()?;
        Ok(last
            .and_then(|(k, _)| decode_u64(&k[8..]))
            .map_or(0, |n| n + 1))
    }

    /// Reads a per-node relay counter (`evt_seq`: last accepted event seq; `cmd_seq`: last
    /// command seq sent).
    pub fn relay_counter(&self, name: &str, node_id: u64) -> Result<Option<u64>, StoreError> {
        Ok(self
            .meta
            .get(format!("{name}/{node_id}"))?
            .and_then(|v| decode_u64(&v)))
    }

    /// Writes a per-node relay counter.
    pub fn set_relay_counter(
        &self,
        name: &str,
        node_id: u64,
        value: u64,
    ) -> Result<(), StoreError> {
        self.meta
            .insert(format!("{name}/{node_id}"), &value.to_be_bytes())?;
        Ok(())
    }

    /// Records that node `id` was heard from now (online) or went offline.
    pub fn set_node_presence(&self, node_id: u64, online: bool) -> Result<(), StoreError> {
        use crate::model::{Node, NodeStatus};
        self.nodes.fetch_and_update(node_id.to_be_bytes(), |old| {
            let old = old?;
            // Returning None would delete the node: keep an undecodable record as it is.
            let Ok(mut node) = serde_json::from_slice::<Node>(old) else {
                return Some(old.to_vec());
            };
            node.status = if online {
                NodeStatus::Online
            } else {
                NodeStatus::Offline
            };
            if online {
                node.last_seen = Some(Timestamp::now());
            }
            Some(super::encode(&node))
        })?;
        Ok(())
    }
}
