//! The feed entry: one write, as its author signed it into the feed.

use serde::{Deserialize, Serialize};
use weft_crdt::{Op, Timestamp, VersionId};

/// The first byte of every encoded entry. A reader that meets another value refuses the entry
/// rather than guess at its layout.
pub const ENTRY_FORMAT: u8 = 1;

/// One write in an author's feed. The namespace, author and position are not repeated inside:
/// the signed head binds the whole feed to them.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The author's hybrid-logical-clock time of the write.
    pub timestamp: Timestamp,
    /// The key written.
    #[serde(with = "crate::serde_bytes::bytes")]
    pub key: Vec<u8>,
    /// The new value, or a delete.
    pub op: Op<Value>,
    /// The versions of `key` the author saw live when it wrote.
    pub supersedes: Vec<VersionId>,
}

/// A value as stored in an entry.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Value(#[serde(with = "crate::serde_bytes::bytes")] pub Vec<u8>);

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

impl Entry {
    /// The entry's bytes: the format byte, then the postcard encoding of the fields in order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.key.len() + self.value_len());
        out.push(ENTRY_FORMAT);
        // Serializing plain data into a Vec cannot fail.
        postcard::to_extend(self, out).expect("entries always encode")
    }

    /// Decodes an entry, refusing trailing bytes so that one entry has exactly one encoding.
    ///
    /// # Errors
    /// [`EntryError`] for anything that is not a complete entry of [`ENTRY_FORMAT`].
    pub fn decode(bytes: &[u8]) -> Result<Entry, EntryError> {
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
            Op::Put(value) => value.0.len(),
            Op::Delete => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_crdt::AuthorId;

    fn sample() -> Entry {
        Entry {
            timestamp: Timestamp(7_386_690_599_959_157_260),
            key: b"k000000000000001".to_vec(),
            op: Op::Put(Value(vec![42; 100])),
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
