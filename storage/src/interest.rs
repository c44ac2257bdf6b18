//! What a sparse replica replicates: key prefixes and, optionally, authors.

use serde::{Deserialize, Serialize};

use crate::ids::AuthorId;
use crate::members::records::RESERVED_PREFIX;

/// The most prefixes an interest may name.
pub const MAX_PREFIXES: usize = 256;

/// The most bytes an interest's prefixes may add up to, so that a request carrying them stays
/// small.
pub const MAX_INTEREST_BYTES: usize = 64 * 1024;

/// What a sparse replica of a namespace replicates: the keys under any of `prefixes`, written
/// by any author, or only by `authors` when it names some.
#[derive(Clone, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub struct Interest {
    /// Key prefixes, in byte order, none a prefix of another.
    pub prefixes: Vec<Vec<u8>>,
    /// Authors whose entries are wanted; empty for every author.
    pub authors: Vec<AuthorId>,
}

/// Why an interest cannot be set.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum InterestError {
    /// No prefix at all: that would be a full replica, which a sparse one cannot become.
    #[error("a sparse replica needs at least one prefix; a replica cannot go back to full")]
    NoPrefix,
    /// An empty prefix, which would cover every key.
    #[error("a prefix must not be empty")]
    EmptyPrefix,
    /// A prefix longer than a key may be.
    #[error("prefix is {len} bytes, over the key limit of {max}")]
    PrefixTooLong {
        /// Its length.
        len: usize,
        /// The key limit.
        max: usize,
    },
    /// Over [`MAX_PREFIXES`].
    #[error("{0} prefixes, over the limit of {MAX_PREFIXES}")]
    TooManyPrefixes(usize),
    /// Over [`MAX_INTEREST_BYTES`].
    #[error("prefixes of {0} bytes in all, over the limit of {MAX_INTEREST_BYTES}")]
    TooManyBytes(usize),
    /// The replica holds other authors' feeds in full: dropping entries from them would
    /// leave holes no proof it holds covers.
    #[error(
        "this replica already holds other authors' feeds in full; a full replica cannot become sparse"
    )]
    AlreadyFull,
}

impl Interest {
    /// An interest in `prefixes` from every author, tidied: sorted, and without prefixes that
    /// another one already covers.
    pub fn new(prefixes: impl IntoIterator<Item = Vec<u8>>, authors: Vec<AuthorId>) -> Interest {
        let mut all: Vec<Vec<u8>> = prefixes.into_iter().collect();
        all.sort();
        all.dedup();
        let mut kept: Vec<Vec<u8>> = Vec::with_capacity(all.len());
        for prefix in all {
            // Sorted, so a covering prefix comes right before what it covers.
            if !kept.last().is_some_and(|last| prefix.starts_with(last)) {
                kept.push(prefix);
            }
        }
        let mut authors = authors;
        authors.sort();
        authors.dedup();
        Interest {
            prefixes: kept,
            authors,
        }
    }

    /// Checks the interest's shape: some prefixes, none empty or longer than `max_key_len`,
    /// and within [`MAX_PREFIXES`] and [`MAX_INTEREST_BYTES`].
    ///
    /// # Errors
    /// The [`InterestError`] of the first rule broken.
    pub fn check(&self, max_key_len: usize) -> Result<(), InterestError> {
        if self.prefixes.is_empty() {
            return Err(InterestError::NoPrefix);
        }
        if self.prefixes.len() > MAX_PREFIXES {
            return Err(InterestError::TooManyPrefixes(self.prefixes.len()));
        }
        let bytes: usize = self.prefixes.iter().map(Vec::len).sum();
        if bytes > MAX_INTEREST_BYTES {
            return Err(InterestError::TooManyBytes(bytes));
        }
        for prefix in &self.prefixes {
            if prefix.is_empty() {
                return Err(InterestError::EmptyPrefix);
            }
            if prefix.len() > max_key_len {
                return Err(InterestError::PrefixTooLong {
                    len: prefix.len(),
                    max: max_key_len,
                });
            }
        }
        Ok(())
    }

    /// Whether `key` lies under one of the prefixes. weft's reserved keys (the owner's grants
    /// and revocations) are always covered: without them a sparse replica of a closed
    /// namespace could not tell which entries count.
    pub fn covers_key(&self, key: &[u8]) -> bool {
        key.starts_with(RESERVED_PREFIX)
            || self.prefixes.iter().any(|prefix| key.starts_with(prefix))
    }

    /// The prefixes to ask peers for: this interest's, and weft's reserved keys.
    pub fn wire_prefixes(&self) -> Vec<Vec<u8>> {
        let mut prefixes = self.prefixes.clone();
        prefixes.push(RESERVED_PREFIX.to_vec());
        prefixes
    }

    /// Whether `author`'s entries are wanted.
    pub fn covers_author(&self, author: &AuthorId) -> bool {
        self.authors.is_empty() || self.authors.contains(author)
    }

    /// Whether everything `other` wants of `author`'s feed lies inside this interest, so that
    /// a replica with this interest can serve it.
    pub fn serves(&self, other: &Interest, author: &AuthorId) -> bool {
        self.covers_author(author) && other.prefixes.iter().all(|p| self.covers_key(p))
    }
}
