//! [`FlvReader`]: an incremental, validating parser for an FLV byte stream.

use bytes::Bytes;

use super::error::FlvError;

use super::tag::{
    FlvHeader, Tag, TagKind, HEADER_LEN, MAX_DATA_SIZE, PREV_SIZE_LEN, TAG_HEADER_LEN,
};

/// Default limit on a tag's data size: far above any frame a drone sends (a 1080p keyframe
/// is well under 1 MiB), far below what would hurt if garbage claimed it.
pub const MAX_TAG_BYTES: usize = 8 * 1024 * 1024;

/// One parsed piece of a stream: the header comes first, then tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlvItem {
    /// The file header, always the first item.
    Header(FlvHeader),
    /// One tag, its PreviousTagSize not yet seen (it is checked before the next tag).
    Tag(Tag),
}

/// What the reader expects next.
#[derive(Debug)]
enum State {
    Header,
    PrevTagSize {
        expected: u32,
    },
    Tag,
    /// Poisoned: the stream is broken and the caller must restart its source.
    Failed(FlvError),
}

/// Incremental FLV parser: [`push`](FlvReader::push) bytes as they arrive, in chunks of any
/// size, then call [`next_item`](FlvReader::next_item) until it returns `None`.
///
/// ```
/// # use sortie_shared::flv::{FlvItem, FlvReader};
/// let mut reader = FlvReader::new();
/// reader.push(b"FLV\x01\x01\0\0\0\x09\0\0\0\0");
/// assert!(matches!(reader.next_item(), Some(Ok(FlvItem::Header(_)))));
/// assert!(reader.next_item().is_none()); // needs more bytes
/// ```
///
/// It checks the signature, version and header length, every PreviousTagSize, each tag's type
/// (audio, video, script; no encryption) and size (at most the limit given at construction).
/// The first violation poisons the reader: it returns that error forever and discards what is
/// pushed after it. It never panics, whatever the input.
///
/// Design: the buffer holds at most one incomplete tag plus one push. Tags are copied out of it
/// (a few hundred KB/s of video), so a tag's memory is exactly its data and byte bounds
/// downstream ([`TagQueue`](super::TagQueue), [`LateJoinCache`](super::LateJoinCache)) hold.
#[derive(Debug)]
pub struct FlvReader {
    /// Unparsed bytes are `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Stream offset of `buf[pos]`.
    offset: u64,
    state: State,
    max_tag_bytes: usize,
}

impl Default for FlvReader {
    fn default() -> Self {
        FlvReader::new()
    }
}

impl FlvReader {
    /// A reader for a stream that starts with the FLV header, with the [`MAX_TAG_BYTES`] limit.
    pub fn new() -> FlvReader {
        FlvReader::with_max_tag_bytes(MAX_TAG_BYTES)
    }

    /// A reader that rejects tags with more than `max_tag_bytes` of data (at most
    /// [`MAX_DATA_SIZE`], the most FLV can express).
    pub fn with_max_tag_bytes(max_tag_bytes: usize) -> FlvReader {
        FlvReader {
            buf: Vec::new(),
            pos: 0,
            offset: 0,
            state: State::Header,
            max_tag_bytes: max_tag_bytes.min(MAX_DATA_SIZE),
        }
    }

    /// Most unparsed bytes the reader holds: one incomplete largest tag, plus a push as large.
    pub fn buffer_limit(&self) -> usize {
        2 * (TAG_HEADER_LEN + self.max_tag_bytes + PREV_SIZE_LEN)
    }

    /// Unparsed bytes held, at most [`buffer_limit`](FlvReader::buffer_limit).
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Appends bytes from the stream. A push that would take the buffer past
    /// [`buffer_limit`](FlvReader::buffer_limit) poisons the reader with
    /// [`FlvError::BufferFull`]; draining with `next_item` after each push never does.
    pub fn push(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Failed(_)) {
            return;
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
        let buffered = self.buf.len() + bytes.len();
        if buffered > self.buffer_limit() {
            let limit = self.buffer_limit();
            self.fail(FlvError::BufferFull {
                offset: self.offset,
                buffered,
                limit,
            });
            return;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next header or tag, `None` if more bytes are needed, or the error that poisoned
    /// the reader (again on every call).
    pub fn next_item(&mut self) -> Option<Result<FlvItem, FlvError>> {
        if let State::Failed(e) = &self.state {
            return Some(Err(e.clone()));
        }
        match self.parse_next() {
            Ok(item) => item.map(Ok),
            Err(e) => Some(Err(self.fail(e))),
        }
    }

    /// Call at the end of the stream: `Ok` if it ended cleanly after a tag (or its
    /// PreviousTagSize), the poisoning error, or [`FlvError::Truncated`].
    pub fn finish(&self) -> Result<(), FlvError> {
        let pending = self.buffered_len();
        let what = match self.state {
            State::Failed(ref e) => return Err(e.clone()),
            State::Header => "the file header",
            State::PrevTagSize { .. } | State::Tag if pending == 0 => return Ok(()),
            State::PrevTagSize { .. } => "a PreviousTagSize",
            State::Tag => "a tag",
        };
        Err(FlvError::Truncated {
            offset: self.offset + pending as u64,
            what,
        })
    }

    fn parse_next(&mut self) -> Result<Option<FlvItem>, FlvError> {
        match self.state {
            State::Header => return self.read_header(),
            State::PrevTagSize { expected } => {
                let Some(field) = self.peek(PREV_SIZE_LEN) else {
                    return Ok(None);
                };
                let found = u32::from_be_bytes([field[0], field[1], field[2], field[3]]);
                if found != expected {
                    let offset = self.offset;
                    return Err(FlvError::PreviousTagSizeMismatch {
                        offset,
                        expected,
                        found,
                    });
                }
                self.consume(PREV_SIZE_LEN);
                self.state = State::Tag;
            }
            State::Tag | State::Failed(_) => {}
        }
        self.read_tag()
    }

    fn read_header(&mut self) -> Result<Option<FlvItem>, FlvError> {
        let Some(h) = self.peek(HEADER_LEN) else {
            return Ok(None);
        };
        let found = [h[0], h[1], h[2]];
        let (version, flags) = (h[3], h[4]);
        let length = u32::from_be_bytes([h[5], h[6], h[7], h[8]]);
        let offset = self.offset;
        if &found != b"FLV" {
            return Err(FlvError::BadSignature { offset, found });
        } else if version != 1 {
            return Err(FlvError::UnsupportedVersion {
                offset: offset + 3,
                version,
            });
        } else if length != HEADER_LEN as u32 {
            return Err(FlvError::BadHeaderLength {
                offset: offset + 5,
                length,
            });
        }
        self.consume(HEADER_LEN);
        self.state = State::PrevTagSize { expected: 0 };
        // Reserved flag bits are ignored: they say nothing about the tags that follow.
        let header = FlvHeader {
            has_audio: flags & 0x04 != 0,
            has_video: flags & 0x01 != 0,
        };
        Ok(Some(FlvItem::Header(header)))
    }

    fn read_tag(&mut self) -> Result<Option<FlvItem>, FlvError> {
        let Some(h) = self.peek(TAG_HEADER_LEN) else {
            return Ok(None);
        };
        let type_byte = h[0];
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp_ms = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let (offset, max) = (self.offset, self.max_tag_bytes);
        let kind = match TagKind::from_type_byte(type_byte) {
            Some(_) if size > max => return Err(FlvError::TagTooLarge { offset, size, max }),
            Some(kind) => kind,
            None if type_byte & 0x20 != 0 => {
                return Err(FlvError::EncryptedTag { offset, type_byte })
            }
            None => return Err(FlvError::UnknownTagType { offset, type_byte }),
        };
        let Some(whole) = self.peek(TAG_HEADER_LEN + size) else {
            return Ok(None);
        };
        let data = Bytes::copy_from_slice(&whole[TAG_HEADER_LEN..]);
        self.consume(TAG_HEADER_LEN + size);
        self.state = State::PrevTagSize {
            expected: (TAG_HEADER_LEN + size) as u32,
        };
        Ok(Some(FlvItem::Tag(Tag {
            kind,
            timestamp_ms,
            data,
        })))
    }

    /// The next `n` unparsed bytes, if they have all arrived.
    fn peek(&self, n: usize) -> Option<&[u8]> {
        self.buf.get(self.pos..)?.get(..n)
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    /// Poisons the reader with `e`, frees the buffer, and returns `e`.
    fn fail(&mut self, e: FlvError) -> FlvError {
        self.buf = Vec::new();
        self.pos = 0;
        self.state = State::Failed(e.clone());
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::{write_header, write_tag};

    const HEADER: &[u8] = b"FLV\x01\x01\0\0\0\x09\0\0\0\0";

    fn first_error(bytes: &[u8]) -> FlvError {
        let mut reader = FlvReader::with_max_tag_bytes(1000);
        reader.push(bytes);
        while let Some(item) = reader.next_item() {
            if let Err(e) = item {
                // Poisoned: the same error again, and pushing more changes nothing.
                reader.push(HEADER);
                assert_eq!(reader.next_item(), Some(Err(e.clone())));
                assert_eq!(reader.finish(), Err(e.clone()));
                return e;
            }
        }
        panic!("no error in {bytes:02x?}");
    }

    fn stream_with_tag(tag_bytes: &[u8]) -> Vec<u8> {
        [HEADER, tag_bytes].concat()
    }

    #[test]
    fn rejects_bad_headers_with_their_offsets() {
        let e = first_error(b"FLX\x01\x01\0\0\0\x09");
        assert_eq!(
            e,
            FlvError::BadSignature {
                offset: 0,
                found: *b"FLX"
            }
        );
        assert!(e.to_string().contains("at byte 0"), "{e}");
        let e = first_error(b"FLV\x02\x01\0\0\0\x09");
        assert_eq!(
            e,
            FlvError::UnsupportedVersion {
                offset: 3,
                version: 2
            }
        );
        let e = first_error(b"FLV\x01\x01\0\0\0\x0a");
        assert_eq!(
            e,
            FlvError::BadHeaderLength {
                offset: 5,
                length: 10
            }
        );
        let e = first_error(b"FLV\x01\x01\0\0\0\x09\0\0\0\x01");
        assert_eq!(
            e,
            FlvError::PreviousTagSizeMismatch {
                offset: 9,
                expected: 0,
                found: 1
            }
        );
    }

    #[test]
    fn rejects_bad_tags_with_their_offsets() {
        let e = first_error(&stream_with_tag(b"\x07\0\0\x01\0\0\0\0\0\0\0"));
        assert_eq!(
            e,
            FlvError::UnknownTagType {
                offset: 13,
                type_byte: 7
            }
        );
        let e = first_error(&stream_with_tag(b"\x29\0\0\x01\0\0\0\0\0\0\0"));
        assert_eq!(
            e,
            FlvError::EncryptedTag {
                offset: 13,
                type_byte: 0x29
            }
        );
        let e = first_error(&stream_with_tag(b"\x09\0\x03\xe9\0\0\0\0\0\0\0"));
        assert_eq!(
            e,
            FlvError::TagTooLarge {
                offset: 13,
                size: 1001,
                max: 1000
            }
        );

        // A one-byte tag (12 bytes with its header) followed by a wrong PreviousTagSize.
        let e = first_error(&stream_with_tag(
            b"\x09\0\0\x01\0\0\0\0\0\0\0\x17\0\0\0\x0b",
        ));
        assert_eq!(
            e,
            FlvError::PreviousTagSizeMismatch {
                offset: 25,
                expected: 12,
                found: 11
            }
        );
    }

    #[test]
    fn reads_extended_timestamps() {
        let mut bytes = Vec::new();
        write_header(&FlvHeader::default(), &mut bytes);
        write_tag(
            &Tag::new(TagKind::Audio, 0xAB12_3456, vec![0xAF, 1]),
            &mut bytes,
        );
        let (tag_end, prev_size) = bytes.split_at(bytes.len() - 4);
        let mut reader = FlvReader::new();
        reader.push(tag_end);
        assert_eq!(
            reader.next_item(),
            Some(Ok(FlvItem::Header(FlvHeader::default())))
        );
        let Some(Ok(FlvItem::Tag(tag))) = reader.next_item() else {
            panic!("no tag")
        };
        assert_eq!(tag.timestamp_ms, 0xAB12_3456);
        assert!(reader.next_item().is_none());
        assert_eq!(
            reader.finish(),
            Ok(()),
            "a missing last PreviousTagSize is tolerated"
        );

        reader.push(&prev_size[..3]);
        assert!(reader.next_item().is_none());
        let offset = bytes.len() as u64 - 1;
        assert_eq!(
            reader.finish(),
            Err(FlvError::Truncated {
                offset,
                what: "a PreviousTagSize"
            })
        );
        reader.push(&prev_size[3..]);
        assert!(reader.next_item().is_none());
        assert_eq!(reader.finish(), Ok(()));
    }

    #[test]
    fn an_undrained_buffer_is_bounded() {
        let mut reader = FlvReader::with_max_tag_bytes(100);
        let limit = reader.buffer_limit();
        reader.push(&vec![0; limit]);
        reader.push(&[0]);
        let e = reader.next_item().unwrap().unwrap_err();
        assert_eq!(
            e,
            FlvError::BufferFull {
                offset: 0,
                buffered: limit + 1,
                limit
            }
        );
        assert!(reader.buf.capacity() == 0);
    }

    #[test]
    fn truncation_is_reported_at_the_end() {
        let mut reader = FlvReader::new();
        assert_eq!(
            reader.finish(),
            Err(FlvError::Truncated {
                offset: 0,
                what: "the file header"
            })
        );
        reader.push(&stream_with_tag(b"\x09\0\0\x05"));
        assert!(matches!(reader.next_item(), Some(Ok(FlvItem::Header(_)))));
        assert!(reader.next_item().is_none());
        assert_eq!(
            reader.finish(),
            Err(FlvError::Truncated {
                offset: 17,
                what: "a tag"
            })
        );
    }
}
