//! The feed entry: one write, as its author signed it into the feed.

use serde::{Deserialize, Serialize};
use weft_crdt::{Op, Timestamp, VersionId};

/// The first byte of every encoded entry. A reader that meets another value refuses the entry
/// rather than guess at its layout.
pub const ENTRY_FORMAT: u8 = 1;

/// One write in an author's feed. The namespace, author and position are not repeated inside:
/// the signed head binds the whole feed to them.
///
/// Key and value borrow from the bytes they are encoded from or decoded out of, so reading a
/// value copies it once, into the caller's buffer.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry<'a> {
    /// The author's hybrid-logical-clock time of the write.
    pub timestamp: Timestamp,
    /// The key written.
    #[serde(borrow)]
    pub key: &'a [u8],
    /// The new value, or a delete.
    #[serde(borrow)]
    pub op: Op<&'a [u8]>,
    /// The versions of `key` the author saw live when it wrote.
    pub supersedes: Vec<VersionId>,
}

/// Bytes that are not an entry of a format this build reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// No bytes at all.
    #[error("empty entry")]
    Empty,
    /// A format byte this build does not know.
    #[error("unknown entry format {0}")]
    UnknownFormat(u8),
    /// The body does not decode.
    #[error("malformed entry: {0}")]
    Malformed(String),
}

impl<'a> Entry<'a> {
    /// The entry's bytes: the format byte, then the postcard encoding of the fields in order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.key.len() + self.value_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the entry's bytes to `out`, reusing its allocation.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(ENTRY_FORMAT);
        // Serializing plain data into a Vec cannot fail.
        let extended =
            postcard::to_extend(self, std::mem::take(out)).expect("entries always encode");
        *out = extended;
    }

    /// Decodes an entry, refusing trailing bytes. Padded varints are accepted, so re-encoding
    /// may give shorter bytes (`docs/format.md` says why that is harmless).
    ///
    /// # Errors
    /// [`EntryError`] for anything that is not a complete entry of [`ENTRY_FORMAT`].
    pub fn decode(bytes: &'a [u8]) -> Result<Entry<'a>, EntryError> {
        let (&format, body) = bytes.split_first().ok_or(EntryError::Empty)?;
        if format != ENTRY_FORMAT {
            return Err(EntryError::UnknownFormat(format));
        }
        let (entry, rest) = postcard::take_from_bytes::<Entry>(body)
            .map_err(|e| EntryError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(EntryError::Malformed(format!(
                "{} trailing bytes",
                rest.len()
            )));
        }
        Ok(entry)
    }

    fn value_len(&self) -> usize {
        match &self.op {
            Op::Put(value) => value.len(),
            Op::Delete => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_crdt::AuthorId;

    fn sample() -> Entry<'static> {
        Entry {
            timestamp: Timestamp(7_386_690_599_959_157_260),
            key: b"k000000000000001",
            op: Op::Put(&[42; 100]),
            supersedes: vec![VersionId {
                author: AuthorId([9; 32]),
                seq: 3,
            }],
        }
    }

    #[test]
    fn round_trips_and_is_compact() {
        let entry = sample();
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes), Ok(entry));
        // format, varint timestamp, key (length + 16), op tag, value (length + 100),
        // supersedes (count, then author and varint seq)
        assert_eq!(bytes.len(), 1 + 9 + (1 + 16) + 1 + (1 + 100) + (1 + 32 + 1));
    }

    #[test]
    fn rejects_other_formats_truncation_and_trailing_bytes() {
        let bytes = sample().encode();
        let mut other = bytes.clone();
        other[0] = 2;
        assert_eq!(Entry::decode(&other), Err(EntryError::UnknownFormat(2)));
        assert_eq!(Entry::decode(&[]), Err(EntryError::Empty));
        for cut in 1..bytes.len() {
            assert!(
                Entry::decode(&bytes[..cut]).is_err(),
                "a {cut}-byte prefix decoded"
            );
        }
        let mut longer = bytes;
        longer.push(0);
        assert!(matches!(
            Entry::decode(&longer),
            Err(EntryError::Malformed(_))
        ));
    }
}
