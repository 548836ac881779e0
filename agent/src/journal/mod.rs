//! The agent's durable memory, in sled: the jobs it heard of, the outbox of events the
//! coordinator has not acknowledged yet, the event `seq` counter and the replay guard of
//! incoming commands.
//!
//! ```text
//!  job task / supervisor ──commit(record, events)──▶ [jobs, outbox, meta] ──flush──▶ durable(seq)
//!                                                                                    │
//!  publisher ◀── outbox_after(sent) ◀──────────────────────────────────────────────┘
//!  coordinator's Ack(seq) ──▶ ack(seq): drop outbox entries ≤ seq
//! ```
//!
//! Every write goes through [`Journal::commit`]: one sled transaction over the three trees,
//! then a flush, and only then is the new `seq` announced on [`Journal::durable`]. The
//! publisher never sends past that number, so nothing reaches the wire before it is on disk,
//! and a job's record and its event (the `Accepted` of a dispatch, the `Finished` of a job)
//! are stored together or not at all.
//!
//! Design: the tokio-facing methods run sled on the blocking pool (`spawn_blocking`); a
//! mutex held from `seq` assignment to flush keeps the outbox in `seq` order even when several
//! tasks append at once.

mod records;

pub use records::{JobPhase, JobRecord};

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use sled::transaction::{ConflictableTransactionResult, TransactionError};
use sled::Transactional;
use sortie_shared::{Event, ReplayGuard, SeqCounter, WireError};
use tokio::sync::watch;

const LAST_SEQ: &[u8] = b"last_event_seq";
const LAST_COMMAND_SEQ: &[u8] = b"last_command_seq";

/// Why the journal failed. Fatal for the operation; the journal stays usable.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// sled refused (disk full, corruption, I/O error).
    #[error("journal storage: {0}")]
    Storage(#[from] sled::Error),
    /// A stored value could not be encoded.
    #[error("journal encoding: {0}")]
    Encode(String),
    /// The blocking task running the operation panicked or was cancelled.
    #[error("journal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// A cloneable handle on the journal of one agent.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    jobs: sled::Tree,
    outbox: sled::Tree,
    meta: sled::Tree,
    /// Held from assigning `seq`s to announcing them, so the outbox fills in order.
    seq: Mutex<SeqCounter>,
    durable: watch::Sender<u64>,
    /// Bumped when the coordinator asks for the outbox again (it saw a gap).
    resend: watch::Sender<u64>,
    node_id: u64,
    commands: Mutex<ReplayGuard>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("node_id", &self.inner.node_id)
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock left the counter or guard consistent (they change only
    // after the write succeeded), so a poisoned lock is still usable.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn read_u64(tree: &sled::Tree, key: &[u8]) -> Result<Option<u64>, JournalError> {
    Ok(tree
        .get(key)?
        .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
        .map(u64::from_be_bytes))
}

impl Journal {
    /// Opens (or creates) the journal in `dir` for node `node_id`. Blocking: call before
    /// starting tasks, or from `spawn_blocking`.
    pub fn open(dir: &Path, node_id: u64) -> Result<Journal, JournalError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(16 * 1024 * 1024)
            // We flush explicitly after every commit; no background flusher thread per agent.
            .flush_every_ms(None)
            .open()?;
        let meta = db.open_tree("meta")?;
        let last_seq = read_u64(&meta, LAST_SEQ)?;
        let last_command = read_u64(&meta, LAST_COMMAND_SEQ)?;
        let guard = ReplayGuard::with_last_accepted(last_command.map(|seq| (node_id, seq)));
        let inner = Inner {
            jobs: db.open_tree("jobs")?,
            outbox: db.open_tree("outbox")?,
            meta,
            // Design: seqs continue at last + 1, so the coordinator can tell a lost event (a
            // gap) from a restart; the time-based floor only starts a fresh journal high.
            seq: Mutex::new(SeqCounter::resume(
                last_seq,
                if last_seq.is_some() {
                    0
                } else {
                    crate::now_ms()
                },
            )),
            resend: watch::Sender::new(0),
            durable: watch::Sender::new(last_seq.unwrap_or(0)),
            node_id,
            commands: Mutex::new(guard),
            db,
        };
        Ok(Journal {
            inner: Arc::new(inner),
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Inner) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || op(&inner)).await?
    }

    /// Stores `record` (if any) and appends `events` to the outbox with the next `seq`s, in
    /// one transaction, then flushes. Returns the `seq`s given to the events.
    pub async fn commit(
        &self,
        record: Option<JobRecord>,
        events: Vec<Event>,
    ) -> Result<Vec<u64>, JournalError> {
        self.blocking(move |inner| inner.commit(record.as_ref(), &events))
            .await
    }

    /// Appends events to the outbox (see [`commit`](Self::commit)).
    pub async fn append(&self, events: Vec<Event>) -> Result<Vec<u64>, JournalError> {
        self.commit(None, events).await
    }

    /// Stores a job record durably.
    pub async fn put_job(&self, record: JobRecord) -> Result<(), JournalError> {
        self.commit(Some(record), Vec::new()).await.map(drop)
    }

    /// The record of job `id`, if the journal has one.
    pub async fn job(&self, id: u64) -> Result<Option<JobRecord>, JournalError> {
        self.blocking(move |inner| match inner.jobs.get(id.to_be_bytes())? {
            Some(bytes) => Ok(decode_record(&bytes)),
            None => Ok(None),
        })
        .await
    }

    /// Every job record, by job id.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, JournalError> {
        self.blocking(|inner| {
            let mut records = Vec::new();
            for entry in inner.jobs.iter() {
                let (_, bytes) = entry?;
                records.extend(decode_record(&bytes));
            }
            Ok(records)
        })
        .await
    }

    /// Forgets job `id` (retention).
    pub async fn remove_job(&self, id: u64) -> Result<(), JournalError> {
        self.blocking(move |inner| {
            inner.jobs.remove(id.to_be_bytes())?;
            inner.db.flush()?;
            Ok(())
        })
        .await
    }

    /// The coordinator processed every event up to `seq`: drop them. Returns how many left.
    ///
    /// Not flushed on its own: losing a prune in a crash only means a resend, which the
    /// coordinator acknowledges again.
    pub async fn ack(&self, seq: u64) -> Result<usize, JournalError> {
        self.blocking(move |inner| {
            let mut batch = sled::Batch::default();
            let mut count = 0;
            for key in inner.outbox.range(..=seq.to_be_bytes()).keys() {
                batch.remove(key?);
                count += 1;
            }
            inner.outbox.apply_batch(batch)?;
            Ok(count)
        })
        .await
    }

    /// Up to `limit` outbox entries with a `seq` above `after` (all when `None`), in order.
    pub async fn outbox_after(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>, JournalError> {
        self.blocking(move |inner| {
            let start = match after {
                Some(seq) if seq == u64::MAX => return Ok(Vec::new()),
                Some(seq) => seq + 1,
                None => 0,
            };
            let mut entries = Vec::new();
            for entry in inner.outbox.range(start.to_be_bytes()..) {
                let (key, bytes) = entry?;
                let seq = u64::from_be_bytes(key.as_ref().try_into().unwrap_or_default());
                match postcard::from_bytes::<Event>(&bytes) {
                    Ok(event) => entries.push((seq, event)),
                    Err(e) => {
                        // Written by an incompatible build; it can never be sent.
                        tracing::error!(seq, error = %e, "dropping an undecodable outbox entry");
                        inner.outbox.remove(key)?;
                    }
                }
                if entries.len() >= limit {
                    break;
                }
            }
            Ok(entries)
        })
        .await
    }

    /// Number of unacknowledged events.
    pub fn outbox_len(&self) -> usize {
        self.inner.outbox.len()
    }

    /// The highest `seq` that is durably in the outbox (0 before the first event). Changes
    /// after each commit with events.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.inner.durable.subscribe()
    }

    /// Asks the publisher to send the whole outbox again, from the oldest entry.
    pub fn request_resend(&self) {
        self.inner.resend.send_modify(|n| *n += 1);
    }

    /// Resend requests (see [`Journal::request_resend`]).
    pub fn resend_requests(&self) -> watch::Receiver<u64> {
        self.inner.resend.subscribe()
    }

    /// Whether a command with `seq` is new (see [`ReplayGuard::check`]).
    pub fn check_command(&self, seq: u64) -> Result<(), WireError> {
        lock(&self.inner.commands).check(self.inner.node_id, seq)
    }

    /// Records command `seq` as handled. Written with the next flush; a command redelivered
    /// after a crash in between is handled again, which every command tolerates.
    pub async fn accept_command(&self, seq: u64) -> Result<(), JournalError> {
        self.blocking(move |inner| {
            let mut guard = lock(&inner.commands);
            if guard.accept(inner.node_id, seq).is_ok() {
                inner.meta.insert(LAST_COMMAND_SEQ, &seq.to_be_bytes())?;
            }
            Ok(())
        })
        .await
    }

    /// Flushes everything written so far (clean shutdown).
    pub async fn flush(&self) -> Result<(), JournalError> {
        self.blocking(|inner| inner.db.flush().map(drop).map_err(Into::into))
            .await
    }
}

impl Inner {
    fn commit(
        &self,
        record: Option<&JobRecord>,
        events: &[Event],
    ) -> Result<Vec<u64>, JournalError> {
        let record = record
            .map(|r| serde_json::to_vec(r).map(|bytes| (r.job.id.to_be_bytes(), bytes)))
            .transpose()
            .map_err(|e| JournalError::Encode(e.to_string()))?;
        let mut counter = lock(&self.seq);
        let mut next = counter.clone();
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            let bytes =
                postcard::to_stdvec(event).map_err(|e| JournalError::Encode(e.to_string()))?;
            encoded.push((next.next_seq(), bytes));
        }
        let last = encoded.last().map(|(seq, _)| *seq);
        (&self.jobs, &self.outbox, &self.meta)
            .transaction(
                |(jobs, outbox, meta)| -> ConflictableTransactionResult<(), sled::Error> {
                    if let Some((key, value)) = &record {
                        jobs.insert(key.as_slice(), value.as_slice())?;
                    }
                    for (seq, bytes) in &encoded {
                        outbox.insert(&seq.to_be_bytes(), bytes.as_slice())?;
                    }
                    if let Some(last) = last {
                        meta.insert(LAST_SEQ, &last.to_be_bytes())?;
                    }
                    Ok(())
                },
            )
            .map_err(|e| match e {
                TransactionError::Abort(e) | TransactionError::Storage(e) => e,
            })?;
        self.db.flush()?;
        *counter = next;
        if let Some(last) = last {
            self.durable.send_replace(last);
        }
        Ok(encoded.into_iter().map(|(seq, _)| seq).collect())
    }
}

fn decode_record(bytes: &[u8]) -> Option<JobRecord> {
    serde_json::from_slice(bytes)
        .map_err(|e| tracing::error!(error = %e, "skipping an undecodable job record"))
        .ok()
}

#[cfg(test)]
mod tests;
