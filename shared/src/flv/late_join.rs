//! [`LateJoinCache`]: what a viewer joining a running stream must receive first.

use super::tag::{FlvHeader, Tag};

/// Remembers, from a live stream, what a viewer that joins now needs before the live tags:
/// the header, the latest `onMetaData`, the latest video and audio sequence headers, and the
/// current GOP (every tag since the latest video keyframe).
///
/// ```text
///  stream:   meta vseq aseq K0 a P a P │ K1 a P a P ─── viewer joins here ──▶ live tags
///  start:    meta vseq aseq K1 a P a P                                      ▶ live tags
/// ```
///
/// The GOP is bounded by bytes. When it grows past the bound the cache drops it and keeps only
/// the start-up tags until the next keyframe. A new video or audio sequence header that differs
/// from the last also drops the GOP: its frames belong to the old decoder configuration.
#[derive(Debug, Clone)]
pub struct LateJoinCache {
    max_gop_bytes: usize,
    header: Option<FlvHeader>,
    metadata: Option<Tag>,
    video_sequence_header: Option<Tag>,
    audio_sequence_header: Option<Tag>,
    /// Starts with a keyframe, or is empty (none seen yet, or dropped).
    gop: Vec<Tag>,
    /// [`Tag::len_on_wire`] summed over `gop`.
    gop_bytes: usize,
}

impl LateJoinCache {
    /// An empty cache that keeps a GOP of at most `max_gop_bytes` ([`Tag::len_on_wire`]).
    pub fn new(max_gop_bytes: usize) -> LateJoinCache {
        LateJoinCache {
            max_gop_bytes,
            header: None,
            metadata: None,
            video_sequence_header: None,
            audio_sequence_header: None,
            gop: Vec::new(),
            gop_bytes: 0,
        }
    }

    /// Remembers the stream's header.
    pub fn set_header(&mut self, header: FlvHeader) {
        self.header = Some(header);
    }

    /// The stream's header, once known: what a new viewer receives before
    /// [`start_tags`](LateJoinCache::start_tags).
    pub fn header(&self) -> Option<FlvHeader> {
        self.header
    }

    /// Forgets everything, for a stream that starts over (a new source, a new header).
    pub fn clear(&mut self) {
        *self = LateJoinCache::new(self.max_gop_bytes);
    }

    /// Takes in the stream's next tag.
    pub fn push(&mut self, tag: &Tag) {
        let config = if tag.is_metadata() {
            // Metadata describes the stream, not the frames: it never invalidates the GOP.
            self.metadata = Some(tag.clone());
            return;
        } else if tag.is_video_sequence_header() {
            &mut self.video_sequence_header
        } else if tag.is_audio_sequence_header() {
            &mut self.audio_sequence_header
        } else {
            return self.push_frame(tag);
        };
        if config.as_ref().is_some_and(|old| old.data != tag.data) {
            self.gop.clear();
            self.gop_bytes = 0;
        }
        *config = Some(tag.clone());
    }

    fn push_frame(&mut self, tag: &Tag) {
        if tag.is_keyframe() {
            self.gop.clear();
            self.gop_bytes = 0;
        } else if self.gop.is_empty() {
            return; // Useless until the next keyframe.
        }
        self.gop_bytes += tag.len_on_wire();
        self.gop.push(tag.clone());
        if self.gop_bytes > self.max_gop_bytes {
            self.gop.clear();
            self.gop_bytes = 0;
        }
    }

    /// What a new viewer must receive first, after the header: the metadata, the sequence
    /// headers, then the GOP from its keyframe. The start-up tags take the keyframe's
    /// timestamp, so the viewer's timeline starts there and never goes backwards.
    ///
    /// Without a cached GOP (no keyframe yet, or it outgrew the bound) the list holds no video
    /// frame: the caller must then hold back the viewer's video until the next keyframe.
    pub fn start_tags(&self) -> Vec<Tag> {
        let start_ts = self.gop.first().map(|key| key.timestamp_ms);
        let config = [
            &self.metadata,
            &self.video_sequence_header,
            &self.audio_sequence_header,
        ];
        config
            .into_iter()
            .flatten()
            .map(|tag| Tag {
                timestamp_ms: start_ts.unwrap_or(tag.timestamp_ms),
                ..tag.clone()
            })
            .chain(self.gop.iter().cloned())
            .collect()
    }

    /// Whether a GOP is cached, i.e. [`start_tags`](LateJoinCache::start_tags) holds a keyframe.
    pub fn has_keyframe(&self) -> bool {
        !self.gop.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::TagKind;

    fn meta() -> Tag {
        Tag::new(TagKind::Script, 0, b"\x02\x00\x0aonMetaData\x08".to_vec())
    }
    fn vseq(config: u8) -> Tag {
        Tag::new(TagKind::Video, 0, vec![0x17, 0, 0, 0, 0, config])
    }
    fn aseq() -> Tag {
        Tag::new(TagKind::Audio, 0, vec![0xAF, 0, 0x12, 0x10])
    }
    fn key(ts: u32) -> Tag {
        Tag::new(TagKind::Video, ts, vec![0x17, 1, 0, 0, 0, 0xAA])
    }
    fn inter(ts: u32) -> Tag {
        Tag::new(TagKind::Video, ts, vec![0x27, 1, 0, 0, 0, 0xBB])
    }
    fn audio(ts: u32) -> Tag {
        Tag::new(TagKind::Audio, ts, vec![0xAF, 1, 0xCC])
    }

    fn cache_after(max_gop_bytes: usize, tags: &[Tag]) -> LateJoinCache {
        let mut cache = LateJoinCache::new(max_gop_bytes);
        cache.set_header(FlvHeader {
            has_audio: true,
            has_video: true,
        });
        tags.iter().for_each(|t| cache.push(t));
        cache
    }

    #[test]
    fn a_late_joiner_starts_with_config_then_the_current_gop() {
        let stream = [
            meta(),
            vseq(1),
            aseq(),
            key(0),
            audio(20),
            inter(40),
            key(1000),
        ];
        let mut cache = cache_after(1 << 20, &stream);
        cache.push(&audio(1020));
        cache.push(&inter(1040));

        let start = cache.start_tags();
        let expected = [
            Tag {
                timestamp_ms: 1000,
                ..meta()
            },
            Tag {
                timestamp_ms: 1000,
                ..vseq(1)
            },
            Tag {
                timestamp_ms: 1000,
                ..aseq()
            },
            key(1000),
            audio(1020),
            inter(1040),
        ];
        assert_eq!(start, expected);
        assert_eq!(
            cache.header(),
            Some(FlvHeader {
                has_audio: true,
                has_video: true
            })
        );
        assert!(cache.has_keyframe());
    }

    #[test]
    fn before_the_first_keyframe_only_config_is_sent() {
        let cache = cache_after(1 << 20, &[meta(), vseq(1), inter(0), audio(20)]);
        assert_eq!(cache.start_tags(), [meta(), vseq(1)]);
        assert!(!cache.has_keyframe());
    }

    #[test]
    fn an_oversized_gop_is_dropped_until_the_next_keyframe() {
        let gop_of_3 = key(0).len_on_wire() + 2 * inter(0).len_on_wire();
        let mut cache = cache_after(gop_of_3, &[vseq(1), key(0), inter(40), inter(80)]);
        assert_eq!(cache.start_tags().len(), 4);

        cache.push(&inter(120));
        assert_eq!(cache.start_tags(), [vseq(1)]);
        cache.push(&inter(160));
        assert_eq!(cache.start_tags(), [vseq(1)]);

        cache.push(&key(200));
        assert_eq!(
            cache.start_tags(),
            [
                Tag {
                    timestamp_ms: 200,
                    ..vseq(1)
                },
                key(200)
            ]
        );
    }

    #[test]
    fn a_new_decoder_configuration_drops_the_gop() {
        let mut cache = cache_after(1 << 20, &[vseq(1), key(0), inter(40)]);
        cache.push(&vseq(1)); // A repeat changes nothing.
        assert_eq!(cache.start_tags().len(), 3);
        cache.push(&vseq(2));
        assert_eq!(cache.start_tags(), [vseq(2)]);
        cache.push(&inter(80)); // Still waiting for a keyframe.
        assert_eq!(cache.start_tags(), [vseq(2)]);

        cache.clear();
        assert_eq!((cache.header(), cache.start_tags()), (None, vec![]));
    }
}
