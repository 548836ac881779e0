//! One run of a video point's source, from start to stop or failure, under one `stream_id`.
//!
//! ```text
//!  source ──bytes──▶ FlvReader ──tags──▶ TagQueue (bounded; drops inter frames when full)
//!  (sh -c … | file | demo, paced)                  │
//!                                                  ▼
//!                 publisher: whole tags ─▶ StreamChunk{stream_id, has_audio, has_video}
//!                            ─▶ link Up? seal + publish (QoS 0) : drop, then wait for a keyframe
//! ```
//!
//! The session ends when its source does (exit, malformed FLV, a stall): the point task then
//! reports the failure and starts a new session, with a new `stream_id`, after its backoff.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use sortie_shared::flv::{FlvHeader, FlvItem, FlvReader, Tag, TagKind, TagQueue};
use sortie_shared::{MediaTag, PointName, StreamChunk, MAX_ENVELOPE_BYTES};
use tokio::io::AsyncReadExt;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::clip::{malformed, play, Clip, DEMO_CLIP, MAX_CLIP_BYTES};
use super::command::{describe_exit, CommandProcess};
use super::stream::StreamSender;
use crate::config::VideoSource;
use crate::link::LinkState;

/// Tags above this many queued bytes are dropped (inter frames first): a few seconds of a
/// drone camera's video.
pub const QUEUE_SOFT_BYTES: usize = 1024 * 1024;
/// The queue never holds more than this.
pub const QUEUE_HARD_BYTES: usize = 4 * 1024 * 1024;
/// A chunk's tags take at most this many bytes (a single larger tag goes alone).
pub const MAX_CHUNK_BYTES: usize = 128 * 1024;
/// A tag too large for one envelope is dropped.
const MAX_TAG_BYTES: usize = MAX_ENVELOPE_BYTES - 8 * 1024;
/// How long handing one chunk to the client may take before it is dropped.
const SEND_LIMIT: Duration = Duration::from_secs(2);
/// A command source that sends nothing for this long is restarted.
pub const STALL_LIMIT: Duration = Duration::from_secs(20);

/// What a session needs.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    /// The point.
    pub point: PointName,
    /// Where its FLV comes from.
    pub source: VideoSource,
    /// Seals and publishes chunks.
    pub streams: StreamSender,
    /// The broker link.
    pub link: watch::Receiver<LinkState>,
    /// The working directory of a command source.
    pub work_dir: PathBuf,
    /// Variables added to a command source's environment.
    pub env: Vec<(String, String)>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    /// Why, for the health event.
    pub reason: String,
    /// How long it produced tags before it ended (zero if it never did).
    pub healthy_for: Duration,
}

/// A running session.
#[derive(Debug)]
pub struct Session {
    stop: CancellationToken,
    /// Fires when the source produced its first tag.
    started: Option<oneshot::Receiver<()>>,
    task: JoinHandle<SessionEnd>,
}

/// What a running session did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// Its source produced the first tag.
    Started,
    /// It ended by itself.
    Ended(SessionEnd),
}

impl Session {
    /// Starts a session with a fresh random `stream_id`.
    pub fn start(setup: SessionSetup) -> Session {
        let stop = CancellationToken::new();
        let (started_tx, started) = oneshot::channel();
        let task = tokio::spawn(run(setup, rand::random(), started_tx, stop.clone()));
        Session {
            stop,
            started: Some(started),
            task,
        }
    }

    /// The next thing the session does: start producing (once), then end.
    pub async fn next_event(&mut self) -> SessionEvent {
        if let Some(started) = self.started.as_mut() {
            let produced = started.await.is_ok();
            self.started = None;
            if produced {
                return SessionEvent::Started;
            }
        }
        SessionEvent::Ended(self.ended().await)
    }

    /// Waits for the session to end by itself.
    async fn ended(&mut self) -> SessionEnd {
        match (&mut self.task).await {
            Ok(end) => end,
            Err(e) => SessionEnd {
                reason: format!("the stream task failed: {e}"),
                healthy_for: Duration::ZERO,
            },
        }
    }

    /// Stops the session (its source process is stopped) and waits for it.
    pub async fn stop(mut self) {
        self.stop.cancel();
        let _ = self.ended().await;
    }
}

/// Tags between the source and the publisher.
struct Pipe {
    state: Mutex<PipeState>,
    ready: Notify,
}

struct PipeState {
    queue: TagQueue,
    /// A tag taken from the queue that did not fit in the last chunk: the next one starts with it.
    carry: Option<Tag>,
    header: FlvHeader,
}

impl Pipe {
    fn push(&self, tag: Tag) {
        self.state.lock().expect("pipe lock").queue.push(tag);
        self.ready.notify_one();
    }

    fn set_header(&self, header: FlvHeader) {
        self.state.lock().expect("pipe lock").header = header;
    }

    /// Whole tags up to [`MAX_CHUNK_BYTES`] (at least one), and the header, once there are any.
    async fn take(&self) -> (Vec<Tag>, FlvHeader) {
        loop {
            {
                let mut state = self.state.lock().expect("pipe lock");
                let mut tags = Vec::new();
                let mut bytes = 0;
                while let Some(tag) = state.carry.take().or_else(|| state.queue.pop()) {
                    if !tags.is_empty() && bytes + tag.data.len() > MAX_CHUNK_BYTES {
                        state.carry = Some(tag);
                        break;
                    }
                    bytes += tag.data.len();
                    tags.push(tag);
                }
                if !tags.is_empty() {
                    return (tags, state.header);
                }
            }
            self.ready.notified().await;
        }
    }
}

async fn run(
    setup: SessionSetup,
    stream_id: u64,
    started: oneshot::Sender<()>,
    stop: CancellationToken,
) -> SessionEnd {
    let pipe = Pipe {
        state: Mutex::new(PipeState {
            queue: TagQueue::new(QUEUE_SOFT_BYTES, QUEUE_HARD_BYTES),
            carry: None,
            header: FlvHeader {
                has_audio: false,
                has_video: true,
            },
        }),
        ready: Notify::new(),
    };
    let mut first = FirstTag {
        started: Some(started),
        at: None,
    };
    tracing::info!(point = %setup.point, stream_id, "video stream starting");
    let reason = tokio::select! {
        reason = produce(&setup, &pipe, &mut first, &stop) => reason,
        never = publish(&setup, &pipe, stream_id) => match never {},
    };
    SessionEnd {
        reason,
        healthy_for: first.at.map_or(Duration::ZERO, |at| at.elapsed()),
    }
}

/// Notes the first tag of the session.
struct FirstTag {
    started: Option<oneshot::Sender<()>>,
    at: Option<Instant>,
}

impl FirstTag {
    fn seen(&mut self) {
        if let Some(started) = self.started.take() {
            self.at = Some(Instant::now());
            let _ = started.send(());
        }
    }
}

/// Runs the source until it fails or `stop`; returns why it ended.
async fn produce(
    setup: &SessionSetup,
    pipe: &Pipe,
    first: &mut FirstTag,
    stop: &CancellationToken,
) -> String {
    let clip = match &setup.source {
        VideoSource::Command(command) => {
            return produce_command(setup, command, pipe, first, stop).await
        }
        VideoSource::Demo => Clip::parse(DEMO_CLIP),
        VideoSource::File(path) => read_clip(path).await,
    };
    let clip = match clip {
        Ok(clip) => clip,
        Err(reason) => return reason,
    };
    pipe.set_header(clip.header);
    tokio::select! {
        _ = stop.cancelled() => "stopped".to_owned(),
        never = play(&clip, |tag| { first.seen(); pipe.push(tag) }) => match never {},
    }
}

async fn read_clip(path: &std::path::Path) -> Result<Clip, String> {
    let size = tokio::fs::metadata(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if size > MAX_CLIP_BYTES {
        return Err(format!(
            "{} has {size} bytes, more than the {MAX_CLIP_BYTES} a looped file may have",
            path.display()
        ));
    }
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Clip::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

async fn produce_command(
    setup: &SessionSetup,
    command: &str,
    pipe: &Pipe,
    first: &mut FirstTag,
    stop: &CancellationToken,
) -> String {
    let point = setup.point.as_str();
    let (mut process, mut stdout) =
        match CommandProcess::spawn(point, command, &setup.work_dir, &setup.env) {
            Ok(started) => started,
            Err(e) => return format!("could not start: {e}"),
        };
    let mut reader = FlvReader::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut last_data = Instant::now();
    let failure = loop {
        let read = tokio::select! {
            _ = stop.cancelled() => {
                process.stop().await;
                return "stopped".to_owned();
            }
            _ = tokio::time::sleep_until(last_data + STALL_LIMIT) => {
                break Some(format!("sent no video for {} s", STALL_LIMIT.as_secs()));
            }
            read = stdout.read(&mut buffer) => read,
        };
        let n = match read {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) => break Some(format!("reading its output: {e}")),
        };
        reader.push(&buffer[..n]);
        let mut bad = None;
        while let Some(item) = reader.next_item() {
            match item {
                Ok(FlvItem::Header(header)) => pipe.set_header(header),
                Ok(FlvItem::Tag(tag)) => {
                    last_data = Instant::now();
                    first.seen();
                    pipe.push(tag);
                }
                Err(e) => {
                    bad = Some(malformed(&e));
                    break;
                }
            }
        }
        if let Some(bad) = bad {
            tracing::error!(%point, error = %bad, "video source");
            break Some(bad);
        }
    };
    match failure {
        Some(reason) => {
            process.stop().await;
            reason
        }
        None => {
            // Its output ended: the process exited (or is about to).
            let exit = tokio::select! {
                _ = stop.cancelled() => {
                    process.stop().await;
                    return "stopped".to_owned();
                }
                exit = process.wait() => exit,
            };
            match reader.finish() {
                Ok(()) => describe_exit(&exit),
                // Too short to tell (`printf garbage`), or cut off mid-tag: say so too.
                Err(e) => format!("{}; {}", describe_exit(&exit), malformed(&e)),
            }
        }
    }
}

/// Packs queued tags into chunks and publishes them, forever.
async fn publish(setup: &SessionSetup, pipe: &Pipe, stream_id: u64) -> std::convert::Infallible {
    let topic = setup.streams.topic(&setup.point);
    // After a dropped chunk, inter frames refer to frames the receiver never got: skip them
    // until the next keyframe (metadata, sequence headers and audio still go).
    let mut skip_to_keyframe = false;
    // Tags dropped since the link last took one (logged when sending resumes).
    let mut dropped = 0u64;
    loop {
        let (tags, header) = pipe.take().await;
        let mut media = Vec::with_capacity(tags.len());
        for tag in tags {
            if tag.is_keyframe() {
                skip_to_keyframe = false;
            }
            let inter =
                tag.kind == TagKind::Video && !tag.is_keyframe() && !tag.is_video_sequence_header();
            if skip_to_keyframe && inter {
                dropped += 1;
                continue;
            }
            if tag.data.len() > MAX_TAG_BYTES {
                tracing::warn!(point = %setup.point, bytes = tag.data.len(), "video tag too large for one message; dropped");
                skip_to_keyframe = true;
                dropped += 1;
                continue;
            }
            media.push(MediaTag {
                kind: tag.kind.type_byte(),
                timestamp_ms: tag.timestamp_ms,
                data: tag.data.to_vec(),
            });
        }
        if media.is_empty() {
            continue;
        }
        let count = media.len() as u64;
        let chunk = StreamChunk {
            point: setup.point.as_str().to_owned(),
            stream_id,
            has_audio: header.has_audio,
            has_video: header.has_video,
            tags: media,
        };
        let client = match &*setup.link.borrow() {
            LinkState::Up { client, .. } => Some(client.clone()),
            LinkState::Down { .. } => None,
        };
        let sent = match client {
            Some(client) => matches!(
                tokio::time::timeout(SEND_LIMIT, setup.streams.send(&client, &topic, chunk)).await,
                Ok(Ok(()))
            ),
            None => false,
        };
        if sent {
            if dropped > 0 {
                tracing::info!(point = %setup.point, dropped, "video flows again; tags were dropped meanwhile");
                dropped = 0;
            }
        } else {
            if dropped == 0 {
                tracing::debug!(point = %setup.point, "dropping video: the link is down or slow");
            }
            skip_to_keyframe = true;
            dropped += count;
        }
    }
}
