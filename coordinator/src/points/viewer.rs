//! One HTTP-FLV viewer: the header, the start tags, then the live tags, with timestamps
//! rebased so every viewer's timeline starts at 0 and keeps going across source restarts.
//!
//! A viewer that cannot keep up (its TCP window is full, so the task waits on the body channel
//! while the hub's broadcast moves on) gets `Lagged`: it then drops everything until the next
//! keyframe and carries on, so it skips ahead instead of stalling or receiving broken frames.

use std::time::Duration;

use bytes::Bytes;
use sortie_shared::flv::{write_header, write_tag, FlvHeader, Tag};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::hub::{HubTag, StartPoint, Viewer};

/// How long a viewer waits for a device that has not sent anything yet.
pub const FIRST_TAG_WAIT: Duration = Duration::from_secs(20);

/// A viewer whose stream sent nothing for this long is closed (the device went away).
pub const STALL_LIMIT: Duration = Duration::from_secs(20);

/// Frame spacing assumed when splicing two source runs.
const SPLICE_GAP_MS: i64 = 40;

/// Per-viewer timestamp rebasing and keyframe gating.
#[derive(Debug)]
struct Timeline {
    stream_id: u64,
    /// out = in + offset.
    offset: i64,
    last_out: i64,
    /// Drop video frames (and audio) until a keyframe: after a lag, or before the first one.
    need_keyframe: bool,
}

impl Timeline {
    fn new(stream_id: u64, first_ts: u32, have_keyframe: bool) -> Timeline {
        Timeline {
            stream_id,
            offset: -i64::from(first_ts),
            last_out: 0,
            need_keyframe: !have_keyframe,
        }
    }

    /// The tag to send, rebased, or None to drop it.
    fn admit(&mut self, stream_id: u64, mut tag: Tag) -> Option<Tag> {
        if stream_id != self.stream_id {
            // A new encoder: continue our timeline just after where it was.
            self.stream_id = stream_id;
            self.offset = self.last_out + SPLICE_GAP_MS - i64::from(tag.timestamp_ms);
            self.need_keyframe = true;
        }
        let is_config =
            tag.is_metadata() || tag.is_video_sequence_header() || tag.is_audio_sequence_header();
        if self.need_keyframe && !is_config {
            if !tag.is_keyframe() {
                return None;
            }
            self.need_keyframe = false;
        }
        let out = (i64::from(tag.timestamp_ms) + self.offset).max(0);
        self.last_out = self.last_out.max(out);
        tag.timestamp_ms = u32::try_from(out).unwrap_or(u32::MAX);
        Some(tag)
    }
}

fn encode_start(start: &StartPoint, timeline: &mut Timeline) -> Bytes {
    let mut out = Vec::with_capacity(start.tags.iter().map(Tag::len_on_wire).sum::<usize>() + 13);
    write_header(&header_or_video(start.header), &mut out);
    for tag in &start.tags {
        if let Some(tag) = timeline.admit(start.stream_id, tag.clone()) {
            write_tag(&tag, &mut out);
        }
    }
    Bytes::from(out)
}

/// A header that announces nothing would make players ignore the stream.
fn header_or_video(header: FlvHeader) -> FlvHeader {
    if header.has_audio || header.has_video {
        header
    } else {
        FlvHeader {
            has_audio: false,
            has_video: true,
        }
    }
}

/// Feeds `tx` (the HTTP body) until the client leaves, the stream stalls, or the hub closes.
pub async fn run_viewer(mut viewer: Viewer, tx: mpsc::Sender<Bytes>) {
    let node_id = viewer.hub.node_id;
    let point = viewer.hub.point.clone();
    // Joined with a start point: the live feed begins right after it. Otherwise the start
    // point is read after the first live tag, and overlaps the feed.
    let (start, waited) = match viewer.start.take() {
        Some(start) => (start, false),
        None => {
            // The device was just asked to stream: wait for its first tag.
            match tokio::time::timeout(FIRST_TAG_WAIT, viewer.live.recv()).await {
                Ok(Ok(HubTag { stream_id, .. })) => match viewer.hub.start_point(stream_id) {
                    Some(start) => (start, true),
                    None => return,
                },
                Ok(Err(_)) | Err(_) => {
                    tracing::info!(node_id, %point, "no video arrived for a viewer; closing");
                    return;
                }
            }
        }
    };
    let first_ts = start
        .tags
        .iter()
        .find(|t| t.is_keyframe())
        .or(start.tags.first())
        .map_or(0, |t| t.timestamp_ms);
    let have_keyframe = start.tags.iter().any(Tag::is_keyframe);
    let mut timeline = Timeline::new(start.stream_id, first_ts, have_keyframe);
    let seen_in_start = start.tags.last().map(|t| t.timestamp_ms);
    if tx.send(encode_start(&start, &mut timeline)).await.is_err() {
        return;
    }
    let mut skip_until = seen_in_start.filter(|_| waited);
    loop {
        let next = tokio::time::timeout(STALL_LIMIT, viewer.live.recv()).await;
        let HubTag { stream_id, tag } = match next {
            Ok(Ok(item)) => item,
            Ok(Err(RecvError::Lagged(n))) => {
                timeline.need_keyframe = true;
                tracing::debug!(node_id, %point, skipped = n, "slow viewer skips ahead to the next keyframe");
                continue;
            }
            Ok(Err(RecvError::Closed)) => return,
            Err(_) => {
                tracing::info!(node_id, %point, "the stream stalled; closing a viewer");
                return;
            }
        };
        if let Some(until) = skip_until {
            if stream_id == timeline.stream_id && tag.timestamp_ms <= until {
                continue;
            }
            skip_until = None;
        }
        let Some(tag) = timeline.admit(stream_id, tag) else {
            continue;
        };
        let mut out = Vec::with_capacity(tag.len_on_wire());
        write_tag(&tag, &mut out);
        if tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use sortie_shared::flv::TagKind;

    use super::*;

    fn video(first: u8, ts: u32) -> Tag {
        Tag::new(TagKind::Video, ts, vec![first, 1, 0, 0, 0, 9])
    }

    #[test]
    fn timestamps_start_at_zero_and_continue_across_a_restart() {
        let mut timeline = Timeline::new(1, 1000, true);
        let out = |t: Option<Tag>| t.map(|t| t.timestamp_ms);
        assert_eq!(out(timeline.admit(1, video(0x17, 1000))), Some(0));
        assert_eq!(out(timeline.admit(1, video(0x27, 1040))), Some(40));
        // New source run at ts 5: frames wait for its keyframe, then continue at 80.
        assert_eq!(out(timeline.admit(2, video(0x27, 5))), None);
        assert_eq!(out(timeline.admit(2, video(0x17, 45))), Some(120));
        assert_eq!(out(timeline.admit(2, video(0x27, 85))), Some(160));
    }

    #[test]
    fn after_a_lag_frames_wait_for_a_keyframe_but_sequence_headers_pass() {
        let mut timeline = Timeline::new(1, 0, true);
        timeline.need_keyframe = true;
        assert!(timeline.admit(1, video(0x27, 40)).is_none());
        let seq = Tag::new(TagKind::Video, 80, vec![0x17, 0, 0, 0, 0, 1]);
        assert!(timeline.admit(1, seq).is_some());
        assert!(timeline.admit(1, video(0x17, 80)).is_some());
        assert!(timeline.admit(1, video(0x27, 120)).is_some());
    }
}
