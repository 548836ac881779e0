//! Everything the coordinator keeps on disk, behind one boundary.
//!
//! Records live in sled (one tree per kind, JSON values, big-endian integer keys so iteration
//! is in id order); blob bytes live as files beside it ([`BlobFiles`]). Every method here speaks
//! in domain terms, so a PostgreSQL backend for multi-coordinator deployments can offer the same
//! surface without the API layer noticing.
//!
//! Design: ids come from per-kind counters updated in the same sled transaction as the record
//! they number, so they are monotonic, gap-free in normal operation and never reused, even under
//! concurrent requests. Mutations are flushed ([`Store::flush`]) before the API answers, so what
//! a client was told is stored survives `kill -9`.
//!
//! # Layout
//! - `mod.rs`: opening, errors, encoding helpers, users, OAuth clients and tokens.
//! - `nodes.rs`, `blobs.rs`, `plans.rs`, `jobs.rs`: one family of records each.
//! - `blob_files.rs`: the blob bytes on disk.

mod blob_files;
mod blobs;
mod jobs;
mod logs;
mod node_secrets;
mod nodes;
mod plans;

use sled::Transactional;
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};

pub use blob_files::{BlobFiles, StageError, StagedFile};
pub use blobs::NewBlobContent;
pub use jobs::{JobInputs, JobPage, JobUpdate};
pub use logs::StoredLogLine;
pub use node_secrets::{node_mqtt_user, NodeSecrets};
pub use nodes::{NodeSpec, PointSpec, BUILTIN_POINT_TYPES};
pub use plans::PlanSpec;

use crate::model::{OAuthClient, TokenRecord, User};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The record does not exist.
    #[error("{what} {id} not found")]
    NotFound {
        /// What kind of record: `plan`, `node`, ...
        what: &'static str,
        /// Its id, as the caller named it.
        id: String,
    },
    /// The change conflicts with what is stored (a duplicate name, a blob still in use, ...).
    #[error("{0}")]
    Conflict(String),
    /// A field of the input is not acceptable.
    #[error("{field}: {message}")]
    Invalid {
        /// The field, as named in the API (`node_id`, `files.script`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A stored record could not be decoded.
    #[error("corrupt record in {tree}: {cause}")]
    Corrupt {
        /// The tree it was read from.
        tree: &'static str,
        /// The decoder's message.
        cause: String,
    },
    /// The database failed.
    #[error("database: {0}")]
    Sled(#[from] sled::Error),
    /// The blob directory failed.
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> Self {
        StoreError::NotFound {
            what,
            id: id.to_string(),
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<TransactionError<StoreError>> for StoreError {
    fn from(e: TransactionError<StoreError>) -> Self {
        match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Sled(e),
        }
    }
}

/// The result type of a sled transaction body.
type TxResult<T> = Result<T, ConflictableTransactionError<StoreError>>;

/// The coordinator's persistent state. Cheap to clone: every field is a handle.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    meta: sled::Tree,
    users: sled::Tree,
    users_by_name: sled::Tree,
    clients: sled::Tree,
    tokens: sled::Tree,
    nodes: sled::Tree,
    point_types: sled::Tree,
    blobs: sled::Tree,
    plans: sled::Tree,
    jobs: sled::Tree,
    jobs_by_id: sled::Tree,
    active_jobs: sled::Tree,
    nodes_by_name: sled::Tree,
    node_secrets: sled::Tree,
    logs: sled::Tree,
    /// Reference counts: `blob/<id>` (plans and jobs using a blob), `node/<id>` (plans on a
    /// node), `active/<plan id>` (unfinished jobs of a plan). Kept in the same transactions as
    /// the records, so a delete can refuse safely without scanning.
    refs: sled::Tree,
    /// The blob bytes.
    pub files: BlobFiles,
    /// Requests to the group-commit flusher thread.
    flusher: std::sync::mpsc::Sender<FlushWaiter>,
}

/// A flush request: the database (the thread holds no handle of its own, so dropping the last
/// `Store` releases the database's lock at once) and who to tell once everything written before
/// the request is durable.
type FlushWaiter = (sled::Db, tokio::sync::oneshot::Sender<Result<(), String>>);

/// Starts the thread that flushes for every batch of waiting requests. It ends when the last
/// `Store` handle is dropped.
fn start_flusher() -> std::sync::mpsc::Sender<FlushWaiter> {
    let (tx, rx) = std::sync::mpsc::channel::<FlushWaiter>();
    std::thread::Builder::new()
        .name("store-flusher".into())
        .spawn(move || {
            while let Ok((db, first)) = rx.recv() {
                let mut waiters = vec![first];
                waiters.extend(rx.try_iter().map(|(_, waiter)| waiter));
                let result = db.flush().map(|_| ()).map_err(|e| e.to_string());
                drop(db);
                for waiter in waiters {
                    let _ = waiter.send(result.clone());
                }
            }
        })
        .expect("spawning the store's flusher thread");
    tx
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("files", &self.files).finish()
    }
}

/// The on-disk layout version, checked at open so an old binary never misreads newer data.
const SCHEMA_VERSION: u64 = 1;

impl Store {
    /// Opens (creating if needed) the store in `data_dir`: sled in `data_dir/db`, blobs in
    /// `data_dir/blobs`. Fails with a clear message if another process holds the database.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir)?;
        let db = sled::Config::new()
            .path(data_dir.join("db"))
            // We flush explicitly after each mutation; the background flush only bounds the
            // work a flush has to do.
            .flush_every_ms(Some(200))
            .open()?;
        let tree = |name: &str| db.open_tree(name);
        let store = Store {
            meta: tree("meta")?,
            users: tree("users")?,
            users_by_name: tree("users_by_name")?,
            clients: tree("clients")?,
            tokens: tree("tokens")?,
            nodes: tree("nodes")?,
            point_types: tree("point_types")?,
            blobs: tree("blobs")?,
            plans: tree("plans")?,
            jobs: tree("jobs")?,
            jobs_by_id: tree("jobs_by_id")?,
            active_jobs: tree("active_jobs")?,
            nodes_by_name: tree("nodes_by_name")?,
            node_secrets: tree("node_secrets")?,
            logs: tree("logs")?,
            refs: tree("refs")?,
            files: BlobFiles::open(&data_dir.join("blobs"))?,
            flusher: start_flusher(),
            db,
        };
        store.check_schema_version()?;
        Ok(store)
    }

    fn check_schema_version(&self) -> Result<(), StoreError> {
        match self.meta.get("schema_version")? {
            None => {
                self.meta
                    .insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
                Ok(())
            }
            Some(v) if decode_u64(&v) == Some(SCHEMA_VERSION) => Ok(()),
            Some(v) => Err(StoreError::Corrupt {
                tree: "meta",
                cause: format!(
                    "data written by schema version {:?}, this build reads {SCHEMA_VERSION}",
                    decode_u64(&v)
                ),
            }),
        }
    }

    /// Makes every change so far durable.
    ///
    /// Design: sled 0.34's `flush_async` deadlocks under concurrent callers (spacejam/sled#1308),
    /// so flushes go to one thread that coalesces every request waiting into a single blocking
    /// `flush` (group commit): under load, many writers share one fsync.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        self.flusher
            .send((self.db.clone(), done_tx))
            .map_err(|_| StoreError::Io(std::io::Error::other("the store's flusher stopped")))?;
        match done_rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Io(std::io::Error::other(message))),
            Err(_) => Err(StoreError::Io(std::io::Error::other(
                "the store's flusher stopped",
            ))),
        }
    }

    /// Makes every change so far durable, blocking the thread (for the admin commands).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// Removes blob files that no record refers to: leftovers of uploads or replacements that
    /// were interrupted. Call once at start, before serving.
    pub fn sweep_orphan_blob_files(&self) -> Result<usize, StoreError> {
        let referenced = self.referenced_blob_files()?;
        Ok(self.files.sweep(&referenced)?)
    }

    // ----- users -----

    /// Creates a user. Fails with a conflict if the name is taken.
    pub fn create_user(
        &self,
        username: &str,
        password_hash: String,
        admin: bool,
    ) -> Result<User, StoreError> {
        validate_username(username)?;
        let user = (&self.meta, &self.users, &self.users_by_name).transaction(
            |(meta, users, by_name)| {
                if by_name.get(username)?.is_some() {
                    return abort(StoreError::Conflict(format!(
                        "user {username:?} already exists"
                    )));
                }
                let user = User {
                    id: next_id(meta, "seq/users")?,
                    username: username.to_owned(),
                    password_hash: password_hash.clone(),
                    admin,
                    created_at: crate::model::Timestamp::now(),
                };
                users.insert(&user.id.to_be_bytes(), encode(&user))?;
                by_name.insert(username, &user.id.to_be_bytes())?;
                Ok(user)
            },
        )?;
        Ok(user)
    }

    /// The user with this id.
    pub fn user(&self, id: u64) -> Result<Option<User>, StoreError> {
        get(&self.users, "users", &id.to_be_bytes())
    }

    /// The user with this name.
    pub fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        match self.users_by_name.get(username)? {
            Some(id) => match decode_u64(&id) {
                Some(id) => self.user(id),
                None => Err(corrupt("users_by_name", "id is not 8 bytes")),
            },
            None => Ok(None),
        }
    }

    /// Every user, by id.
    pub fn list_users(&self) -> Result<Vec<User>, StoreError> {
        list(&self.users, "users")
    }

    // ----- OAuth clients -----

    /// Registers a client. Fails with a conflict if the id is taken.
    pub fn create_client(&self, client: &OAuthClient) -> Result<(), StoreError> {
        let previous = self.clients.compare_and_swap(
            &client.client_id,
            None::<&[u8]>,
            Some(encode(client)),
        )?;
        previous.map_err(|_| {
            StoreError::Conflict(format!("client {:?} already exists", client.client_id))
        })
    }

    /// The client with this id.
    pub fn client(&self, client_id: &str) -> Result<Option<OAuthClient>, StoreError> {
        get(&self.clients, "clients", client_id.as_bytes())
    }

    // ----- tokens -----

    /// Stores a token record under the token's SHA-256.
    pub fn put_token(
        &self,
        token_sha256: &[u8; 32],
        record: &TokenRecord,
    ) -> Result<(), StoreError> {
        self.tokens.insert(token_sha256, encode(record))?;
        Ok(())
    }

    /// The record of the token with this SHA-256.
    pub fn token(&self, token_sha256: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        get(&self.tokens, "tokens", token_sha256)
    }

    /// Removes a token, returning its record if it existed. Used to make refresh tokens
    /// single-use: of two concurrent refreshes, only one gets the record.
    pub fn take_token(&self, token_sha256: &[u8; 32]) -> Result<Option<TokenRecord>, StoreError> {
        match self.tokens.remove(token_sha256)? {
            Some(bytes) => decode(&bytes, "tokens").map(Some),
            None => Ok(None),
        }
    }

    /// Drops every token that expired before `now` (Unix seconds). Returns how many.
    pub fn purge_expired_tokens(&self, now: i64) -> Result<usize, StoreError> {
        let mut purged = 0;
        for entry in self.tokens.iter() {
            let (key, value) = entry?;
            let expired = decode::<TokenRecord>(&value, "tokens")
                .map(|t| t.expires_at <= now)
                .unwrap_or(true);
            if expired {
                self.tokens.remove(key)?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}

fn validate_username(username: &str) -> Result<(), StoreError> {
    let ok = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "username",
            "must be 1 to 64 characters of letters, digits, '.', '_', '-' or '@'",
        ))
    }
}

// ----- encoding helpers shared by the record families -----

pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing our own plain structs to JSON cannot fail (string keys, no NaN floats).
    serde_json::to_vec(value).expect("records serialize to JSON")
}

pub(crate) fn decode<T: DeserializeOwned>(
    bytes: &[u8],
    tree: &'static str,
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(tree, e))
}

pub(crate) fn corrupt(tree: &'static str, cause: impl ToString) -> StoreError {
    StoreError::Corrupt {
        tree,
        cause: cause.to_string(),
    }
}

pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    bytes.try_into().ok().map(u64::from_be_bytes)
}

fn get<T: DeserializeOwned>(
    tree: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    tree.get(key)?.map(|v| decode(&v, name)).transpose()
}

fn list<T: DeserializeOwned>(tree: &sled::Tree, name: &'static str) -> Result<Vec<T>, StoreError> {
    tree.iter().values().map(|v| decode(&v?, name)).collect()
}

/// Aborts a transaction with `error`.
pub(crate) fn abort<T>(error: StoreError) -> TxResult<T> {
    Err(ConflictableTransactionError::Abort(error))
}

/// Reads and decodes a record inside a transaction.
pub(crate) fn tx_get<T: DeserializeOwned>(
    tree: &TransactionalTree,
    name: &'static str,
    key: &[u8],
) -> TxResult<Option<T>> {
    match tree.get(key)? {
        Some(bytes) => match decode(&bytes, name) {
            Ok(v) => Ok(Some(v)),
            Err(e) => abort(e),
        },
        None => Ok(None),
    }
}

/// Adds `delta` to the reference count `key` in `refs` and returns the new count.
pub(crate) fn add_ref(refs: &TransactionalTree, key: &str, delta: i64) -> TxResult<u64> {
    let current = match refs.get(key)? {
        Some(v) => decode_u64(&v).unwrap_or(0),
        None => 0,
    };
    let next = (current as i64 + delta).max(0) as u64;
    if next == 0 {
        refs.remove(key)?;
    } else {
        refs.insert(key, &next.to_be_bytes())?;
    }
    Ok(next)
}

/// Reads the reference count `key` in `refs`.
pub(crate) fn ref_count(refs: &TransactionalTree, key: &str) -> TxResult<u64> {
    Ok(refs.get(key)?.and_then(|v| decode_u64(&v)).unwrap_or(0))
}

/// Increments the counter `key` in `meta` and returns its new value (the first id is 1).
pub(crate) fn next_id(meta: &TransactionalTree, key: &str) -> TxResult<u64> {
    let current = match meta.get(key)? {
        Some(v) => match decode_u64(&v) {
            Some(n) => n,
            None => return abort(corrupt("meta", format!("counter {key} is not 8 bytes"))),
        },
        None => 0,
    };
    let next = current + 1;
    meta.insert(key, &next.to_be_bytes())?;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_unique_and_ids_monotonic() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store.create_user("alice", "h".into(), true).unwrap();
        let b = store.create_user("bob", "h".into(), false).unwrap();
        assert_eq!((a.id, b.id), (1, 2));
        assert!(matches!(
            store.create_user("alice", "h".into(), false),
            Err(StoreError::Conflict(_))
        ));
        assert!(matches!(
            store.create_user("bad name", "h".into(), false),
            Err(StoreError::Invalid { .. })
        ));
        assert_eq!(store.user_by_name("bob").unwrap().unwrap().id, 2);
    }

    #[test]
    fn reopening_keeps_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.create_user("x", "h".into(), false).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.user_by_name("x").unwrap().is_some());
    }
}
