//! The feed entry: one write, as its author signed it into the feed.

use serde::{Deserialize, Serialize};
use weft_crdt::{Link, Op, Timestamp, VersionHash, VersionId};

/// The first byte of every entry this build writes: its links name the superseded entry's
/// hash. A reader that meets a byte it does not know refuses the entry rather than guess at
/// its layout.
pub const ENTRY_FORMAT: u8 = 2;

/// The format of entries written before links carried hashes: still read, and its links
/// replace only versions stamped before the entry ([`weft_crdt::Link::hash`]).
pub const ENTRY_FORMAT_UNHASHED: u8 = 1;

/// The most links one entry of [`ENTRY_FORMAT`] may make. A local write links the live
/// versions first (the last writer first) and the excluded ones it holds after them, up to
/// this many; any live versions left over stay live beside it, and it wins over them by
/// timestamp as usual.
pub const MAX_SUPERSEDES: usize = 128;

/// One write in an author's feed. The namespace, author and position are not repeated inside:
/// the signed head binds the whole feed to them.
///
/// Key and value borrow from the bytes they are encoded from or decoded out of, so reading a
/// value copies it once, into the caller's buffer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Entry<'a> {
    /// The author's hybrid-logical-clock time of the write.
    pub timestamp: Timestamp,
    /// The key written.
    pub key: &'a [u8],
    /// The new value, or a delete.
    pub op: Op<&'a [u8]>,
    /// Links to the versions of `key` the author saw when it wrote. All carry hashes in an
    /// entry of [`ENTRY_FORMAT`], none in one of [`ENTRY_FORMAT_UNHASHED`].
    pub supersedes: Vec<Link>,
}

/// A link as format 2 encodes it.
#[derive(Serialize, Deserialize)]
struct HashedLink {
    id: VersionId,
    hash: VersionHash,
}

/// The fields of an entry, in the order both formats encode them.
#[derive(Serialize, Deserialize)]
struct Body<'a, L> {
    timestamp: Timestamp,
    #[serde(borrow)]
    key: &'a [u8],
    #[serde(borrow)]
    op: Op<&'a [u8]>,
    supersedes: Vec<L>,
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
    /// More links than [`MAX_SUPERSEDES`].
    #[error("{0} links, over the limit of {MAX_SUPERSEDES}")]
    TooManyLinks(usize),
}

impl<'a> Entry<'a> {
    /// The entry's bytes: the format byte, then the postcard encoding of the fields in order.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.key.len() + self.value_len());
        self.encode_into(&mut out);
        out
    }

    /// Appends the entry's bytes to `out`, reusing its allocation: [`ENTRY_FORMAT`], or
    /// [`ENTRY_FORMAT_UNHASHED`] when a link has no hash (an entry decoded from that format).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        let hashed: Option<Vec<HashedLink>> = self
            .supersedes
            .iter()
            .map(|link| link.hash.map(|hash| HashedLink { id: link.id, hash }))
            .collect();
        // Serializing plain data into a Vec cannot fail.
        let extended = match hashed {
            Some(supersedes) => {
                out.push(ENTRY_FORMAT);
                postcard::to_extend(&self.body(supersedes), std::mem::take(out))
            }
            None => {
                out.push(ENTRY_FORMAT_UNHASHED);
                let ids = self.supersedes.iter().map(|link| link.id).collect();
                postcard::to_extend(&self.body::<VersionId>(ids), std::mem::take(out))
            }
        };
        *out = extended.expect("entries always encode");
    }

    fn body<L>(&self, supersedes: Vec<L>) -> Body<'a, L> {
        Body {
            timestamp: self.timestamp,
            key: self.key,
            op: self.op.clone(),
            supersedes,
        }
    }

    /// Decodes an entry, refusing trailing bytes. Padded varints are accepted, so re-encoding
    /// may give shorter bytes (`docs/format.md` says why that is harmless).
    ///
    /// # Errors
    /// [`EntryError`] for anything that is not a complete entry of [`ENTRY_FORMAT`] or
    /// [`ENTRY_FORMAT_UNHASHED`].
    pub fn decode(bytes: &'a [u8]) -> Result<Entry<'a>, EntryError> {
        let (&format, body) = bytes.split_first().ok_or(EntryError::Empty)?;
        match format {
            ENTRY_FORMAT => {
                let body: Body<'a, HashedLink> = take_all(body)?;
                if body.supersedes.len() > MAX_SUPERSEDES {
                    return Err(EntryError::TooManyLinks(body.supersedes.len()));
                }
                let links = body
                    .supersedes
                    .iter()
                    .map(|link| Link {
                        id: link.id,
                        hash: Some(link.hash),
                    })
                    .collect();
                Ok(body.into_entry(links))
            }
            ENTRY_FORMAT_UNHASHED => {
                let body: Body<'a, VersionId> = take_all(body)?;
                let links = body
                    .supersedes
                    .iter()
                    .map(|&id| Link { id, hash: None })
                    .collect();
                Ok(body.into_entry(links))
            }
            other => Err(EntryError::UnknownFormat(other)),
        }
    }

    fn value_len(&self) -> usize {
        match &self.op {
            Op::Put(value) => value.len(),
            Op::Delete => 0,
        }
    }
}

impl<'a, L> Body<'a, L> {
    fn into_entry(self, supersedes: Vec<Link>) -> Entry<'a> {
        Entry {
            timestamp: self.timestamp,
            key: self.key,
            op: self.op,
            supersedes,
        }
    }
}

fn take_all<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, EntryError> {
    let (value, rest) =
        postcard::take_from_bytes::<T>(body).map_err(|e| EntryError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(EntryError::Malformed(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
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
            supersedes: vec![Link {
                id: VersionId {
                    author: AuthorId([9; 32]),
                    seq: 3,
                },
                hash: Some(VersionHash([7; 32])),
            }],
        }
    }

    #[test]
    fn round_trips_and_is_compact() {
        let entry = sample();
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes), Ok(entry));
        // format, varint timestamp, key (length + 16), op tag, value (length + 100),
        // supersedes (count, then author, varint seq and hash)
        assert_eq!(
            bytes.len(),
            1 + 9 + (1 + 16) + 1 + (1 + 100) + (1 + 32 + 1 + 32)
        );
        assert_eq!(bytes[0], ENTRY_FORMAT);
    }

    #[test]
    fn reads_entries_of_the_format_before_hashes() {
        let mut entry = sample();
        entry.supersedes[0].hash = None;
        let bytes = entry.encode();
        assert_eq!(bytes[0], ENTRY_FORMAT_UNHASHED);
        assert_eq!(bytes.len(), 1 + 9 + (1 + 16) + 1 + (1 + 100) + (1 + 32 + 1));
        assert_eq!(Entry::decode(&bytes), Ok(entry));
    }

    #[test]
    fn refuses_more_links_than_the_cap() {
        let mut entry = sample();
        entry.supersedes = vec![entry.supersedes[0]; MAX_SUPERSEDES + 1];
        let bytes = entry.encode();
        assert_eq!(
            Entry::decode(&bytes),
            Err(EntryError::TooManyLinks(MAX_SUPERSEDES + 1))
        );
        entry.supersedes.pop();
        assert!(Entry::decode(&entry.encode()).is_ok());
    }

    #[test]
    fn rejects_other_formats_truncation_and_trailing_bytes() {
        let bytes = sample().encode();
        let mut other = bytes.clone();
        other[0] = 3;
        assert_eq!(Entry::decode(&other), Err(EntryError::UnknownFormat(3)));
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
