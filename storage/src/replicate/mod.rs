//! What replication needs from a store: the heads it holds, runs of a feed to send with their
//! proof, and verified ingest of runs that peers send.
//!
//! Feeds are replicated as prefixes: a replica holds entries `[0, held)` of each feed and asks
//! for what comes next. A run `[start, end)` is sent with the author's latest signed head (of
//! `length ≥ end`) and the hashes of [`crate::tree::extension_nodes`]`(end, length)`. The receiver,
//! holding `[0, held)` with `start ≤ held`, pushes the new entries onto the peaks it has and
//! checks that, with the extension, they rebuild the signed root. That is one signature check
//! and a few blake3 hashes per entry, whatever the run's length.

mod full;
mod key;
mod sparse;

pub use key::verify_remote_key;
pub use sparse::{FEED_WALK_ENTRIES, Served, SparseRun, VIEW_WALK_KEYS};

use redb::{ReadableDatabase, ReadableTable};
use weft_crdt::VersionId;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{AuthorId, NamespaceId};
use crate::rows::{FeedRecord, SparseRecord, namespace_feeds, row_hash};
use crate::store::Store;
use crate::tables::{self, FEED_IDS, FEEDS, SPARSE_FEEDS, feed_key};
use crate::tree::{Hash, ProofError};
use crate::view::{Gate, ViewTables};

/// A run of entries of one feed with what proves it: the unit of replication.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Run {
    /// The author's signed head the run is proven against; `head.length ≥ start +
    /// entries.len()`.
    pub head: SignedHead,
    /// The index of the first entry.
    pub start: u64,
    /// The encoded entries `[start, start + entries.len())`.
    pub entries: Vec<Vec<u8>>,
    /// The hashes of [`crate::tree::extension_nodes`]`(start + entries.len(), head.length)`.
    pub extension: Vec<Hash>,
}

impl Ingested {
    /// How many entries of the feed are held after the ingest.
    pub fn held(&self) -> u64 {
        match *self {
            Ingested::Appended { held, .. }
            | Ingested::AlreadyHeld { held }
            | Ingested::Gap { held }
            | Ingested::Frozen { held, .. }
            | Ingested::NotMember { held } => held,
        }
    }
}

impl Run {
    /// One past the last entry.
    pub fn end(&self) -> u64 {
        self.start.saturating_add(self.entries.len() as u64)
    }
}

/// A feed as a replica holds it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct HeldFeed {
    /// The latest signed head known.
    pub head: SignedHead,
    /// How many entries are stored (a prefix of the feed); for a feed a sparse replica holds
    /// with holes, how far it has been scanned for the interest.
    pub held: u64,
}

/// What [`Store::ingest`] did with a valid run.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ingested {
    /// New entries were stored; the feed now holds `held` entries.
    Appended {
        /// How many entries were new.
        added: u64,
        /// The feed's held length after the run.
        held: u64,
    },
    /// Every entry of the run was already held.
    AlreadyHeld {
        /// How many entries are held.
        held: u64,
    },
    /// The run starts after the end of what is held: the entries between are needed first.
    Gap {
        /// How many entries are held.
        held: u64,
    },
    /// The feed is frozen by a proven fork ([`crate::ForkProof`]): a replica holding it in
    /// full takes only runs that end by `at`, where the two histories part, and a sparse one
    /// takes nothing more.
    Frozen {
        /// How many entries are held.
        held: u64,
        /// Where the histories part.
        at: u64,
    },
    /// The namespace is closed and its owner has granted the feed's author nothing: its
    /// entries are not stored, so whoever lacks a grant cannot fill this replica. They are
    /// fetched once a grant arrives.
    NotMember {
        /// How many entries are held.
        held: u64,
    },
}

/// Why a peer's run was refused. Every case is the sender's fault, and nothing was stored.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum Invalid {
    /// The head names a namespace this replica does not hold.
    #[error("unknown namespace {0}")]
    UnknownNamespace(NamespaceId),
    /// A sparse run of this replica's own feed: a replica holds all of its own feed, so a
    /// peer sends the rest of it (after a restore from backup) as a whole run.
    #[error("a sparse run of this replica's own feed")]
    OwnFeed,
    /// The run does not fit its head.
    #[error("run {start}..{end} does not fit a head of length {length}")]
    BadRange {
        /// First entry.
        start: u64,
        /// One past the last.
        end: u64,
        /// The head's length.
        length: u64,
    },
    /// The head's signature or the entries' proof does not hold.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// An entry, or a whole feed, outside the interest of this sparse replica, or a sparse run
    /// sent to a full one.
    #[error("{}", match seq {
        Some(seq) => format!("entry {seq} lies outside the area asked for"),
        None => "a feed outside the area asked for".to_string(),
    })]
    OutsideInterest {
        /// The entry's index, when one entry is concerned.
        seq: Option<u64>,
    },
    /// A fork proof that proves no fork.
    #[error("a bad fork proof: {0}")]
    Fork(String),
    /// A proven entry that this replica will not store: it does not decode, or breaks a limit.
    #[error("entry {seq}: {reason}")]
    Entry {
        /// Its index in the feed.
        seq: u64,
        /// What is wrong.
        reason: String,
    },
}

/// Why [`Store::ingest`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The run is invalid; the peer that sent it is at fault.
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The store failed; the run may be fine.
    #[error(transparent)]
    Store(#[from] Error),
}

/// How much of local feed `feed` is held, as [`HeldFeed::held`] counts it: the stored prefix,
/// or for a feed held with holes how far it was scanned.
fn held_of(
    sparse: &impl ReadableTable<u64, &'static [u8]>,
    feed: u64,
    record: &FeedRecord,
) -> Result<u64> {
    Ok(match sparse.get(feed)? {
        Some(bytes) => SparseRecord::decode(bytes.value())?.scanned,
        None => record.held,
    })
}

/// Turns any store-side failure into [`IngestError::Store`].
pub(crate) fn store_err<E: Into<Error>>(error: E) -> IngestError {
    IngestError::Store(error.into())
}

/// Decodes remote entry `seq` and checks it against this store's limits.
pub(crate) fn check_remote_entry<'a>(
    store: &Store,
    seq: u64,
    bytes: &'a [u8],
) -> Result<Entry<'a>, Invalid> {
    let refused = |reason: String| Invalid::Entry { seq, reason };
    let entry = Entry::decode(bytes).map_err(|e| refused(e.to_string()))?;
    let op = entry.op.map(|value| value.to_vec());
    store
        .validate(entry.key, &op)
        .map_err(|e| refused(e.to_string()))?;
    Ok(entry)
}

/// Stores a checked remote entry's row and, if `gate` lets it count, merges it into the view
/// and moves the clock past it; otherwise records why it does not count.
pub(crate) fn store_remote_entry(
    store: &Store,
    entries: &mut redb::Table<'_, u128, &'static [u8]>,
    view: &mut ViewTables<'_>,
    gate: &mut Gate,
    (feed, id): (u64, VersionId),
    row: &[u8],
    entry: &Entry<'_>,
) -> Result<(), IngestError> {
    entries
        .insert(feed_key(feed, id.seq), row)
        .map_err(store_err)?;
    let version = (id, row_hash(row));
    if let Some(reason) = view.admit(gate, &*entries, feed, version, entry)? {
        tracing::info!(author = %id.author, seq = id.seq, %reason, "a remote entry is stored but does not count in the view");
        return Ok(());
    }
    if !store.clock_observe(entry.timestamp) {
        tracing::debug!(author = %id.author, seq = id.seq, "remote timestamp too far ahead to move the clock");
    }
    Ok(())
}

/// An ingest's write transaction on one remote feed ([`Store::begin_ingest`]).
pub(crate) struct IngestTxn {
    pub txn: redb::WriteTransaction,
    /// The feed's [`tables::FEED_IDS`] key.
    pub index_key: [u8; 36],
    /// Where a fork froze the feed, if one did ([`Ingested::Frozen`]).
    pub frozen: Option<u64>,
    /// What decides whether its entries count.
    pub gate: Gate,
}

impl Store {
    /// Every feed held in `ns`, with its latest signed head and held length.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn feeds(&self, ns: &NamespaceId) -> Result<Vec<HeldFeed>> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db().begin_read()?;
        let feed_ids = txn.open_table(FEED_IDS)?;
        let feeds = txn.open_table(FEEDS)?;
        let sparse = txn.open_table(SPARSE_FEEDS)?;
        let mut out = Vec::new();
        for (_, feed) in namespace_feeds(&feed_ids, ns_number)? {
            let record = feeds.get(feed)?.ok_or_else(|| {
                Error::Damaged(format!("feed {feed} is indexed but has no record"))
            })?;
            let record = FeedRecord::decode(record.value())?;
            let held = held_of(&sparse, feed, &record)?;
            out.push(HeldFeed {
                head: record.head,
                held,
            });
        }
        Ok(out)
    }

    /// Opens the write transaction that ingests a run of `head`'s feed in namespace number
    /// `ns_number`, with this store's durability for ingests ([`Store::defer_ingest_sync`]).
    pub(crate) fn begin_ingest(
        &self,
        ns_number: u32,
        head: &SignedHead,
    ) -> Result<IngestTxn, IngestError> {
        let mut txn = self.db().begin_write().map_err(store_err)?;
        txn.set_durability(self.ingest_durability())
            .map_err(store_err)?;
        let index_key = tables::feed_ids_key(ns_number, &head.author);
        let frozen = {
            let forks = txn.open_table(tables::FORKS).map_err(store_err)?;
            match forks.get(&index_key[..]).map_err(store_err)? {
                Some(fork) => Some(crate::store::frozen_length(fork.value())?),
                None => None,
            }
        };
        Ok(IngestTxn {
            txn,
            index_key,
            frozen,
            gate: self.gate(&head.namespace)?,
        })
    }

    /// Whether this replica syncs `author`'s feed in `ns`: in an open namespace every author's,
    /// in a closed one the owner's and those of authors it has granted (a revoked author's
    /// too: its entries before the revocation count).
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn syncs_author(&self, ns: &NamespaceId, author: &AuthorId) -> Result<bool> {
        match self.charter(ns)?.and_then(|charter| charter.owner()) {
            None => Ok(true),
            Some(owner) if owner == *author => Ok(true),
            Some(_) => Ok(self.membership(ns, author)?.is_some()),
        }
    }

    /// How much of `author`'s feed in `ns` is held, as [`Store::feeds`] counts it.
    pub(crate) fn head_held(&self, ns: &NamespaceId, author: &AuthorId) -> Result<u64> {
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(0);
        };
        held_of(&txn.open_table(SPARSE_FEEDS)?, feed, &record)
    }

    /// The namespaces this replica holds, in no particular order.
    pub fn namespaces(&self) -> Vec<NamespaceId> {
        self.namespace_ids()
    }
}
