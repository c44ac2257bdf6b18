//! Sparse replicas: areas of interest, feeds held with holes, and the verified runs that fill
//! them.
//!
//! A sparse replica of a namespace keeps only the entries whose key falls under one of its
//! prefixes (and, when it names some, whose author is one of them). It holds each remote feed
//! with holes: the rows of the entries it wants, laid out as a full feed's rows are, plus, in
//! [`tables::NODES`], the tree nodes no held row carries. Every held entry stays provable
//! against its author's latest signed head.
//!
//! A [`SparseRun`] carries the wanted entries of `[start, end)` of a feed with a
//! [`SparseShape`] proof. The receiver holds every wanted entry before `start` and the peaks of
//! `start`; after the run it holds every wanted entry before `end` and the peaks of `end`, so
//! runs chain, from any peer that holds what they carry, full or sparse.
//!
//! The view is built from what is held. Every version of a key is a version of that key, and a
//! sparse replica fetches every version its peers hold of each key it wants (superseded ones
//! too, so a stale copy arriving later from a lagging peer stays dead), so for the keys under
//! its interest the view is the one a full replica builds.

use std::collections::{BTreeSet, HashMap};

use redb::{ReadableDatabase, ReadableTable};
use weft_crdt::VersionId;

use super::{
    IngestError, IngestTxn, Ingested, Invalid, Run, check_remote_entry, store_err,
    store_remote_entry,
};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{AuthorId, NamespaceId};
use crate::interest::{Interest, InterestError};
use crate::rows::{
    FeedRecord, SparseRecord, SparseTree, decode_row, entry_bytes, feed_slot, held_extension,
    key_versions, namespace_feeds, node_hash, prefix_range, sparse_row, with_entry,
};
use crate::store::Store;
use crate::tables::{
    self, ENTRIES, FEED_IDS, FEEDS, INTERESTS, NODES, SPARSE_FEEDS, VIEW, feed_key, view_key,
};
use crate::tree::{self, Hash, Node, ProofError, SparseShape};
use crate::view::ViewTables;

/// Some entries of `[start, end)` of a feed, with the proof that they are its entries.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SparseRun {
    /// The signed head they are proven against.
    pub head: SignedHead,
    /// Where the receiver's checked prefix ends.
    pub start: u64,
    /// Every wanted entry before `end` is in this run or held already.
    pub end: u64,
    /// The entries, by index, increasing.
    pub entries: Vec<(u64, Vec<u8>)>,
    /// The hashes of [`SparseShape::proof_nodes`].
    pub nodes: Vec<Hash>,
}

impl SparseRun {
    pub(crate) fn leaves(&self) -> Vec<u64> {
        self.entries.iter().map(|(seq, _)| *seq).collect()
    }
}

/// What [`Store::read_sparse`] found to send.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Served {
    /// A run to send.
    Run(Box<SparseRun>),
    /// Nothing from the start asked for is held.
    Nothing,
    /// This replica's own interest does not cover what was asked, or it cannot prove it.
    NotCovered,
}

/// Keys under a sparse request's prefixes read from the view before its answer is made from
/// the feed instead (see [`Store::read_sparse`]).
pub const VIEW_WALK_KEYS: usize = 4096;

/// Entries of a feed one sparse answer made from the feed reads; it ends where they end.
pub const FEED_WALK_ENTRIES: u64 = 32_768;

impl Store {
    /// The interest of this replica of `ns`; `None` when it is full.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`].
    pub fn interest(&self, ns: &NamespaceId) -> Result<Option<Interest>> {
        self.namespace_number(ns)?;
        Ok(self.interests().get(ns).cloned())
    }

    /// Whether this replica of `ns` replicates `key`.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`].
    pub fn covers(&self, ns: &NamespaceId, key: &[u8]) -> Result<bool> {
        Ok(self
            .interest(ns)?
            .is_none_or(|interest| interest.covers_key(key)))
    }

    /// Sets the interest of this replica of `ns`. A replica that holds no remote feed yet may
    /// become sparse; one that holds remote feeds in full cannot, and a sparse replica cannot
    /// become full. A new prefix makes every sparse feed scan again from its start, fetching
    /// what lies under it; entries under a prefix taken away stay stored.
    ///
    /// # Errors
    /// [`Error::Interest`] for an interest that cannot be set ([`InterestError`]), [`Error::UnknownNamespace`],
    /// and database failures.
    pub fn set_interest(&self, ns: &NamespaceId, interest: Interest) -> Result<()> {
        let ns_number = self.namespace_number(ns)?;
        let interest = Interest::new(interest.prefixes, interest.authors);
        interest.check(self.options().max_key_len)?;
        let current = self.interest(ns)?;
        let txn = self.db().begin_write()?;
        {
            let sparse_feeds = self.sparse_feeds(&txn, ns_number)?;
            let mut sparse = txn.open_table(SPARSE_FEEDS)?;
            match &current {
                None => {
                    let feed_ids = txn.open_table(FEED_IDS)?;
                    let feeds = namespace_feeds(&feed_ids, ns_number)?;
                    if feeds.iter().any(|(author, _)| *author != self.author()) {
                        return Err(InterestError::AlreadyFull.into());
                    }
                }
                Some(current) => {
                    let widened = interest
                        .prefixes
                        .iter()
                        .any(|prefix| !current.covers_key(prefix));
                    if widened {
                        for feed in sparse_feeds {
                            let bytes = sparse.get(feed)?.map(|b| b.value().to_vec());
                            let mut record = SparseRecord::decode(&bytes.unwrap_or_default())?;
                            record.scanned = 0;
                            sparse.insert(feed, &record.encode()[..])?;
                        }
                    }
                }
            }
            let bytes = postcard::to_allocvec(&interest).expect("interests always encode");
            txn.open_table(INTERESTS)?
                .insert(ns.as_bytes(), &bytes[..])?;
        }
        txn.commit()?;
        self.interests_mut().insert(*ns, interest);
        Ok(())
    }

    /// The local ids of the sparse feeds of namespace number `ns_number`.
    fn sparse_feeds(&self, txn: &redb::WriteTransaction, ns_number: u32) -> Result<Vec<u64>> {
        let feed_ids = txn.open_table(FEED_IDS)?;
        let sparse = txn.open_table(SPARSE_FEEDS)?;
        let mut out = Vec::new();
        for (_, feed) in namespace_feeds(&feed_ids, ns_number)? {
            if sparse.get(feed)?.is_some() {
                out.push(feed);
            }
        }
        Ok(out)
    }

    /// The entries of `author`'s feed in `ns` from `start` whose key `want` covers, every held
    /// version of each key, live or superseded: at most `max_entries` of them and, past the
    /// first, `max_bytes` of entry bytes, with their proof against the latest head held. Under
    /// more than [`VIEW_WALK_KEYS`] keys a replica holding the feed in full reads at most
    /// [`FEED_WALK_ENTRIES`] entries of it instead, and the run ends there.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures; [`Error::Damaged`] when stored rows do
    /// not read.
    pub fn read_sparse(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        start: u64,
        want: &Interest,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Served> {
        let ns_number = self.namespace_number(ns)?;
        let own = self.interest(ns)?;
        if own.as_ref().is_some_and(|own| !own.serves(want, author)) {
            return Ok(Served::NotCovered);
        }
        // An interest no replica could hold (an empty prefix covers the whole view, and the
        // scan below would walk all of it for every request) is refused, not served.
        if want.check(self.options().max_key_len).is_err() {
            return Ok(Served::NotCovered);
        }
        if !want.covers_author(author) || max_entries == 0 {
            return Ok(Served::Nothing);
        }
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(Served::Nothing);
        };
        let sparse = txn.open_table(SPARSE_FEEDS)?;
        let sparse_record = match sparse.get(feed)? {
            Some(bytes) => Some(SparseRecord::decode(bytes.value())?),
            None => None,
        };
        let mut limit = sparse_record.map_or(record.held, |r| r.scanned);
        if start >= limit {
            return Ok(Served::Nothing);
        }

        let view = txn.open_table(VIEW)?;
        let superseded = txn.open_table(tables::SUPERSEDED)?;
        let entries_table = txn.open_table(ENTRIES)?;
        // Walking the keys under the prefixes finds a narrow interest's entries without
        // reading the rest of the feed; but under a wide one every request would walk every
        // key again. Past VIEW_WALK_KEYS keys the answer is made from the feed instead, and
        // ends where FEED_WALK_ENTRIES of it were read, so no request costs more than either.
        // A sparse server keeps to the keys: it may lack the tree nodes to end anywhere else.
        let mut seqs = BTreeSet::new();
        let mut keys_walked = 0usize;
        let mut wide = false;
        'keys: for prefix in &want.prefixes {
            for row in prefix_range(&view, &view_key(ns_number, prefix))? {
                keys_walked += 1;
                if keys_walked > VIEW_WALK_KEYS && sparse_record.is_none() {
                    wide = true;
                    break 'keys;
                }
                let (key, _) = row?;
                let key = &key.value()[4..];
                for (id, _) in key_versions(&view, &superseded, ns_number, key)? {
                    if id.author == *author && (start..limit).contains(&id.seq) {
                        seqs.insert(id.seq);
                    }
                }
            }
        }
        if wide {
            seqs.clear();
            limit = limit.min(start.saturating_add(FEED_WALK_ENTRIES));
            for row in entries_table.range(feed_key(feed, start)..feed_key(feed, limit))? {
                let (at, row) = row?;
                let seq = at.value() as u64;
                let key = decode_row(feed, seq, row.value())?.key;
                if want.prefixes.iter().any(|p| key.starts_with(p)) {
                    seqs.insert(seq);
                }
            }
        } else {
            // Entries that do not count here (no grant yet, a future timestamp) are not in
            // the view, but the asker judges them by what it knows, so they are sent too.
            let excluded = txn.open_table(tables::EXCLUDED)?;
            for row in excluded.range(feed_key(feed, start)..feed_key(feed, limit))? {
                let seq = row?.0.value() as u64;
                let wanted = with_entry(&entries_table, feed, seq, |entry| {
                    want.prefixes.iter().any(|p| entry.key.starts_with(p))
                })?;
                if wanted {
                    seqs.insert(seq);
                }
            }
        }

        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut end = limit;
        for seq in seqs {
            let Some(row) = entries_table.get(feed_key(feed, seq))? else {
                // Superseded rows may name versions this replica never received.
                continue;
            };
            let parts = entry_bytes(feed, seq, row.value())?;
            if tables::is_pruned(parts.entry) {
                continue;
            }
            if entries.len() == max_entries
                || (!entries.is_empty() && bytes + parts.entry.len() > max_bytes)
            {
                end = seq;
                break;
            }
            bytes += parts.entry.len();
            entries.push((seq, parts.entry.to_vec()));
        }

        // Scattered leaves need their own proof paths, up to a tree height of hashes each:
        // those count toward the budget too, so that an honest answer never outgrows what
        // the asker accepts. Dropping entries from the end shortens the run until it fits.
        let mut leaves: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
        let proof_bytes = |leaves: &[u64], end: u64| {
            let shape = SparseShape {
                length: record.head.length,
                start,
                end,
                leaves,
            };
            shape.proof_nodes().len() * std::mem::size_of::<Hash>()
        };
        while leaves.len() > 1 && bytes + proof_bytes(&leaves, end) > max_bytes {
            let keep = leaves.len() * 3 / 4;
            end = leaves[keep];
            leaves.truncate(keep);
            entries.truncate(keep);
            bytes = entries.iter().map(|(_, entry)| entry.len()).sum();
        }
        let shape = SparseShape {
            length: record.head.length,
            start,
            end,
            leaves: &leaves,
        };
        let mut nodes = Vec::new();
        if sparse_record.is_some() {
            let stored = txn.open_table(NODES)?;
            let tree = SparseTree {
                entries: &entries_table,
                nodes: &stored,
                feed,
            };
            for node in shape.proof_nodes() {
                match tree.hash(node)? {
                    Some(hash) => nodes.push(hash),
                    // Asked from a boundary this replica never had: another peer may do.
                    None => return Ok(Served::NotCovered),
                }
            }
        } else {
            let extension = held_extension(&record)?;
            for node in shape.proof_nodes() {
                nodes.push(node_hash(
                    &entries_table,
                    feed,
                    record.held,
                    &extension,
                    node,
                )?);
            }
        }
        Ok(Served::Run(Box::new(SparseRun {
            head: record.head,
            start,
            end,
            entries,
            nodes,
        })))
    }

    /// Verifies a sparse run of a remote feed and stores the entries it carries that are not
    /// held yet, merging them into the view, in one transaction.
    ///
    /// # Errors
    /// [`IngestError::Invalid`] when the run does not verify or carries an entry outside this
    /// replica's interest; [`IngestError::Store`] when the store fails. Nothing is stored in
    /// either case.
    pub fn ingest_sparse(&self, run: &SparseRun) -> Result<Ingested, IngestError> {
        let head = &run.head;
        let ns_number = self
            .namespace_number(&head.namespace)
            .map_err(|_| Invalid::UnknownNamespace(head.namespace))?;
        let Some(interest) = self.interest(&head.namespace)? else {
            return Err(Invalid::OutsideInterest { seq: None }.into());
        };
        if head.author == self.author() {
            return Err(Invalid::OwnFeed.into());
        }
        if !interest.covers_author(&head.author) {
            return Err(Invalid::OutsideInterest { seq: None }.into());
        }
        if !self.syncs_author(&head.namespace, &head.author)? {
            return Ok(Ingested::NotMember {
                held: self.head_held(&head.namespace, &head.author)?,
            });
        }
        let leaves = run.leaves();
        let shape = SparseShape {
            length: head.length,
            start: run.start,
            end: run.end,
            leaves: &leaves,
        };
        shape.check().map_err(Invalid::Proof)?;
        let mut decoded = Vec::with_capacity(run.entries.len());
        for (seq, bytes) in &run.entries {
            let entry = check_remote_entry(self, *seq, bytes)?;
            if !interest.covers_key(entry.key) {
                return Err(Invalid::OutsideInterest { seq: Some(*seq) }.into());
            }
            decoded.push(entry);
        }

        let IngestTxn {
            txn,
            index_key,
            frozen,
            mut gate,
        } = self.begin_ingest(ns_number, head)?;
        let outcome = {
            let mut feeds = txn.open_table(FEEDS).map_err(store_err)?;
            let mut feed_ids = txn.open_table(FEED_IDS).map_err(store_err)?;
            let mut sparse = txn.open_table(SPARSE_FEEDS).map_err(store_err)?;
            let mut entries = txn.open_table(ENTRIES).map_err(store_err)?;
            let mut stored = txn.open_table(NODES).map_err(store_err)?;
            let mut view = ViewTables::open(&txn)?;
            let (feed, known) = feed_slot(&feeds, &feed_ids, &index_key)?;
            let (record, held_length) = match &known {
                Some(known) => {
                    let record = sparse.get(feed).map_err(store_err)?.ok_or_else(|| {
                        Error::Damaged(format!("feed {feed} of a sparse namespace is held in full"))
                    })?;
                    (SparseRecord::decode(record.value())?, known.head.length)
                }
                None => (SparseRecord::default(), 0),
            };
            if let Some(at) = frozen {
                return Ok(Ingested::Frozen {
                    held: record.scanned,
                    at,
                });
            }
            if run.start > record.scanned {
                return Ok(Ingested::Gap {
                    held: record.scanned,
                });
            }
            // A run from an older boundary, or against an older head, adds nothing this
            // replica can chain: it asks again from where it stands.
            if run.start < record.scanned || head.length < held_length || run.end == run.start {
                return Ok(Ingested::AlreadyHeld {
                    held: record.scanned,
                });
            }

            let tree = SparseTree {
                entries: &entries,
                nodes: &stored,
                feed,
            };
            let mut known_peaks = Vec::new();
            for peak in tree::peaks(run.start) {
                known_peaks.push(tree.hash(peak)?.ok_or_else(|| {
                    Error::Damaged(format!(
                        "tree node {} of local feed {feed} is missing",
                        peak.flat_index()
                    ))
                })?);
            }
            let leaf_hashes: Vec<Hash> = run
                .entries
                .iter()
                .map(|(_, bytes)| tree::leaf_hash(bytes))
                .collect();
            let mut computed = HashMap::new();
            let root = shape
                .root(&known_peaks, &leaf_hashes, &run.nodes, |node, hash| {
                    computed.insert(node, *hash);
                })
                .map_err(Invalid::Proof)?;
            if root != head.root {
                return Err(Invalid::Proof(ProofError::RootMismatch).into());
            }
            head.verify().map_err(Invalid::Proof)?;

            let mut added = 0u64;
            for ((seq, bytes), entry) in run.entries.iter().zip(&decoded) {
                let seq = *seq;
                if entries
                    .get(feed_key(feed, seq))
                    .map_err(store_err)?
                    .is_some()
                {
                    continue;
                }
                let row = sparse_row(seq, bytes, &computed)?;
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
                    &row,
                    entry,
                )?;
                added += 1;
            }
            // Keep the proof nodes, and the peaks of `end` that the next run starts from.
            let keep = shape.proof_nodes().into_iter().chain(tree::peaks(run.end));
            for node in keep {
                if let Some(hash) = computed.get(&node) {
                    stored
                        .insert(feed_key(feed, node.flat_index()), hash)
                        .map_err(store_err)?;
                }
            }
            if known.is_none() {
                feed_ids.insert(&index_key[..], feed).map_err(store_err)?;
            }
            let head_record = FeedRecord {
                ns: ns_number,
                head: head.clone(),
                held: 0,
                extension: Vec::new(),
            };
            feeds
                .insert(feed, &head_record.encode()[..])
                .map_err(store_err)?;
            let record = SparseRecord {
                scanned: run.end,
                entries: record.entries + added,
            };
            sparse
                .insert(feed, &record.encode()[..])
                .map_err(store_err)?;
            Ingested::Appended {
                added,
                held: run.end,
            }
        };
        self.commit_view(txn, &gate, &head.namespace)?;
        Ok(outcome)
    }

    /// A contiguous run (a gossip push) for a sparse namespace: the entries under the interest
    /// are taken out with a proof made from the rest, and ingested as a sparse run. The other
    /// entries are dropped.
    pub(crate) fn ingest_run_sparsely(
        &self,
        run: &Run,
        interest: &Interest,
    ) -> Result<Ingested, IngestError> {
        let head = &run.head;
        if head.author == self.author() {
            return Err(Invalid::OwnFeed.into());
        }
        let end = run.end();
        if end > head.length {
            return Err(Invalid::BadRange {
                start: run.start,
                end,
                length: head.length,
            }
            .into());
        }
        let scanned = {
            let txn = self.db().begin_read().map_err(store_err)?;
            match self.feed_record(&txn, &head.namespace, &head.author)? {
                Some((feed, _)) => {
                    let sparse = txn.open_table(SPARSE_FEEDS).map_err(store_err)?;
                    match sparse.get(feed).map_err(store_err)? {
                        Some(bytes) => SparseRecord::decode(bytes.value())?.scanned,
                        None => 0,
                    }
                }
                None => 0,
            }
        };
        if run.start > scanned {
            return Ok(Ingested::Gap { held: scanned });
        }
        if end <= scanned || !interest.covers_author(&head.author) {
            return Ok(Ingested::AlreadyHeld { held: scanned });
        }
        let fresh = &run.entries[(scanned - run.start) as usize..];
        let leaf_hashes: Vec<Hash> = fresh.iter().map(|bytes| tree::leaf_hash(bytes)).collect();
        let mut wanted = Vec::new();
        for (i, bytes) in fresh.iter().enumerate() {
            let seq = scanned + i as u64;
            let entry = Entry::decode(bytes).map_err(|e| Invalid::Entry {
                seq,
                reason: e.to_string(),
            })?;
            if interest.covers_key(entry.key) {
                wanted.push((seq, bytes.clone()));
            }
        }
        let leaves: Vec<u64> = wanted.iter().map(|(seq, _)| *seq).collect();
        let shape = SparseShape {
            length: head.length,
            start: scanned,
            end,
            leaves: &leaves,
        };
        let extension: HashMap<Node, Hash> = tree::extension_nodes(end, head.length)
            .map_err(Invalid::Proof)?
            .into_iter()
            .zip(run.extension.iter().copied())
            .collect();
        let mut nodes = Vec::new();
        for node in shape.proof_nodes() {
            let hash = if node.end_leaf() <= end {
                subtree_hash(node, scanned, &leaf_hashes)
            } else {
                *extension
                    .get(&node)
                    .ok_or(Invalid::Proof(ProofError::WrongNodeCount))?
            };
            nodes.push(hash);
        }
        self.ingest_sparse(&SparseRun {
            head: head.clone(),
            start: scanned,
            end,
            entries: wanted,
            nodes,
        })
    }
}

/// The hash of `node`, which lies within the leaves `[first, first + leaves.len())`.
fn subtree_hash(node: Node, first: u64, leaves: &[Hash]) -> Hash {
    if node.depth == 0 {
        return leaves[(node.offset - first) as usize];
    }
    let (left, right) = node.children();
    tree::parent_hash(
        &subtree_hash(left, first, leaves),
        &subtree_hash(right, first, leaves),
    )
}
