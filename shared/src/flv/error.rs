//! [`FlvError`]: what was wrong with a stream, and where.

/// Why a byte stream is not (or no longer) valid FLV. Every variant's `offset` is where, in
/// bytes from the start of the stream, the field that was wrong begins; the other fields are
/// what was found there and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlvError {
    /// The stream does not start with `FLV`.
    #[error("not an FLV stream: signature {found:02x?} at byte {offset}, expected \"FLV\"")]
    BadSignature { offset: u64, found: [u8; 3] },
    /// The header names a version other than 1.
    #[error("unsupported FLV version {version} at byte {offset}, expected 1")]
    UnsupportedVersion { offset: u64, version: u8 },
    /// The header's length field is not 9.
    #[error("FLV header length {length} at byte {offset}, expected 9")]
    BadHeaderLength { offset: u64, length: u32 },
    /// A PreviousTagSize does not match the tag before it (0 after the header).
    #[error("PreviousTagSize {found} at byte {offset}, expected {expected} (the size of the tag before it)")]
    PreviousTagSizeMismatch {
        offset: u64,
        expected: u32,
        found: u32,
    },
    /// A tag has the filter (encryption) bit set.
    #[error(
        "tag at byte {offset} is encrypted or filtered (type byte {type_byte:#04x}), not supported"
    )]
    EncryptedTag { offset: u64, type_byte: u8 },
    /// A tag type byte other than 8, 9 or 18.
    #[error("unknown tag type byte {type_byte:#04x} at byte {offset}, expected 8 (audio), 9 (video) or 18 (script)")]
    UnknownTagType { offset: u64, type_byte: u8 },
    /// A tag claims more data than the reader's limit.
    #[error("tag at byte {offset} has {size} bytes of data, more than the limit of {max}")]
    TagTooLarge {
        offset: u64,
        size: usize,
        max: usize,
    },
    /// More bytes were pushed without draining them with
    /// [`FlvReader::next_item`](super::FlvReader::next_item) than the buffer holds.
    #[error("{buffered} unparsed bytes at byte {offset}, more than the reader's limit of {limit}: call next_item() after each push()")]
    BufferFull {
        offset: u64,
        buffered: usize,
        limit: usize,
    },
    /// The stream ended in the middle of something
    /// ([`FlvReader::finish`](super::FlvReader::finish)).
    #[error("stream ends at byte {offset} in the middle of {what}")]
    Truncated { offset: u64, what: &'static str },
}

impl FlvError {
    /// The stream offset the error is about.
    pub fn offset(&self) -> u64 {
        match *self {
            FlvError::BadSignature { offset, .. }
            | FlvError::UnsupportedVersion { offset, .. }
            | FlvError::BadHeaderLength { offset, .. }
            | FlvError::PreviousTagSizeMismatch { offset, .. }
            | FlvError::EncryptedTag { offset, .. }
            | FlvError::UnknownTagType { offset, .. }
            | FlvError::TagTooLarge { offset, .. }
            | FlvError::BufferFull { offset, .. }
            | FlvError::Truncated { offset, .. } => offset,
        }
    }
}
