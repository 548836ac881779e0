//! [`TimestampRewriter`]: one continuous timeline out of a source that starts over.

use bytes::Bytes;

use super::tag::Tag;

/// Rewrites tag timestamps so that a stream made of several passes — a file looped forever,
/// or a source process restarted after it died — plays as one: each pass continues one frame
/// interval after the last tag forwarded, and the first pass starts at 0.
///
/// ```text
///  input   pass 1: 0 40 … 9960 │ pass 2: 0 40 … 9960    │ pass 3: 0 …
///  output          0 40 … 9960 │      10000 10040 … 19960│ 20000 …
/// ```
///
/// Within a pass the offset is fixed, but output never goes backwards: a tag older than the
/// last output gets the last output's timestamp. The timeline is kept in 64 bits and written
/// modulo 2³² ms, FLV's range (about 49.7 days), wrapping like RTMP timestamps do.
///
/// Each pass repeats the start-up tags (metadata, sequence headers) and a file pass ends with
/// an end-of-sequence marker. [`should_forward`](TimestampRewriter::should_forward) drops the
/// markers and any start-up tag identical to the one last forwarded; a changed one (a restarted
/// encoder with new settings) goes through, because the decoder needs it.
#[derive(Debug, Clone)]
pub struct TimestampRewriter {
    frame_interval_ms: u32,
    /// Added to the input timestamps of this pass; `None` until its first tag.
    offset: Option<i64>,
    /// Latest output timestamp, unwrapped.
    last_out: Option<i64>,
    /// The last start-up tag forwarded of each kind, by [`startup_slot`].
    startup: [Option<Bytes>; 3],
}

impl TimestampRewriter {
    /// A rewriter whose passes start `frame_interval_ms` after the previous pass's last tag
    /// (40 for 25 fps).
    pub fn new(frame_interval_ms: u32) -> TimestampRewriter {
        TimestampRewriter {
            frame_interval_ms,
            offset: None,
            last_out: None,
            startup: Default::default(),
        }
    }

    /// The next tag starts a new pass (the file looped, or a new source process started): its
    /// timestamp and those after it are rebased to continue after the last output.
    pub fn start_pass(&mut self) {
        self.offset = None;
    }

    /// Whether `tag` should go out: `false` for end-of-sequence markers and for metadata or a
    /// sequence header identical to the last one forwarded.
    pub fn should_forward(&self, tag: &Tag) -> bool {
        if tag.is_video_end_of_sequence() {
            return false;
        }
        startup_slot(tag).is_none_or(|slot| self.startup[slot].as_ref() != Some(&tag.data))
    }

    /// `tag` with its timestamp rewritten, or `None` if it should not be forwarded
    /// ([`should_forward`](TimestampRewriter::should_forward)). Every tag must pass through
    /// here in order, dropped ones too: the first tag of a pass sets the pass's offset.
    pub fn rewrite(&mut self, mut tag: Tag) -> Option<Tag> {
        let input = i64::from(tag.timestamp_ms);
        let start = self
            .last_out
            .map_or(0, |last| last + i64::from(self.frame_interval_ms));
        let offset = *self.offset.get_or_insert(start - input);
        if !self.should_forward(&tag) {
            return None;
        }
        let out = (input + offset).max(self.last_out.unwrap_or(0));
        self.last_out = Some(out);
        // Truncation is the documented wrap to FLV's 32-bit range.
        tag.timestamp_ms = out as u32;
        if let Some(slot) = startup_slot(&tag) {
            self.startup[slot] = Some(tag.data.clone());
        }
        Some(tag)
    }
}

/// Which of [`TimestampRewriter::startup`] remembers tags like `tag`, if any.
fn startup_slot(tag: &Tag) -> Option<usize> {
    [
        tag.is_metadata(),
        tag.is_video_sequence_header(),
        tag.is_audio_sequence_header(),
    ]
    .iter()
    .position(|&is| is)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::TagKind;

    fn frame(ts: u32) -> Tag {
        Tag::new(TagKind::Video, ts, vec![0x27, 1, 0, 0, 0])
    }

    fn seq(ts: u32, config: u8) -> Tag {
        Tag::new(TagKind::Video, ts, vec![0x17, 0, 0, 0, 0, config])
    }

    fn run(rewriter: &mut TimestampRewriter, tags: Vec<Tag>) -> Vec<(u32, bool)> {
        tags.into_iter()
            .filter_map(|t| rewriter.rewrite(t))
            .map(|t| (t.timestamp_ms, t.is_video_sequence_header()))
            .collect()
    }

    #[test]
    fn a_restarted_source_continues_the_timeline() {
        let mut rewriter = TimestampRewriter::new(40);
        // The first source starts mid-way; the first pass is rebased to 0.
        let out = run(&mut rewriter, vec![seq(5000, 1), frame(5000), frame(5040)]);
        assert_eq!(out, [(0, true), (0, false), (40, false)]);

        // The restarted source has the same settings: its sequence header is dropped.
        rewriter.start_pass();
        let out = run(&mut rewriter, vec![seq(0, 1), frame(0), frame(40)]);
        assert_eq!(out, [(80, false), (120, false)]);

        // New settings: the new sequence header goes through.
        rewriter.start_pass();
        let out = run(&mut rewriter, vec![seq(0, 2), frame(0)]);
        assert_eq!(out, [(160, true), (160, false)]);
    }

    #[test]
    fn output_never_goes_backwards_within_a_pass() {
        let mut rewriter = TimestampRewriter::new(40);
        let out = run(
            &mut rewriter,
            vec![frame(100), frame(140), frame(120), frame(180)],
        );
        assert_eq!(out, [(0, false), (40, false), (40, false), (80, false)]);
    }

    #[test]
    fn timestamps_wrap_at_32_bits() {
        let mut rewriter = TimestampRewriter::new(40);
        run(&mut rewriter, vec![frame(0), frame(u32::MAX - 39)]);
        rewriter.start_pass();
        assert_eq!(
            run(&mut rewriter, vec![frame(0), frame(40)]),
            [(0, false), (40, false)]
        );
        assert_eq!(rewriter.last_out, Some(1 << 32 | 40));
    }
}
