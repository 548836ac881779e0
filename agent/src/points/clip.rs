//! The `file` and `demo` video sources: a whole FLV clip, parsed once, looped forever with its
//! timestamps rewritten into one continuous timeline, and paced by those timestamps so it plays
//! in real time.

use std::time::Duration;

use sortie_shared::flv::{FlvHeader, FlvItem, FlvReader, Tag, TagKind, TimestampRewriter};
use tokio::time::Instant;

/// The clip built into the agent (see `agent/assets/README.md`).
pub static DEMO_CLIP: &[u8] = include_bytes!("../../assets/demo-clip.flv");

/// Largest clip file a `file` source loads (it is kept in memory while the point streams).
pub const MAX_CLIP_BYTES: u64 = 256 * 1024 * 1024;

/// A parsed clip.
#[derive(Debug, Clone)]
pub struct Clip {
    /// Its header.
    pub header: FlvHeader,
    /// Its tags, in order.
    pub tags: Vec<Tag>,
}

/// How a malformed stream reads in a health message.
pub fn malformed(error: &sortie_shared::flv::FlvError) -> String {
    format!("malformed FLV at byte {}: {error}", error.offset())
}

impl Clip {
    /// Parses a whole FLV file; the error is ready for a health message.
    pub fn parse(bytes: &[u8]) -> Result<Clip, String> {
        let mut reader = FlvReader::new();
        let mut header = None;
        let mut tags = Vec::new();
        for piece in bytes.chunks(64 * 1024) {
            reader.push(piece);
            while let Some(item) = reader.next_item() {
                match item.map_err(|e| malformed(&e))? {
                    FlvItem::Header(h) => header = Some(h),
                    FlvItem::Tag(tag) => tags.push(tag),
                }
            }
        }
        reader.finish().map_err(|e| malformed(&e))?;
        let header = header.ok_or("empty FLV file")?;
        if !tags.iter().any(|t| t.kind != TagKind::Script) {
            return Err("the FLV file has no audio or video tags".into());
        }
        Ok(Clip { header, tags })
    }

    /// The typical time between video frames (the most common step), 40 ms if unknown.
    pub fn frame_interval_ms(&self) -> u32 {
        let mut steps = std::collections::HashMap::<u32, usize>::new();
        let video: Vec<u32> = self
            .tags
            .iter()
            .filter(|t| t.kind == TagKind::Video)
            .map(|t| t.timestamp_ms)
            .collect();
        for pair in video.windows(2) {
            let step = pair[1].wrapping_sub(pair[0]);
            if step > 0 && step < 1000 {
                *steps.entry(step).or_default() += 1;
            }
        }
        steps
            .into_iter()
            .max_by_key(|&(step, count)| (count, std::cmp::Reverse(step)))
            .map_or(40, |(step, _)| step)
    }
}

/// Plays a clip forever: each tag, rewritten, is handed to `emit` when its time comes.
pub async fn play(clip: &Clip, mut emit: impl FnMut(Tag)) -> std::convert::Infallible {
    let mut rewriter = TimestampRewriter::new(clip.frame_interval_ms());
    let start = Instant::now();
    let mut elapsed_ms: u64 = 0;
    let mut last: Option<u32> = None;
    loop {
        rewriter.start_pass();
        for tag in &clip.tags {
            let Some(tag) = rewriter.rewrite(tag.clone()) else {
                continue;
            };
            if let Some(last) = last {
                // Timestamps wrap at 2³² ms like RTMP's; the step is what matters.
                elapsed_ms += u64::from(tag.timestamp_ms.wrapping_sub(last));
            }
            last = Some(tag.timestamp_ms);
            tokio::time::sleep_until(start + Duration::from_millis(elapsed_ms)).await;
            emit(tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_clip_parses() {
        let clip = Clip::parse(DEMO_CLIP).unwrap();
        assert!(clip.header.has_video);
        assert!(!clip.header.has_audio);
        assert!(clip.tags[0].is_metadata());
        assert!(clip.tags[1].is_video_sequence_header());
        assert!(clip.tags[2].is_keyframe());
        assert_eq!(clip.frame_interval_ms(), 40);
    }

    #[test]
    fn garbage_names_the_byte() {
        let err = Clip::parse(b"garbage garbage").unwrap_err();
        assert!(
            err.starts_with("malformed FLV at byte 0: not an FLV stream"),
            "{err}"
        );
        let err = Clip::parse(b"garbage").unwrap_err();
        assert!(err.contains("in the middle of the file header"), "{err}");
        let err = Clip::parse(&DEMO_CLIP[..1000]).unwrap_err();
        assert!(err.contains("at byte"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn loops_in_real_time_with_a_continuous_timeline() {
        let clip = Clip::parse(DEMO_CLIP).unwrap();
        let started = Instant::now();
        let mut seen: Vec<(u32, Duration)> = Vec::new();
        let played = tokio::time::timeout(Duration::from_millis(10_100), {
            let seen = &mut seen;
            play(&clip, move |tag| {
                seen.push((tag.timestamp_ms, started.elapsed()))
            })
        })
        .await;
        assert!(played.is_err(), "play never ends");
        // Each tag is emitted at its timestamp, and the second pass continues the timeline
        // without repeating the metadata and sequence header.
        for (ts, at) in &seen {
            assert_eq!(at.as_millis() as u32, *ts);
        }
        let timestamps: Vec<u32> = seen.iter().map(|(ts, _)| *ts).collect();
        assert!(timestamps.windows(2).all(|w| w[0] <= w[1]));
        assert!(timestamps.contains(&10_000) && timestamps.contains(&10_080));
        let per_pass = clip.tags.len() - 1; // without the end-of-sequence marker
        assert_eq!(seen.len(), per_pass + 3 /* 10 000, 10 040, 10 080 */);
    }
}
