//! Tests against a real file (the agent's demo clip, made by ffmpeg) and on random input.

use super::*;

/// 10 s of H.264 640x360 at 25 fps, a keyframe every second (`scripts/make-demo-clip.sh`).
const CLIP: &[u8] = include_bytes!("../../../agent/assets/demo-clip.flv");

/// The clip's start: the header and 8 tags (metadata, sequence header, keyframe, 5 inter
/// frames), about 12 KB.
fn clip_prefix() -> &'static [u8] {
    let (_, tags) = clip_tags();
    let len = tags[..8].iter().map(Tag::len_on_wire).sum::<usize>();
    &CLIP[..HEADER_LEN + 4 + len]
}

/// Parses `bytes` pushed `chunk` bytes at a time: the items up to the first error, the error,
/// and [`FlvReader::finish`]'s verdict if there was none.
fn parse(bytes: &[u8], chunk: usize) -> (Vec<FlvItem>, Result<(), FlvError>) {
    parse_with(FlvReader::new(), bytes, chunk)
}

fn parse_with(
    mut reader: FlvReader,
    bytes: &[u8],
    chunk: usize,
) -> (Vec<FlvItem>, Result<(), FlvError>) {
    let mut items = Vec::new();
    for piece in bytes.chunks(chunk.max(1)) {
        reader.push(piece);
        assert!(reader.buffered_len() <= reader.buffer_limit());
        while let Some(item) = reader.next_item() {
            match item {
                Ok(item) => items.push(item),
                Err(e) => return (items, Err(e)),
            }
        }
    }
    let end = reader.finish();
    (items, end)
}

fn clip_tags() -> (FlvHeader, Vec<Tag>) {
    let (items, end) = parse(CLIP, CLIP.len());
    end.expect("the clip parses to its end");
    let mut items = items.into_iter();
    let Some(FlvItem::Header(header)) = items.next() else {
        panic!("no header first")
    };
    let tags = items
        .map(|item| match item {
            FlvItem::Tag(tag) => tag,
            FlvItem::Header(_) => panic!("a second header"),
        })
        .collect();
    (header, tags)
}

fn write_stream(header: &FlvHeader, tags: &[Tag]) -> Vec<u8> {
    let mut out = Vec::new();
    write_header(header, &mut out);
    tags.iter().for_each(|tag| write_tag(tag, &mut out));
    out
}

#[test]
fn the_demo_clip_is_h264_with_a_keyframe_every_second() {
    let (header, tags) = clip_tags();
    assert_eq!(
        header,
        FlvHeader {
            has_audio: false,
            has_video: true
        }
    );
    assert!(tags[0].is_metadata());
    assert!(tags[1].is_video_sequence_header());
    assert_eq!(tags[1].video_codec_id(), Some(CODEC_AVC));
    assert!(tags.last().unwrap().is_video_end_of_sequence());

    let frames = &tags[2..tags.len() - 1];
    assert_eq!(frames.len(), 250);
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.kind, TagKind::Video);
        assert_eq!(frame.timestamp_ms, 40 * i as u32, "25 fps");
        assert_eq!(frame.is_keyframe(), i % 25 == 0, "frame {i}");
    }
    assert!(
        CLIP.len() <= 600 * 1024,
        "the clip ships in the agent binary"
    );
}

#[test]
fn writing_the_parsed_clip_reproduces_its_bytes() {
    let (header, tags) = clip_tags();
    assert_eq!(write_stream(&header, &tags), CLIP);
}

#[test]
fn any_chunking_of_a_real_file_yields_the_same_tags() {
    let prefix = clip_prefix();
    let (whole, end) = parse(prefix, prefix.len());
    assert_eq!((whole.len(), end), (9, Ok(())));
    for chunk in 1..=prefix.len() {
        assert_eq!(
            parse(prefix, chunk),
            (whole.clone(), Ok(())),
            "chunk {chunk}"
        );
    }
    // The whole clip at pipe-like sizes.
    let (whole, _) = parse(CLIP, CLIP.len());
    for chunk in [1, 2, 3, 7, 11, 13, 4095, 4096, 4097, 65_536, CLIP.len() - 1] {
        assert_eq!(parse(CLIP, chunk), (whole.clone(), Ok(())), "chunk {chunk}");
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A tag limit small enough for random sizes to exceed it.
const FUZZ_MAX_TAG_BYTES: usize = 64 * 1024;

/// Parses `bytes` in random chunks, checking that the reader stays poisoned after an error.
fn parse_randomly(bytes: &[u8], rng: &mut Rng) -> (Vec<FlvItem>, Result<(), FlvError>) {
    let mut reader = FlvReader::with_max_tag_bytes(FUZZ_MAX_TAG_BYTES);
    let (mut items, mut rest) = (Vec::new(), bytes);
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(1 + rng.below(rest.len().min(3000)));
        rest = tail;
        reader.push(piece);
        assert!(reader.buffered_len() <= reader.buffer_limit());
        while let Some(item) = reader.next_item() {
            match item {
                Ok(item) => items.push(item),
                Err(e) => {
                    reader.push(rest);
                    assert_eq!(reader.next_item(), Some(Err(e.clone())), "poisoned");
                    return (items, Err(e));
                }
            }
        }
    }
    let end = reader.finish();
    (items, end)
}

#[test]
fn mutated_and_random_input_never_panics_and_chunking_never_matters() {
    let mut rng = Rng(0x5eed_f1f0);
    let prefix = clip_prefix();
    for case in 0..3000 {
        let mut bytes = prefix[..rng.below(prefix.len() + 1)].to_vec();
        match case % 3 {
            // Flip a few bytes anywhere (most land in the header fields of a short prefix).
            0 => (0..1 + rng.below(4)).for_each(|_| {
                let len = bytes.len().max(1);
                if let Some(b) = bytes.get_mut(rng.below(len)) {
                    *b ^= 1 << rng.below(8);
                }
            }),
            // Splice in random bytes.
            1 => {
                let at = rng.below(bytes.len() + 1);
                let junk: Vec<u8> = (0..rng.below(64)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, junk);
            }
            // Random bytes after a valid header, or without one.
            _ => {
                bytes.truncate(if case % 2 == 0 { 13 } else { 0 });
                bytes.extend((0..rng.below(4000)).map(|_| rng.next() as u8));
            }
        }
        let expected = parse_with(FlvReader::with_max_tag_bytes(FUZZ_MAX_TAG_BYTES), &bytes, 1);
        assert_eq!(parse_randomly(&bytes, &mut rng), expected, "case {case}");
    }
}

#[test]
fn random_tags_round_trip() {
    let mut rng = Rng(42);
    let header = FlvHeader {
        has_audio: true,
        has_video: true,
    };
    let tags: Vec<Tag> = (0..500)
        .map(|_| {
            let kind = [TagKind::Audio, TagKind::Video, TagKind::Script][rng.below(3)];
            let data: Vec<u8> = (0..rng.below(2000)).map(|_| rng.next() as u8).collect();
            Tag::new(kind, rng.next() as u32, data)
        })
        .collect();
    let bytes = write_stream(&header, &tags);
    let (items, end) = parse_randomly(&bytes, &mut rng);
    assert_eq!(end, Ok(()));
    let expected: Vec<FlvItem> = std::iter::once(FlvItem::Header(header))
        .chain(tags.into_iter().map(FlvItem::Tag))
        .collect();
    assert_eq!(items, expected);
}

#[test]
fn a_looped_clip_plays_as_one_stream() {
    let (header, tags) = clip_tags();
    let mut rewriter = TimestampRewriter::new(40);
    let mut out = Vec::new();
    for _ in 0..3 {
        rewriter.start_pass();
        out.extend(tags.iter().cloned().filter_map(|tag| rewriter.rewrite(tag)));
    }
    assert!(out[0].is_metadata() && out[1].is_video_sequence_header());
    let frames = &out[2..];
    assert_eq!(
        frames.len(),
        750,
        "no repeated config, no end-of-sequence markers"
    );
    for (i, frame) in frames.iter().enumerate() {
        assert_eq!(frame.timestamp_ms, 40 * i as u32);
        assert_eq!(frame.is_keyframe(), i % 25 == 0);
    }
    let (items, end) = parse(&write_stream(&header, &out), usize::MAX);
    assert_eq!((items.len(), end), (out.len() + 1, Ok(())));
}

#[test]
fn a_late_joiner_of_the_clip_starts_at_the_latest_keyframe() {
    let (_, tags) = clip_tags();
    for join in (0..tags.len()).step_by(17) {
        let mut cache = LateJoinCache::new(1 << 20);
        tags[..join].iter().for_each(|t| cache.push(t));
        let viewer: Vec<Tag> = cache
            .start_tags()
            .into_iter()
            .chain(tags[join..].iter().cloned())
            .collect();

        let first_frame = viewer.iter().position(|t| !t.is_metadata()).unwrap();
        assert!(
            viewer[first_frame].is_video_sequence_header(),
            "join {join}"
        );
        assert!(viewer[first_frame + 1].is_keyframe(), "join {join}");
        assert!(viewer
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
        // The GOP joined is the latest one: a whole second at most, not the clip so far.
        if cache.has_keyframe() {
            let latest_key = tags[..join].iter().rev().find(|t| t.is_keyframe()).unwrap();
            assert_eq!(&viewer[first_frame + 1], latest_key);
        }
    }
}

#[test]
fn a_congested_uplink_still_delivers_decodable_gops() {
    let (_, tags) = clip_tags();
    let frame_index = |tag: &Tag| tag.timestamp_ms / 40;
    let mut rng = Rng(7);
    let mut queue = TagQueue::new(40 * 1024, 80 * 1024);
    let mut sent = Vec::new();
    for tag in tags.iter().cycle().take(tags.len() * 2) {
        queue.push(tag.clone());
        assert!(queue.bytes() <= 80 * 1024);
        // A link that manages half the tags, in bursts.
        for _ in 0..rng.below(2) {
            sent.extend(queue.pop());
        }
    }
    assert!(queue.dropped_tags() > 0);

    // Each sent inter frame follows, among sent video frames, the frame it was coded after.
    let video: Vec<&Tag> = sent
        .iter()
        .filter(|t| t.kind == TagKind::Video && !t.is_video_end_of_sequence())
        .collect();
    for pair in video.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        if !after.is_keyframe() && !after.is_video_sequence_header() {
            assert!(
                !before.is_video_sequence_header(),
                "an inter frame right after config"
            );
            assert_eq!(frame_index(after), frame_index(before) + 1);
        }
    }
}
