//! One video point's fan-out: the late-join cache and the live tags, shared by every viewer.
//!
//! ```text
//!  ingest ── StreamChunk ──▶ StreamHub ──┬─ LateJoinCache (header, metadata, seq headers, GOP)
//!                                        └─ broadcast<HubTag> ──▶ viewer, viewer, …
//! ```
//!
//! Design: the cache update and the broadcast happen under one lock, and a viewer joins (takes
//! the start tags and subscribes) under the same lock, so a viewer never misses or repeats the
//! tags between its start tags and the live ones. The broadcast never waits for a receiver: a
//! viewer that falls behind loses tags (`Lagged`) and skips to the next keyframe, and nobody
//! else notices.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use sortie_shared::flv::{FlvHeader, LateJoinCache, Tag, TagKind};
use sortie_shared::StreamChunk;
use tokio::sync::broadcast;

/// Tags a viewer may fall behind before it skips ahead: about 20 s of 25 fps video.
const LIVE_CAPACITY: usize = 512;

/// The largest group of pictures kept for late joiners.
const MAX_GOP_BYTES: usize = 16 << 20;

/// One live tag, with the source run it belongs to.
#[derive(Debug, Clone)]
pub struct HubTag {
    /// The source run ([`StreamChunk::stream_id`]); a change means a new encoder.
    pub stream_id: u64,
    /// The tag.
    pub tag: Tag,
}

/// What a joining viewer receives first.
#[derive(Debug, Clone)]
pub struct StartPoint {
    /// The source run.
    pub stream_id: u64,
    /// The stream's header.
    pub header: FlvHeader,
    /// Metadata, sequence headers and the current GOP (see [`LateJoinCache::start_tags`]).
    pub tags: Vec<Tag>,
}

/// Counters for the points API and the benchmarks.
#[derive(Debug, Clone, Copy, Default)]
pub struct HubStats {
    /// Viewers now.
    pub viewers: usize,
    /// Tags received since the coordinator started.
    pub tags_in: u64,
    /// Bytes of tag data received since the coordinator started.
    pub bytes_in: u64,
}

#[derive(Debug)]
struct HubState {
    stream_id: Option<u64>,
    cache: LateJoinCache,
    tags_in: u64,
    bytes_in: u64,
    /// When the last viewer left (None while someone watches).
    idle_since: Option<Instant>,
    /// When the device was last asked to stream.
    requested_at: Option<Instant>,
    /// A stop was sent since the last viewer left.
    stop_sent: bool,
}

/// A video point's fan-out.
#[derive(Debug)]
pub struct StreamHub {
    /// The node.
    pub node_id: u64,
    /// The point's name.
    pub point: String,
    state: Mutex<HubState>,
    live: broadcast::Sender<HubTag>,
    viewers: AtomicUsize,
}

impl StreamHub {
    /// An empty hub.
    pub fn new(node_id: u64, point: String) -> StreamHub {
        StreamHub {
            node_id,
            point,
            state: Mutex::new(HubState {
                stream_id: None,
                cache: LateJoinCache::new(MAX_GOP_BYTES),
                tags_in: 0,
                bytes_in: 0,
                idle_since: Some(Instant::now()),
                requested_at: None,
                stop_sent: true,
            }),
            live: broadcast::channel(LIVE_CAPACITY).0,
            viewers: AtomicUsize::new(0),
        }
    }

    fn state(&self) -> MutexGuard<'_, HubState> {
        // A panic while holding the lock leaves a cache that is still consistent enough to
        // serve video: recover it rather than take every viewer down.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes in a chunk from the device.
    pub fn ingest(&self, chunk: StreamChunk) {
        let mut state = self.state();
        if state.stream_id != Some(chunk.stream_id) {
            if state.stream_id.is_some() {
                tracing::info!(node_id = self.node_id, point = %self.point, "the point's source restarted");
            }
            state.cache.clear();
            state.stream_id = Some(chunk.stream_id);
            state.cache.set_header(FlvHeader {
                has_audio: chunk.has_audio,
                has_video: chunk.has_video,
            });
        }
        for media in chunk.tags {
            let Some(kind) = TagKind::from_type_byte(media.kind) else {
                tracing::debug!(
                    node_id = self.node_id,
                    kind = media.kind,
                    "dropping a tag of unknown type"
                );
                continue;
            };
            state.tags_in += 1;
            state.bytes_in += media.data.len() as u64;
            let tag = Tag::new(kind, media.timestamp_ms, media.data);
            state.cache.push(&tag);
            // No receiver is not an error: the device streams a little after the last
            // viewer left.
            let _ = self.live.send(HubTag {
                stream_id: chunk.stream_id,
                tag,
            });
        }
    }

    /// Joins as a viewer: the start point (once the stream has a header), the live feed from
    /// right after it, and a guard that counts the viewer until dropped. The second value is
    /// true for the first viewer (the device must be asked to stream).
    pub fn join(self: &Arc<Self>) -> (Viewer, bool) {
        let mut state = self.state();
        let first = self.viewers.fetch_add(1, Ordering::SeqCst) == 0;
        state.idle_since = None;
        state.stop_sent = false;
        let start = state.stream_id.and_then(|stream_id| {
            Some(StartPoint {
                stream_id,
                header: state.cache.header()?,
                tags: state.cache.start_tags(),
            })
        });
        let viewer = Viewer {
            start,
            live: self.live.subscribe(),
            hub: Arc::clone(self),
        };
        (viewer, first)
    }

    /// The start point of the current source run, if it has sent anything.
    pub fn start_point(&self, stream_id: u64) -> Option<StartPoint> {
        let state = self.state();
        (state.stream_id == Some(stream_id)).then(|| StartPoint {
            stream_id,
            header: state.cache.header().unwrap_or_default(),
            tags: state.cache.start_tags(),
        })
    }

    /// Counters.
    pub fn stats(&self) -> HubStats {
        let state = self.state();
        HubStats {
            viewers: self.viewers.load(Ordering::SeqCst),
            tags_in: state.tags_in,
            bytes_in: state.bytes_in,
        }
    }

    /// What the device should be told now, given the lease renewal period and how long an
    /// idle stream lingers; records the answer as sent.
    pub fn demand(&self, renew_every: std::time::Duration, linger: std::time::Duration) -> Demand {
        let mut state = self.state();
        let now = Instant::now();
        match state.idle_since {
            None => {
                let due = state
                    .requested_at
                    .is_none_or(|at| now.duration_since(at) >= renew_every);
                if due {
                    state.requested_at = Some(now);
                    Demand::Start
                } else {
                    Demand::Nothing
                }
            }
            Some(since) if !state.stop_sent && now.duration_since(since) >= linger => {
                state.stop_sent = true;
                state.requested_at = None;
                Demand::Stop
            }
            Some(_) => Demand::Nothing,
        }
    }

    fn leave(&self) {
        let mut state = self.state();
        if self.viewers.fetch_sub(1, Ordering::SeqCst) == 1 {
            state.idle_since = Some(Instant::now());
        }
    }
}

/// What [`StreamHub::demand`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Demand {
    /// Ask the device to stream (first viewer, or the lease needs renewing).
    Start,
    /// Tell the device nobody watches any more.
    Stop,
    /// Nothing to send.
    Nothing,
}

/// A viewer's place in a hub; leaves the hub when dropped.
#[derive(Debug)]
pub struct Viewer {
    /// Where to start, if the stream has begun.
    pub start: Option<StartPoint>,
    /// The live feed.
    pub live: broadcast::Receiver<HubTag>,
    /// The hub (to read a start point once the stream begins).
    pub hub: Arc<StreamHub>,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.hub.leave();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use sortie_shared::MediaTag;

    use super::*;

    fn chunk(stream_id: u64, tags: Vec<(u8, u32, Vec<u8>)>) -> StreamChunk {
        StreamChunk {
            point: "camera".into(),
            stream_id,
            has_audio: false,
            has_video: true,
            tags: tags
                .into_iter()
                .map(|(kind, timestamp_ms, data)| MediaTag {
                    kind,
                    timestamp_ms,
                    data,
                })
                .collect(),
        }
    }

    const SEQ: u8 = 0x17;

    fn key(ts: u32) -> (u8, u32, Vec<u8>) {
        (9, ts, vec![0x17, 1, 0, 0, 0, 0xaa])
    }

    fn inter(ts: u32) -> (u8, u32, Vec<u8>) {
        (9, ts, vec![0x27, 1, 0, 0, 0, 0xbb])
    }

    #[test]
    fn a_late_joiner_starts_at_the_latest_keyframe_after_the_sequence_header() {
        let hub = Arc::new(StreamHub::new(1, "camera".into()));
        hub.ingest(chunk(
            7,
            vec![
                (9, 0, vec![SEQ, 0, 0, 0, 0, 1]),
                key(0),
                inter(40),
                key(80),
                inter(120),
            ],
        ));
        let (viewer, first) = hub.join();
        assert!(first);
        let start = viewer.start.as_ref().unwrap();
        assert_eq!(start.stream_id, 7);
        let firsts: Vec<(bool, bool, u32)> = start
            .tags
            .iter()
            .map(|t| {
                (
                    t.is_video_sequence_header(),
                    t.is_keyframe(),
                    t.timestamp_ms,
                )
            })
            .collect();
        assert_eq!(
            firsts,
            [(true, false, 80), (false, true, 80), (false, false, 120)]
        );
        let (second, first) = hub.join();
        assert!(!first);
        assert_eq!(hub.stats().viewers, 2);
        drop(viewer);
        drop(second);
        assert_eq!(hub.stats().viewers, 0);
    }

    #[test]
    fn live_tags_follow_the_start_point_without_gap_or_repeat() {
        let hub = Arc::new(StreamHub::new(1, "camera".into()));
        hub.ingest(chunk(7, vec![key(0)]));
        let (mut viewer, _) = hub.join();
        hub.ingest(chunk(7, vec![inter(40), inter(80)]));
        let live: Vec<u32> = std::iter::from_fn(|| viewer.live.try_recv().ok())
            .map(|t| t.tag.timestamp_ms)
            .collect();
        assert_eq!(live, [40, 80]);
        assert_eq!(viewer.start.as_ref().unwrap().tags.len(), 1);
    }

    #[test]
    fn demand_starts_renews_and_stops_after_the_linger() {
        let hub = Arc::new(StreamHub::new(1, "camera".into()));
        let renew = Duration::from_millis(30);
        let linger = Duration::from_millis(30);
        assert_eq!(hub.demand(renew, linger), Demand::Nothing, "nobody watches");
        let (viewer, _) = hub.join();
        assert_eq!(hub.demand(renew, linger), Demand::Start);
        assert_eq!(hub.demand(renew, linger), Demand::Nothing, "just asked");
        std::thread::sleep(renew);
        assert_eq!(hub.demand(renew, linger), Demand::Start, "lease renewal");
        drop(viewer);
        assert_eq!(hub.demand(renew, linger), Demand::Nothing, "lingering");
        std::thread::sleep(linger);
        assert_eq!(hub.demand(renew, linger), Demand::Stop);
        assert_eq!(hub.demand(renew, linger), Demand::Nothing, "stop sent once");
    }
}
