//! Agent → coordinator: live video, published on `{prefix}/nodes/{node_id}/live/{point}`.
//!
//! ```text
//!  coordinator                               agent
//!      │ ── StreamStart(point, lease) ──────▶ │  start (or keep) the point's source
//!      │ ◀── Stream(chunk: FLV tags) … ────── │  QoS 0, tag-aligned, keyframes marked
//!      │ ── StreamStart(point, lease) ──────▶ │  renewed while someone watches
//!      │ ── StreamStop(point) ──────────────▶ │  last viewer gone (or the lease runs out)
//! ```
//!
//! Chunks are sealed like every private message (so nobody but the node can feed its camera),
//! but are not journaled, acknowledged or resent: live video that arrives late is useless. They
//! use their own `seq` space (see [`StreamChunk`]), apart from the node's journaled events.

use serde::{Deserialize, Serialize};

/// A run of consecutive FLV tags of one video point.
///
/// The envelope's `seq` of chunks comes from a counter of their own (the agent starts it at the
/// time in µs, like its journal), so the coordinator keeps a separate replay guard for them.
///
/// Frozen: postcard carries no field names (see [`crate::messages`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamChunk {
    /// The point's name, as in the node's points and the topic.
    pub point: String,
    /// Changes whenever the point's source (re)starts, so receivers reset what they cached
    /// (sequence headers, the current group of pictures) instead of splicing two encoders.
    pub stream_id: u64,
    /// From the source's FLV header.
    pub has_audio: bool,
    /// From the source's FLV header.
    pub has_video: bool,
    /// The tags, in stream order.
    pub tags: Vec<MediaTag>,
}

/// One FLV tag, without the 11-byte tag header and the trailing previous-tag size: the
/// receiver writes those again.
///
/// Frozen: postcard carries no field names (see [`crate::messages`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaTag {
    /// FLV tag type: 8 audio, 9 video, 18 script data.
    pub kind: u8,
    /// Presentation timestamp, milliseconds (FLV's 24 + 8 bits).
    pub timestamp_ms: u32,
    /// The tag body as in the FLV file (for video: frame type and codec in the first byte).
    pub data: Vec<u8>,
}

impl MediaTag {
    /// FLV tag type of audio.
    pub const AUDIO: u8 = 8;
    /// FLV tag type of video.
    pub const VIDEO: u8 = 9;
    /// FLV tag type of script data (`onMetaData`).
    pub const SCRIPT: u8 = 18;

    /// A video keyframe (FLV frame type 1), where a viewer can start decoding.
    pub fn is_keyframe(&self) -> bool {
        self.kind == Self::VIDEO && self.data.first().is_some_and(|b| b >> 4 == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::testing::assert_round_trip;
    use crate::Message;

    #[test]
    fn chunk_round_trips() {
        assert_round_trip(Message::Stream(StreamChunk {
            point: "camera".into(),
            stream_id: 0x1234_5678_9abc,
            has_audio: false,
            has_video: true,
            tags: vec![
                MediaTag {
                    kind: MediaTag::VIDEO,
                    timestamp_ms: 40,
                    data: vec![0x17, 0x01, 0, 0, 0, 1, 2, 3],
                },
                MediaTag {
                    kind: MediaTag::VIDEO,
                    timestamp_ms: 80,
                    data: vec![0x27, 0x01, 0, 0, 0, 4],
                },
            ],
        }));
    }

    #[test]
    fn keyframes_are_video_frame_type_one() {
        let tag = |kind, first| MediaTag {
            kind,
            timestamp_ms: 0,
            data: vec![first],
        };
        assert!(tag(MediaTag::VIDEO, 0x17).is_keyframe());
        assert!(!tag(MediaTag::VIDEO, 0x27).is_keyframe());
        assert!(!tag(MediaTag::AUDIO, 0x17).is_keyframe());
        assert!(!MediaTag {
            kind: MediaTag::VIDEO,
            timestamp_ms: 0,
            data: vec![]
        }
        .is_keyframe());
    }
}
