//! [`TagQueue`]: a byte-bounded queue for a slow uplink that keeps the stream decodable.

use std::collections::VecDeque;

use super::tag::{Tag, TagKind};

/// A FIFO of tags bounded by bytes ([`Tag::len_on_wire`]), for a link that may be slower than
/// the video. When it is full it drops what no later frame depends on, so what comes out still
/// decodes, with gaps:
///
/// - Above the soft bound, a pushed video inter frame is dropped, and so is every video inter
///   frame after it until the next keyframe: they refer back to the dropped one. A pushed
///   audio frame is dropped too (on its own: audio frames do not depend on each other).
/// - Keyframes, sequence headers and script tags (metadata) are kept above the soft bound.
///   If one would take the queue past the hard bound, the oldest whole GOP goes instead: its
///   frames, from the front up to the next keyframe; the sequence headers and metadata among
///   them stay, as the receiver needs them. Only if nothing but those is left do they go
///   too, oldest first, so the queue never holds more than the hard bound.
///
/// Every dropped tag is counted ([`dropped_tags`](TagQueue::dropped_tags),
/// [`dropped_bytes`](TagQueue::dropped_bytes)).
#[derive(Debug, Clone)]
pub struct TagQueue {
    tags: VecDeque<Tag>,
    bytes: usize,
    soft_max_bytes: usize,
    hard_max_bytes: usize,
    /// A video inter frame was dropped: drop the rest of its GOP.
    skipping_to_keyframe: bool,
    dropped_tags: u64,
    dropped_bytes: u64,
}

/// How a tag may be dropped.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    /// Metadata, sequence headers: the receiver needs them whatever it dropped.
    Config,
    /// A keyframe, or another script tag: kept above the soft bound.
    Key,
    /// A video frame that depends on the one before (or an end-of-sequence marker).
    VideoInter,
    /// An audio frame: droppable on its own.
    Audio,
}

fn class(tag: &Tag) -> Class {
    if tag.is_metadata() || tag.is_video_sequence_header() || tag.is_audio_sequence_header() {
        Class::Config
    } else {
        match tag.kind {
            TagKind::Video if !tag.is_keyframe() => Class::VideoInter,
            TagKind::Audio => Class::Audio,
            TagKind::Video | TagKind::Script => Class::Key,
        }
    }
}

impl TagQueue {
    /// An empty queue that drops frames above `soft_max_bytes` and holds at most
    /// `hard_max_bytes` (raised to `soft_max_bytes` if lower).
    pub fn new(soft_max_bytes: usize, hard_max_bytes: usize) -> TagQueue {
        TagQueue {
            tags: VecDeque::new(),
            bytes: 0,
            soft_max_bytes,
            hard_max_bytes: hard_max_bytes.max(soft_max_bytes),
            skipping_to_keyframe: false,
            dropped_tags: 0,
            dropped_bytes: 0,
        }
    }

    /// Queues `tag`, or drops it (or older tags) by the rules above.
    pub fn push(&mut self, tag: Tag) {
        let over_soft = self.bytes + tag.len_on_wire() > self.soft_max_bytes;
        match class(&tag) {
            Class::VideoInter if self.skipping_to_keyframe || over_soft => {
                self.skipping_to_keyframe = true;
                return self.count_dropped(&tag);
            }
            Class::Audio if over_soft => return self.count_dropped(&tag),
            Class::Key if tag.is_keyframe() => self.skipping_to_keyframe = false,
            _ => {}
        }
        self.bytes += tag.len_on_wire();
        self.tags.push_back(tag);
        while self.bytes > self.hard_max_bytes {
            self.drop_oldest_gop();
        }
    }

    /// The oldest queued tag.
    pub fn pop(&mut self) -> Option<Tag> {
        let tag = self.tags.pop_front()?;
        self.bytes -= tag.len_on_wire();
        Some(tag)
    }

    /// Number of queued tags.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    /// Whether no tag is queued.
    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    /// Queued bytes ([`Tag::len_on_wire`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Tags dropped since the queue was made.
    pub fn dropped_tags(&self) -> u64 {
        self.dropped_tags
    }

    /// Bytes ([`Tag::len_on_wire`]) dropped since the queue was made.
    pub fn dropped_bytes(&self) -> u64 {
        self.dropped_bytes
    }

    fn count_dropped(&mut self, tag: &Tag) {
        self.dropped_tags += 1;
        self.dropped_bytes += tag.len_on_wire() as u64;
    }

    /// Drops the frames of the oldest GOP (or, with only config left, the oldest tag).
    fn drop_oldest_gop(&mut self) {
        let Some(first) = self.tags.iter().position(|t| class(t) != Class::Config) else {
            if let Some(tag) = self.pop() {
                self.count_dropped(&tag);
            }
            return;
        };
        let next_key = self.tags.iter().skip(first + 1).position(Tag::is_keyframe);
        let end = next_key.map_or(self.tags.len(), |i| first + 1 + i);
        // Nothing left to start decoding from: the frames that follow are orphans too.
        self.skipping_to_keyframe |= next_key.is_none();
        let mut index = 0;
        let (mut tags, mut bytes) = (0, 0);
        self.tags.retain(|t| {
            let drop = (first..end).contains(&index) && class(t) != Class::Config;
            index += 1;
            if drop {
                tags += 1;
                bytes += t.len_on_wire();
            }
            !drop
        });
        self.bytes -= bytes;
        self.dropped_tags += tags;
        self.dropped_bytes += bytes as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All test tags are 31 bytes on the wire (15 of framing, 16 of data).
    const T: usize = 31;

    fn tag(kind: TagKind, ts: u32, head: &[u8]) -> Tag {
        let mut data = head.to_vec();
        data.resize(16, 0);
        Tag::new(kind, ts, data)
    }
    fn key(ts: u32) -> Tag {
        tag(TagKind::Video, ts, &[0x17, 1])
    }
    fn inter(ts: u32) -> Tag {
        tag(TagKind::Video, ts, &[0x27, 1])
    }
    fn audio(ts: u32) -> Tag {
        tag(TagKind::Audio, ts, &[0xAF, 1])
    }
    fn vseq() -> Tag {
        tag(TagKind::Video, 0, &[0x17, 0])
    }
    fn meta() -> Tag {
        tag(TagKind::Script, 0, b"\x02\x00\x0aonMetaData")
    }

    fn drain(queue: &mut TagQueue) -> Vec<Tag> {
        std::iter::from_fn(|| queue.pop()).collect()
    }

    #[test]
    fn below_the_soft_bound_it_is_a_fifo() {
        let mut queue = TagQueue::new(10 * T, 20 * T);
        let tags = [meta(), vseq(), key(0), audio(20), inter(40)];
        tags.iter().for_each(|t| queue.push(t.clone()));
        assert_eq!((queue.len(), queue.bytes()), (5, 5 * T));
        assert_eq!(drain(&mut queue), tags);
        assert_eq!(
            (queue.dropped_tags(), queue.bytes(), queue.is_empty()),
            (0, 0, true)
        );
    }

    #[test]
    fn a_dropped_inter_frame_drops_the_rest_of_its_gop() {
        let mut queue = TagQueue::new(3 * T, 10 * T);
        [key(0), inter(40), inter(80), inter(120)]
            .into_iter()
            .for_each(|t| queue.push(t));
        assert_eq!((queue.len(), queue.dropped_tags()), (3, 1));

        // Room again, but inter(160) depends on the dropped inter(120).
        drain(&mut queue);
        queue.push(inter(160));
        queue.push(audio(170)); // Audio is not skipped.
        assert_eq!(queue.dropped_tags(), 2);
        assert_eq!(queue.dropped_bytes(), 2 * T as u64);

        queue.push(key(200));
        queue.push(inter(240));
        assert_eq!(drain(&mut queue), [audio(170), key(200), inter(240)]);
    }

    #[test]
    fn above_the_soft_bound_audio_goes_but_keyframes_and_config_stay() {
        let mut queue = TagQueue::new(2 * T, 10 * T);
        let tags = [
            key(0),
            inter(40),
            audio(50),
            key(80),
            vseq(),
            meta(),
            audio(90),
        ];
        tags.into_iter().for_each(|t| queue.push(t));
        assert_eq!(
            drain(&mut queue),
            [key(0), inter(40), key(80), vseq(), meta()]
        );
        assert_eq!(queue.dropped_tags(), 2);
    }

    #[test]
    fn past_the_hard_bound_the_oldest_gop_goes_but_its_config_stays() {
        let mut queue = TagQueue::new(5 * T, 5 * T);
        [vseq(), key(0), inter(40), audio(50), key(80)]
            .into_iter()
            .for_each(|t| queue.push(t));
        queue.push(key(120));
        assert_eq!(drain(&mut queue), [vseq(), key(80), key(120)]);
        assert_eq!(queue.dropped_tags(), 3);
        assert_eq!(queue.dropped_bytes(), 3 * T as u64);
    }

    #[test]
    fn a_gop_whose_keyframe_was_sent_is_dropped_from_its_first_queued_frame() {
        let mut queue = TagQueue::new(4 * T, 4 * T);
        [key(0), inter(40), inter(80), meta()]
            .into_iter()
            .for_each(|t| queue.push(t));
        queue.pop();
        queue.push(key(120));
        queue.push(key(160));
        assert_eq!(drain(&mut queue), [meta(), key(120), key(160)]);
    }

    #[test]
    fn a_keyframe_larger_than_the_hard_bound_is_dropped_with_its_gop() {
        let mut queue = TagQueue::new(T, 2 * T);
        let mut huge = key(0);
        huge.data = vec![0x17; 100].into();
        queue.push(huge);
        queue.push(inter(40));
        assert!(queue.is_empty());
        assert_eq!(queue.dropped_tags(), 2);
        queue.push(key(80));
        assert_eq!(drain(&mut queue), [key(80)]);
    }

    #[test]
    fn even_config_alone_cannot_pass_the_hard_bound() {
        let mut queue = TagQueue::new(T, 3 * T);
        (0..5).for_each(|_| queue.push(meta()));
        assert_eq!(
            (queue.len(), queue.bytes(), queue.dropped_tags()),
            (3, 3 * T, 2)
        );
    }
}
