//! FLV, the container drones stream their live video in: parsing, writing, and the stream
//! plumbing both binaries need. Pure and I/O-free: bytes in, tags out.
//!
//! ```text
//!  stream = header ‖ u32be 0 ‖ { tag ‖ u32be PreviousTagSize (= 11 + DataSize) }*
//!
//!  header, 9 bytes:
//!   ┌───────┬───────────┬───────────────────────────────┬───────────────────────┐
//!   │ "FLV" │ version 1 │ flags: 0x04 audio, 0x01 video │ u32be header length 9 │
//!   └───────┴───────────┴───────────────────────────────┴───────────────────────┘
//!  tag, 11-byte header then DataSize bytes:
//!   ┌───────────────────────┬────────────────┬─────────────────┬──────────┬─────────┬──────┐
//!   │ 0, 0, filter, type(5) │ u24be DataSize │ u24be time (ms) │ time>>24 │ u24be 0 │ data │
//!   └───────────────────────┴────────────────┴─────────────────┴──────────┴─────────┴──────┘
//!   type 8 audio, 9 video, 18 script (AMF0: "onMetaData", …); filter = encrypted (rejected)
//!
//!  video data: frame type(4) │ codec id(4), AVC/HEVC packet type (0 seq header, 1 frame, 2 end), …
//!    enhanced: 1 │ frame type(3) │ packet type(4), FourCC ("avc1", "hvc1", "av01", …), …
//!  audio data: format(4) │ rate(2) │ size(1) │ stereo(1), AAC packet type (0 seq header, 1 raw), …
//!  frame type 1 = keyframe, 2 = inter frame; codec id 7 = AVC; stream id always 0
//! ```
//!
//! A decoder needs the sequence headers (codec configuration) before any frame, and a video
//! decoder must start at a keyframe: every later frame of its group of pictures (GOP) refers
//! back to it. The pieces here are built around those two rules:
//!
//! - [`Tag`], [`FlvHeader`], [`write_header`], [`write_tag`]: the data model and the writer.
//! - [`FlvReader`]: an incremental parser for bytes arriving in arbitrary chunks from a pipe;
//!   it validates as it goes and never panics on any input ([`FlvError`]).
//! - [`TimestampRewriter`]: keeps timestamps monotone when a file source loops or a source
//!   process restarts, and drops the repeated sequence headers of later passes.
//! - [`LateJoinCache`]: what a viewer joining a running stream must receive first (the
//!   coordinator fans one stream out to many viewers).
//! - [`TagQueue`]: a byte-bounded queue for a slow uplink that drops only what no later frame
//!   depends on (the agent).

mod error;
mod late_join;
mod queue;
mod reader;
mod tag;
mod timestamps;

#[cfg(test)]
mod tests;

pub use error::FlvError;
pub use late_join::LateJoinCache;
pub use queue::TagQueue;
pub use reader::{FlvItem, FlvReader, MAX_TAG_BYTES};
pub use tag::{
    write_header, write_tag, FlvHeader, Tag, TagKind, CODEC_AVC, CODEC_HEVC, HEADER_LEN,
    MAX_DATA_SIZE, TAG_HEADER_LEN,
};
pub use timestamps::TimestampRewriter;
