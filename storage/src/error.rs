//! The storage error type.

use std::path::PathBuf;

use crate::entry::EntryError;
use crate::ids::NamespaceId;
use crate::tree::ProofError;

/// Everything a store operation can fail with. Validation failures (bad input, nothing
/// written) are kept apart from failures of the disk or the database file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No replica has been created in the data dir yet.
    #[error("no weft replica in {dir}")]
    NotInitialized {
        /// The data dir.
        dir: PathBuf,
    },
    /// `init` on a data dir that already holds a replica.
    #[error("a weft replica already exists in {dir}; refusing to overwrite it")]
    AlreadyInitialized {
        /// The data dir.
        dir: PathBuf,
    },
    /// The directory holds files, but not a weft replica.
    #[error("{dir} holds other files but no weft replica")]
    NotAWeftDir {
        /// The data dir.
        dir: PathBuf,
    },
    /// Another process has the database open.
    #[error("the replica in {dir} is in use by another process")]
    Locked {
        /// The data dir.
        dir: PathBuf,
    },
    /// The database file or a key file is damaged or not weft's.
    #[error("{path} is corrupt: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A key over the configured limit.
    #[error("key is {len} bytes, over the limit of {max}")]
    KeyTooLarge {
        /// The key's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value over the configured limit.
    #[error("value is {len} bytes, over the limit of {max}")]
    ValueTooLarge {
        /// The value's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An empty key: it could not be told apart from a namespace's prefix scan.
    #[error("keys must not be empty")]
    EmptyKey,
    /// An area of interest that cannot be set.
    #[error(transparent)]
    Interest(#[from] crate::interest::InterestError),
    /// A key outside the interest of a sparse replica: not replicated here.
    #[error("key {key:?} is not replicated here")]
    NotReplicated {
        /// The key, lossily as text.
        key: String,
    },
    /// The value a read as of a past time needs was dropped by `weft prune`.
    #[error("the value {key:?} had then was pruned")]
    Pruned {
        /// The key, lossily as text.
        key: String,
    },
    /// A key under weft's reserved prefix, which user writes and reads may not use.
    #[error("keys starting with \\xffweft/ are reserved for weft's own records")]
    ReservedKey,
    /// A write this replica's author has no grant for, in a closed namespace.
    #[error("author {author} may not write key {key:?} here ({reason})")]
    NotAllowed {
        /// This replica's author.
        author: crate::ids::AuthorId,
        /// The key, lossily as text.
        key: String,
        /// Why the write would not count.
        reason: crate::members::records::Exclusion,
    },
    /// This replica's own feed is frozen by a fork: nothing written to it would count.
    #[error(
        "this replica's author signed two histories of its feed in namespace {namespace} (is its key in use on another device, or was an older backup written to?); every replica froze the feed at entry {frozen_at}, so nothing written to it counts: give this device an author of its own (`weft init --join` into a fresh data dir)"
    )]
    OwnFeedForked {
        /// The namespace.
        namespace: NamespaceId,
        /// Where the feed is frozen.
        frozen_at: u64,
    },
    /// A grant or revocation from a replica that does not own the namespace, or in an open one.
    #[error("{0}")]
    NotOwner(String),
    /// A charter or ticket that the namespace key did not sign.
    #[error(transparent)]
    BadCharter(#[from] crate::members::records::BadCharter),
    /// A change feed read asked for changes older than the oldest one kept.
    #[error(
        "change {from} is no longer kept: the change feed starts at {oldest}; a consumer this far behind must re-read the keys and resume from {oldest}"
    )]
    ChangesDropped {
        /// The seq asked for.
        from: u64,
        /// The oldest seq kept.
        oldest: u64,
    },
    /// A change feed read asked to start past the next change.
    #[error(
        "change {from} has not happened on this replica; the next change will be {next} (change numbers are local to a replica)"
    )]
    ChangeAhead {
        /// The seq asked for.
        from: u64,
        /// The seq the next change will take.
        next: u64,
    },
    /// A peer holds more of this replica's own feed than this replica does, as when it was
    /// restored from an older backup: a write now would fork the feed, so writes wait until
    /// sync has fetched the rest back.
    #[error(
        "this replica holds {held} entries of its own feed in namespace {namespace}, but a peer holds {elsewhere} (was it restored from an older backup?); writes wait until sync has fetched them back"
    )]
    OwnFeedBehind {
        /// The namespace.
        namespace: NamespaceId,
        /// Entries of the own feed held here.
        held: u64,
        /// Entries a peer holds.
        elsewhere: u64,
    },
    /// A namespace this replica does not hold.
    #[error("unknown namespace {0}")]
    UnknownNamespace(NamespaceId),
    /// Data inside the database that does not check out: a row that does not decode, or one
    /// that points at a row that is not there.
    #[error("stored data is damaged: {0}")]
    Damaged(String),
    /// A proof or signature that does not hold.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The database failed.
    #[error("database error")]
    Db(#[from] redb::Error),
}

macro_rules! from_redb {
    ($($error:ty),*) => {$(
        impl From<$error> for Error {
            fn from(error: $error) -> Self {
                Error::Db(error.into())
            }
        }
    )*};
}

from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError,
    redb::SetDurabilityError
);

impl From<EntryError> for Error {
    fn from(error: EntryError) -> Self {
        Error::Damaged(format!("a stored entry does not decode ({error})"))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
