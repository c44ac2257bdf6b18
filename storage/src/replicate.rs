//! What replication needs from a store: the heads it holds, runs of a feed to send with their
//! proof, and verified ingest of runs that peers send.
//!
//! Feeds are replicated as prefixes: a replica holds entries `[0, held)` of each feed and asks
//! for what comes next. A run `[start, end)` is sent with the author's latest signed head (of
//! `length ≥ end`) and the hashes of [`tree::extension_nodes`]`(end, length)`. The receiver,
//! holding `[0, held)` with `start ≤ held`, pushes the new entries onto the peaks it has and
//! checks that, with the extension, they rebuild the signed root. That is one signature check
//! and a few blake3 hashes per entry, whatever the run's length.

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable};
use weft_crdt::VersionId;

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{AuthorId, NamespaceId};
use crate::sparse::SparseRecord;
use crate::store::{FeedRecord, Store, load_frontier, read_node};
use crate::tables::{self, ENTRIES, FEED_IDS, FEEDS, SPARSE_FEEDS, feed_key};
use crate::tree::{self, Hash, Node, ProofError};
use crate::view::{Gate, ViewTables, commit};

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
    /// The hashes of [`tree::extension_nodes`]`(start + entries.len(), head.length)`.
    pub extension: Vec<Hash>,
}

impl Ingested {
    /// How many entries of the feed are held after the ingest.
    pub fn held(&self) -> u64 {
        match *self {
            Ingested::Appended { held, .. }
            | Ingested::AlreadyHeld { held }
            | Ingested::Gap { held }
            | Ingested::Frozen { held } => held,
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
    /// The feed is frozen by a proven fork ([`crate::ForkProof`]) and takes nothing more.
    Frozen {
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
    /// The run claims entries of this replica's own author, which only this replica writes.
    #[error("a run of this replica's own feed")]
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

/// Turns any store-side failure into [`IngestError::Store`].
pub(crate) fn store_err<E: Into<Error>>(error: E) -> IngestError {
    IngestError::Store(error.into())
}

/// The local feed id under `index_key` (a [`tables::FEED_IDS`] key) with its record, or, for
/// a feed not held yet, the next free id and `None`.
pub(crate) fn feed_slot(
    feeds: &impl ReadableTable<u64, &'static [u8]>,
    feed_ids: &impl ReadableTable<&'static [u8], u64>,
    index_key: &[u8],
) -> Result<(u64, Option<FeedRecord>), IngestError> {
    match feed_ids.get(index_key).map_err(store_err)? {
        Some(feed) => {
            let feed = feed.value();
            let record = feeds.get(feed).map_err(store_err)?.ok_or_else(|| {
                Error::Damaged(format!("feed {feed} is indexed but has no record"))
            })?;
            Ok((feed, Some(FeedRecord::decode(record.value())?)))
        }
        None => {
            let last = feeds.last().map_err(store_err)?;
            Ok((last.map_or(0, |(id, _)| id.value() + 1), None))
        }
    }
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
    if let Some(reason) = view.admit(gate, &*entries, feed, id, entry)? {
        tracing::info!(author = %id.author, seq = id.seq, %reason, "a remote entry is stored but does not count in the view");
        return Ok(());
    }
    if !store.clock_observe(entry.timestamp) {
        tracing::debug!(author = %id.author, seq = id.seq, "remote timestamp too far ahead to move the clock");
    }
    Ok(())
}

/// Whether the feed under `index_key` (a [`tables::FEED_IDS`] key) is frozen by a fork.
pub(crate) fn is_frozen(
    txn: &redb::WriteTransaction,
    index_key: &[u8],
) -> Result<bool, IngestError> {
    let forks = txn.open_table(tables::FORKS).map_err(store_err)?;
    Ok(forks.get(index_key).map_err(store_err)?.is_some())
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
        let low = tables::feed_ids_key(ns_number, &AuthorId([0; 32]));
        let high = tables::feed_ids_key(ns_number, &AuthorId([0xff; 32]));
        let mut out = Vec::new();
        for row in feed_ids.range(&low[..]..=&high[..])? {
            let (_, feed) = row?;
            let record = feeds.get(feed.value())?.ok_or_else(|| {
                Error::Damaged(format!(
                    "feed {} is indexed but has no record",
                    feed.value()
                ))
            })?;
            let record = FeedRecord::decode(record.value())?;
            let held = match sparse.get(feed.value())? {
                Some(bytes) => SparseRecord::decode(bytes.value())?.scanned,
                None => record.held,
            };
            out.push(HeldFeed {
                head: record.head,
                held,
            });
        }
        Ok(out)
    }

    /// The namespaces this replica holds, in no particular order.
    pub fn namespaces(&self) -> Vec<NamespaceId> {
        self.namespace_ids()
    }

    /// Entries of `author`'s feed in `ns` from `start`, at most `max_entries` of them and, past
    /// the first, at most `max_bytes` of entry bytes, proven against the latest signed head
    /// held. `None` when nothing from `start` on is held.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures; [`Error::Damaged`] when a stored row
    /// needed is missing or truncated.
    pub fn read_run(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        start: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Option<Run>> {
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(None);
        };
        if start >= record.held || max_entries == 0 {
            return Ok(None);
        }
        let entries_table = txn.open_table(ENTRIES)?;
        let last = record.held.min(start.saturating_add(max_entries as u64));
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for row in entries_table.range(feed_key(feed, start)..feed_key(feed, last))? {
            let (key, row) = row?;
            let seq = key.value() as u64;
            let parts = tables::split_row(seq, row.value()).ok_or_else(|| {
                Error::Damaged(format!("entry {seq} of local feed {feed} is truncated"))
            })?;
            if tables::is_pruned(parts.entry) {
                // A pruned entry's bytes are gone: the run ends before it.
                break;
            }
            if !entries.is_empty() && bytes + parts.entry.len() > max_bytes {
                break;
            }
            bytes += parts.entry.len();
            entries.push(parts.entry.to_vec());
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let end = start + entries.len() as u64;
        let extension = extension_from(&entries_table, feed, &record, end)?;
        Ok(Some(Run {
            head: record.head,
            start,
            entries,
            extension,
        }))
    }

    /// Verifies a run of a remote feed and stores its new entries, merging them into the view,
    /// in one transaction. Entries already held are skipped; a run that starts past what is
    /// held stores nothing and reports the gap.
    ///
    /// # Errors
    /// [`IngestError::Invalid`] when the run does not verify or holds an entry this replica
    /// refuses; [`IngestError::Store`] when the store fails. Nothing is stored in either case.
    pub fn ingest(&self, run: &Run) -> Result<Ingested, IngestError> {
        let head = &run.head;
        let ns_number = self
            .namespace_number(&head.namespace)
            .map_err(|_| Invalid::UnknownNamespace(head.namespace))?;
        if let Some(interest) = self.interest(&head.namespace)? {
            return self.ingest_run_sparsely(run, &interest);
        }
        if head.author == self.author() {
            return Err(Invalid::OwnFeed.into());
        }
        let end = run.start.checked_add(run.entries.len() as u64);
        let Some(end) = end.filter(|end| *end <= head.length) else {
            return Err(Invalid::BadRange {
                start: run.start,
                end: run.end(),
                length: head.length,
            }
            .into());
        };
        let mut txn = self.db().begin_write().map_err(store_err)?;
        txn.set_durability(self.durability()).map_err(store_err)?;
        let index_key = tables::feed_ids_key(ns_number, &head.author);
        let frozen = is_frozen(&txn, &index_key)?;
        let mut gate = self.gate(&head.namespace)?;
        let outcome = {
            let mut feeds = txn.open_table(FEEDS).map_err(store_err)?;
            let mut feed_ids = txn.open_table(FEED_IDS).map_err(store_err)?;
            let mut entries = txn.open_table(ENTRIES).map_err(store_err)?;
            let mut view = ViewTables::open(&txn)?;
            let (feed, known) = feed_slot(&feeds, &feed_ids, &index_key)?;
            let held = known.as_ref().map_or(0, |record| record.held);
            if frozen {
                return Ok(Ingested::Frozen { held });
            }
            if run.start > held {
                return Ok(Ingested::Gap { held });
            }
            if end <= held {
                return Ok(Ingested::AlreadyHeld { held });
            }
            let new = &run.entries[(held - run.start) as usize..];

            // Verify everything before the first insert.
            let mut frontier = load_frontier(&entries, feed, held)?;
            let mut rows = Vec::with_capacity(new.len());
            for bytes in new {
                let leaf = tree::leaf_hash(bytes);
                let mut row = Vec::with_capacity(32 * 3 + bytes.len());
                row.extend_from_slice(&leaf);
                frontier.push(leaf, |_, parent| row.extend_from_slice(&parent));
                row.extend_from_slice(bytes);
                rows.push(row);
            }
            if frontier
                .extended_root(head.length, &run.extension)
                .map_err(Invalid::Proof)?
                != head.root
            {
                return Err(Invalid::Proof(ProofError::RootMismatch).into());
            }
            head.verify().map_err(Invalid::Proof)?;

            if known.is_none() {
                feed_ids.insert(&index_key[..], feed).map_err(store_err)?;
            }
            for (i, (bytes, row)) in new.iter().zip(&rows).enumerate() {
                let seq = held + i as u64;
                let entry = check_remote_entry(self, seq, bytes)?;
                let id = VersionId {
                    author: head.author,
                    seq,
                };
                store_remote_entry(
                    self,
                    &mut entries,
                    &mut view,
                    &mut gate,
                    (feed, id),
                    row,
                    &entry,
                )?;
            }
            let record = FeedRecord {
                ns: ns_number,
                head: head.clone(),
                held: end,
                extension: if end == head.length {
                    Vec::new()
                } else {
                    run.extension.clone()
                },
            };
            let record = postcard::to_allocvec(&record).expect("feed records always encode");
            feeds.insert(feed, &record[..]).map_err(store_err)?;
            Ingested::Appended {
                added: new.len() as u64,
                held: end,
            }
        };
        commit(self, txn, &gate, &head.namespace)?;
        Ok(outcome)
    }
}

/// The hashes of [`tree::extension_nodes`]`(from, record.head.length)` of local feed `feed`,
/// held as `record` says: what proves a prefix of length `from` against the latest head.
pub(crate) fn extension_from(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    record: &FeedRecord,
    from: u64,
) -> Result<Vec<Hash>> {
    let held_extension: HashMap<Node, Hash> =
        tree::extension_nodes(record.held, record.head.length)?
            .into_iter()
            .zip(record.extension.iter().copied())
            .collect();
    tree::extension_nodes(from, record.head.length)?
        .into_iter()
        .map(|node| node_hash(entries, feed, record.held, &held_extension, node))
        .collect()
}

/// The hash of `node` of a feed holding `[0, held)`: from the entry rows when the node lies in
/// the held prefix, from the stored extension when it lies past it, and hashed from its
/// children when it straddles the end. A node the extension does not cover cannot be asked for:
/// every maximal node past `held` in a decomposition from an earlier end is one of them.
pub(crate) fn node_hash(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    held: u64,
    extension: &HashMap<Node, Hash>,
    node: Node,
) -> Result<Hash> {
    if node.end_leaf() <= held {
        return read_node(entries, feed, node);
    }
    if node.first_leaf() >= held {
        return extension.get(&node).copied().ok_or_else(|| {
            Error::Damaged(format!(
                "tree node {} of local feed {feed} is not in its stored extension",
                node.flat_index()
            ))
        });
    }
    let (left, right) = node.children();
    let left = node_hash(entries, feed, held, extension, left)?;
    let right = node_hash(entries, feed, held, extension, right)?;
    Ok(tree::parent_hash(&left, &right))
}
