//! Test helpers: a tiny blob server, a job context on a temp dir, bounded waits.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Multipart, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest, Sha256};
use sortie_shared::{Event, PlanFile};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::blobs::BlobClient;
use crate::job::JobContext;
use crate::journal::Journal;
use crate::link::LinkState;

/// The token the test server accepts.
pub const TOKEN: &str = "test-token";

/// What the blob server holds and saw.
#[derive(Default)]
pub struct Blobs {
    /// Blob id → content.
    pub stored: HashMap<u64, Vec<u8>>,
    /// How many GETs each blob got.
    pub downloads: HashMap<u64, usize>,
    /// Uploads: (field, file name, content).
    pub uploads: Vec<(String, String, Vec<u8>)>,
}

/// A running blob server.
pub struct BlobServer {
    /// `http://127.0.0.1:<port>/gosd`.
    pub base: String,
    /// Its state.
    pub blobs: Arc<Mutex<Blobs>>,
}

type Shared = Arc<Mutex<Blobs>>;

fn authorized(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

async fn download(
    State(blobs): State<Shared>,
    UrlPath(id): UrlPath<u64>,
    headers: HeaderMap,
) -> Result<Vec<u8>, StatusCode> {
    if !authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut blobs = blobs.lock().unwrap();
    *blobs.downloads.entry(id).or_default() += 1;
    blobs.stored.get(&id).cloned().ok_or(StatusCode::NOT_FOUND)
}

async fn upload(
    State(blobs): State<Shared>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Result<Json<BTreeMap<String, String>>, StatusCode> {
    if !authorized(&headers) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let mut answer = BTreeMap::new();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|_| StatusCode::BAD_REQUEST)?
    {
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().unwrap_or_default().to_owned();
        let bytes = field.bytes().await.map_err(|_| StatusCode::BAD_REQUEST)?;
        let mut blobs = blobs.lock().unwrap();
        let id = 1000 + blobs.uploads.len() as u64;
        blobs
            .uploads
            .push((name.clone(), file_name, bytes.to_vec()));
        answer.insert(name, id.to_string());
    }
    Ok(Json(answer))
}

impl BlobServer {
    /// Starts a server on a free port.
    pub async fn start() -> BlobServer {
        let blobs: Shared = Arc::default();
        let api = Router::new()
            .route("/api/v2/blobs/{id}", get(download))
            .route("/api/v2/blobs/", post(upload))
            .with_state(blobs.clone());
        let app = Router::new().nest("/gosd", api);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        BlobServer {
            base: format!("http://{addr}/gosd"),
            blobs,
        }
    }

    /// Stores `content` as blob `id` and describes it as a plan file.
    pub fn add(&self, id: u64, role: &str, name: &str, content: &[u8]) -> PlanFile {
        self.blobs
            .lock()
            .unwrap()
            .stored
            .insert(id, content.to_vec());
        PlanFile {
            role: role.into(),
            blob_id: id,
            name: name.into(),
            size: content.len() as u64,
            sha256: hex::encode(Sha256::digest(content)),
        }
    }

    /// How many times blob `id` was downloaded.
    pub fn downloads(&self, id: u64) -> usize {
        self.blobs
            .lock()
            .unwrap()
            .downloads
            .get(&id)
            .copied()
            .unwrap_or(0)
    }
}

/// A job context on `dir` talking to `base`, with the link held in `link` (up or down as the
/// test sets it).
pub fn context(dir: &Path, base: &str, link: watch::Receiver<LinkState>) -> JobContext {
    let journal = Journal::open(&dir.join("journal"), 1).unwrap();
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    JobContext {
        node_id: 1,
        journal,
        blobs: BlobClient::new(base, TOKEN).unwrap(),
        data_dir: dir.canonicalize().unwrap(),
        kill_grace: Duration::from_millis(500),
        safe_state_command: None,
        safe_state: Vec::new(),
        hardware: None,
        hal_socket: None,
        default_timeout: None,
        retention: Duration::from_secs(3600),
        link,
    }
}

/// A link that stays down (for tests that do not use MQTT).
pub fn link_down() -> (watch::Sender<LinkState>, watch::Receiver<LinkState>) {
    watch::channel(LinkState::Down {
        since: Instant::now(),
    })
}

/// Waits up to 10 s for `check` to return `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The outbox's events once one of them satisfies `done`.
pub async fn outbox_until(journal: &Journal, done: impl Fn(&Event) -> bool) -> Vec<Event> {
    eventually("an outbox event", || async {
        let events: Vec<Event> = journal
            .outbox_after(None, 10_000)
            .await
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        events.iter().any(&done).then_some(events)
    })
    .await
}

/// True if any process that is not a zombie is in process group `pgid` (Linux `/proc`).
/// Zombies count as gone: in a container, nobody may reap them.
pub fn group_has_live_process(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return crate::process::group_alive(pgid);
    };
    entries.flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // pid (comm) state ppid pgrp ...; comm may contain spaces, so split after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}
