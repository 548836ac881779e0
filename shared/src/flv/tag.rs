//! The FLV data model ([`FlvHeader`], [`Tag`]), what a tag's first bytes say about it, and the
//! writer.

use bytes::Bytes;

/// Length of the file header, which is also the only header length FLV version 1 allows.
pub const HEADER_LEN: usize = 9;

/// Length of a tag's header, before its data.
pub const TAG_HEADER_LEN: usize = 11;

/// Length of the PreviousTagSize field after the file header and after every tag.
pub(crate) const PREV_SIZE_LEN: usize = 4;

/// Largest tag data the 24-bit DataSize field can express.
pub const MAX_DATA_SIZE: usize = 0xFF_FFFF;

/// Legacy video codec ID of H.264/AVC ([`Tag::video_codec_id`]).
pub const CODEC_AVC: u8 = 7;

/// Legacy video codec ID of H.265/HEVC, the widespread pre-enhanced-RTMP extension.
pub const CODEC_HEVC: u8 = 12;

/// Audio format of AAC, whose second byte is the AAC packet type.
const SOUND_FORMAT_AAC: u8 = 10;

/// Audio format marking an enhanced-RTMP header: the low nibble is the packet type.
const SOUND_FORMAT_EX_HEADER: u8 = 9;

/// Bit 7 of a video tag's first byte: an enhanced-RTMP header (FourCC instead of codec ID).
const VIDEO_EX_HEADER: u8 = 0x80;

/// Frame type of a keyframe (seekable frame), in legacy and enhanced headers alike.
const FRAME_TYPE_KEY: u8 = 1;

/// The file header: which kinds of tags the stream announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlvHeader {
    /// Flag 0x04: the stream has audio tags.
    pub has_audio: bool,
    /// Flag 0x01: the stream has video tags.
    pub has_video: bool,
}

/// What a tag carries, from its type byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagKind {
    /// Type 8: one audio frame or the audio sequence header.
    Audio,
    /// Type 9: one video frame, a sequence header or an end-of-sequence marker.
    Video,
    /// Type 18: AMF0 script data, such as `onMetaData`.
    Script,
}

impl TagKind {
    /// The tag type byte (8, 9 or 18).
    pub fn type_byte(self) -> u8 {
        match self {
            TagKind::Audio => 8,
            TagKind::Video => 9,
            TagKind::Script => 18,
        }
    }

    /// The kind for a tag type byte, `None` for anything else (including the filter bit).
    pub fn from_type_byte(byte: u8) -> Option<TagKind> {
        match byte {
            8 => Some(TagKind::Audio),
            9 => Some(TagKind::Video),
            18 => Some(TagKind::Script),
            _ => None,
        }
    }
}

/// One FLV tag. Cloning is cheap (the data is shared), so a stream can be fanned out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    /// Audio, video or script.
    pub kind: TagKind,
    /// Decode timestamp in milliseconds (24 bits plus the extension byte on the wire).
    pub timestamp_ms: u32,
    /// The tag's data: the codec headers and payload, without the 11-byte tag header.
    pub data: Bytes,
}

/// What a video tag's packet type says it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoPacket {
    SequenceHeader,
    Frame,
    EndOfSequence,
    Other,
}

impl Tag {
    /// A tag of `kind` at `timestamp_ms` carrying `data`.
    pub fn new(kind: TagKind, timestamp_ms: u32, data: impl Into<Bytes>) -> Tag {
        Tag {
            kind,
            timestamp_ms,
            data: data.into(),
        }
    }

    /// A video tag whose frame type is 1 (keyframe) carrying a coded frame. Sequence headers
    /// and end-of-sequence markers also have frame type 1 but are not frames, so they are not
    /// keyframes here: a keyframe is where a decoder (or a GOP) can start.
    pub fn is_keyframe(&self) -> bool {
        self.video_frame_type() == Some(FRAME_TYPE_KEY)
            && self.video_packet() == Some(VideoPacket::Frame)
    }

    /// A video sequence header (decoder configuration): AVC or HEVC packet type 0, or an
    /// enhanced-RTMP `SequenceStart`.
    pub fn is_video_sequence_header(&self) -> bool {
        self.video_packet() == Some(VideoPacket::SequenceHeader)
    }

    /// A video end-of-sequence marker (AVC/HEVC packet type 2, enhanced `SequenceEnd`); ffmpeg
    /// ends every H.264 FLV file with one.
    pub fn is_video_end_of_sequence(&self) -> bool {
        self.video_packet() == Some(VideoPacket::EndOfSequence)
    }

    /// An audio sequence header: AAC packet type 0, or an enhanced-RTMP `SequenceStart`.
    pub fn is_audio_sequence_header(&self) -> bool {
        if self.kind != TagKind::Audio {
            return false;
        }
        match self.data.first().map(|b| (b >> 4, b & 0x0F)) {
            Some((SOUND_FORMAT_AAC, _)) => self.data.get(1) == Some(&0),
            Some((SOUND_FORMAT_EX_HEADER, packet_type)) => packet_type == 0,
            _ => false,
        }
    }

    /// A script tag whose first AMF0 value is the string `onMetaData`.
    pub fn is_metadata(&self) -> bool {
        // AMF0 string marker 0x02, u16be length 10, "onMetaData".
        self.kind == TagKind::Script && self.data.starts_with(b"\x02\x00\x0aonMetaData")
    }

    /// The legacy 4-bit video codec ID ([`CODEC_AVC`] is 7) of a video tag; `None` for other
    /// tags, an empty one, or an enhanced-RTMP header (see [`Tag::video_fourcc`]).
    pub fn video_codec_id(&self) -> Option<u8> {
        match self.video_first_byte()? {
            b if b & VIDEO_EX_HEADER != 0 => None,
            b => Some(b & 0x0F),
        }
    }

    /// The FourCC (`*b"avc1"`, `*b"hvc1"`, `*b"av01"`, …) of an enhanced-RTMP video tag;
    /// `None` for other tags and legacy headers.
    pub fn video_fourcc(&self) -> Option<[u8; 4]> {
        if self.video_first_byte()? & VIDEO_EX_HEADER == 0 {
            return None;
        }
        self.data.get(1..5)?.try_into().ok()
    }

    /// Bytes this tag takes in a stream: tag header, data and the PreviousTagSize after it.
    /// The unit of every byte bound in this module.
    pub fn len_on_wire(&self) -> usize {
        TAG_HEADER_LEN + self.data.len() + PREV_SIZE_LEN
    }

    fn video_first_byte(&self) -> Option<u8> {
        match self.kind {
            TagKind::Video => self.data.first().copied(),
            _ => None,
        }
    }

    /// Frame type: 1 key, 2 inter, 3 disposable inter, 4 generated key, 5 info/command.
    fn video_frame_type(&self) -> Option<u8> {
        let b = self.video_first_byte()?;
        // Legacy: the high nibble. Enhanced: three bits below the ex-header bit. Legacy values
        // are below 8, so masking serves both.
        Some((b >> 4) & 0x07)
    }

    fn video_packet(&self) -> Option<VideoPacket> {
        let b = self.video_first_byte()?;
        let packet = if b & VIDEO_EX_HEADER != 0 {
            match b & 0x0F {
                0 | 5 => VideoPacket::SequenceHeader, // SequenceStart, MPEG2TSSequenceStart
                1 | 3 => VideoPacket::Frame,          // CodedFrames, CodedFramesX
                2 => VideoPacket::EndOfSequence,
                _ => VideoPacket::Other, // Metadata, Multitrack, ModEx: not frames we understand
            }
        } else if matches!(b & 0x0F, CODEC_AVC | CODEC_HEVC) {
            match self.data.get(1) {
                Some(0) => VideoPacket::SequenceHeader,
                Some(1) => VideoPacket::Frame,
                Some(2) => VideoPacket::EndOfSequence,
                _ => VideoPacket::Other,
            }
        } else {
            // Older codecs (Sorenson, VP6, …) have no packet type: every tag is a frame.
            VideoPacket::Frame
        };
        Some(packet)
    }
}

/// Appends the 9-byte file header and PreviousTagSize0 (13 bytes) to `out`.
pub fn write_header(header: &FlvHeader, out: &mut Vec<u8>) {
    let flags = (u8::from(header.has_audio) << 2) | u8::from(header.has_video);
    out.extend_from_slice(b"FLV\x01");
    out.push(flags);
    out.extend_from_slice(&(HEADER_LEN as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
}

/// Appends `tag` to `out` as it goes on the wire ([`Tag::len_on_wire`] bytes): tag header,
/// data, PreviousTagSize. The stream ID is written as 0.
///
/// # Panics
/// If the data is longer than [`MAX_DATA_SIZE`], which FLV cannot express. Tags from an
/// [`FlvReader`](super::FlvReader) never are.
pub fn write_tag(tag: &Tag, out: &mut Vec<u8>) {
    let size = tag.data.len();
    assert!(
        size <= MAX_DATA_SIZE,
        "FLV tag data of {size} bytes exceeds {MAX_DATA_SIZE}"
    );
    let ts = tag.timestamp_ms.to_be_bytes();
    out.reserve(tag.len_on_wire());
    out.push(tag.kind.type_byte());
    out.extend_from_slice(&(size as u32).to_be_bytes()[1..]);
    // Lower 24 bits, then the upper 8 in the extension byte.
    out.extend_from_slice(&[ts[1], ts[2], ts[3], ts[0]]);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&tag.data);
    out.extend_from_slice(&((TAG_HEADER_LEN + size) as u32).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn video(data: &[u8]) -> Tag {
        Tag::new(TagKind::Video, 0, data.to_vec())
    }

    #[test]
    fn classifies_avc_video_tags() {
        let seq = video(&[0x17, 0, 0, 0, 0, 1]);
        let key = video(&[0x17, 1, 0, 0, 0]);
        let inter = video(&[0x27, 1, 0, 0, 0]);
        let end = video(&[0x17, 2, 0, 0, 0]);
        assert!(seq.is_video_sequence_header() && !seq.is_keyframe());
        assert!(key.is_keyframe() && !key.is_video_sequence_header());
        assert!(!inter.is_keyframe() && !inter.is_video_sequence_header());
        assert!(end.is_video_end_of_sequence() && !end.is_keyframe());
        assert_eq!(key.video_codec_id(), Some(CODEC_AVC));
        assert_eq!(key.video_fourcc(), None);
    }

    #[test]
    fn classifies_enhanced_rtmp_video_tags() {
        // ex-header | frame type 1 | packet type, then the FourCC.
        let seq = video(b"\x90hvc1");
        let key = video(b"\x91hvc1\0\0\0");
        let key_x = video(b"\x93av01");
        let inter = video(b"\xa3hvc1");
        assert!(seq.is_video_sequence_header());
        assert!(key.is_keyframe() && key_x.is_keyframe() && !inter.is_keyframe());
        assert_eq!(key.video_fourcc(), Some(*b"hvc1"));
        assert_eq!(key.video_codec_id(), None);
        assert_eq!(video(b"\x91hv").video_fourcc(), None);
    }

    #[test]
    fn classifies_audio_and_script_tags() {
        let aac_seq = Tag::new(TagKind::Audio, 0, vec![0xAF, 0, 0x12, 0x10]);
        let aac_raw = Tag::new(TagKind::Audio, 0, vec![0xAF, 1, 0x21]);
        let mp3 = Tag::new(TagKind::Audio, 0, vec![0x2F, 0]);
        assert!(aac_seq.is_audio_sequence_header());
        assert!(!aac_raw.is_audio_sequence_header() && !mp3.is_audio_sequence_header());

        let meta = Tag::new(TagKind::Script, 0, b"\x02\x00\x0aonMetaData\x08".to_vec());
        let cue = Tag::new(TagKind::Script, 0, b"\x02\x00\x0aonCuePoint\x08".to_vec());
        assert!(meta.is_metadata() && !cue.is_metadata());
        assert!(!Tag::new(TagKind::Video, 0, meta.data.clone()).is_metadata());
    }

    #[test]
    fn empty_tags_are_nothing_in_particular() {
        for kind in [TagKind::Audio, TagKind::Video, TagKind::Script] {
            let tag = Tag::new(kind, 0, Vec::new());
            assert!(!tag.is_keyframe() && !tag.is_video_sequence_header());
            assert!(!tag.is_audio_sequence_header() && !tag.is_metadata());
            assert_eq!(tag.video_codec_id(), None);
        }
    }

    #[test]
    fn writes_header_and_tag_bytes() {
        let mut out = Vec::new();
        write_header(
            &FlvHeader {
                has_audio: true,
                has_video: true,
            },
            &mut out,
        );
        assert_eq!(out, b"FLV\x01\x05\0\0\0\x09\0\0\0\0");

        out.clear();
        let tag = Tag::new(TagKind::Video, 0x0123_4567, vec![0x17, 1]);
        write_tag(&tag, &mut out);
        assert_eq!(out, b"\x09\0\0\x02\x23\x45\x67\x01\0\0\0\x17\x01\0\0\0\x0d");
        assert_eq!(out.len(), tag.len_on_wire());
    }
}
