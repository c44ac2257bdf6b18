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
use serde::{Deserialize, Serialize};
use weft_crdt::{Op, Register, Version, VersionId, Write};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{AuthorId, NamespaceId};
use crate::members::RESERVED_PREFIX;
use crate::replicate::{
    IngestError, Ingested, Invalid, Run, check_remote_entry, feed_slot, is_frozen, node_hash,
    store_err, store_remote_entry,
};
use crate::store::{FeedRecord, Store, VersionInfo, key_versions, read_register, with_entry};
use crate::tables::{
    self, ENTRIES, FEED_IDS, FEEDS, INTERESTS, NODES, SPARSE_FEEDS, VIEW, feed_key, view_key,
};
use crate::tree::{self, Hash, Node, ProofError, SparseShape};
use crate::view::{ViewTables, commit};

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

/// A sparse feed's progress, the value of [`tables::SPARSE_FEEDS`].
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(crate) struct SparseRecord {
    /// Every wanted entry before this index is held.
    pub scanned: u64,
    /// Entry rows held.
    pub entries: u64,
}

impl SparseRecord {
    pub fn decode(bytes: &[u8]) -> Result<SparseRecord> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::Damaged(format!("a sparse feed record does not decode ({e})")))
    }

    fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("sparse records always encode")
    }
}

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
    fn leaves(&self) -> Vec<u64> {
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

/// A sparse feed's tree as stored: nodes from held entry rows and from [`tables::NODES`], and
/// parents made from children where those are known.
pub(crate) struct SparseTree<'t, E, N> {
    pub entries: &'t E,
    pub nodes: &'t N,
    pub feed: u64,
}

impl<E, N> SparseTree<'_, E, N>
where
    E: ReadableTable<u128, &'static [u8]>,
    N: ReadableTable<u128, &'static [u8; 32]>,
{
    /// Whether any entry under `node` is held.
    pub fn holds_entry(&self, node: Node) -> Result<bool> {
        let range = feed_key(self.feed, node.first_leaf())..feed_key(self.feed, node.end_leaf());
        Ok(self.entries.range(range)?.next().transpose()?.is_some())
    }

    /// Whether any node under `node` is stored.
    fn stores_below(&self, node: Node) -> Result<bool> {
        // In-order flat indexes make a subtree one contiguous range.
        let low = feed_key(self.feed, 2 * node.first_leaf());
        let high = feed_key(self.feed, 2 * node.end_leaf() - 2);
        Ok(self.nodes.range(low..=high)?.next().transpose()?.is_some())
    }

    /// A stored node's hash, without making it from children.
    pub fn stored(&self, node: Node) -> Result<Option<Hash>> {
        if let Some(hash) = self.nodes.get(feed_key(self.feed, node.flat_index()))? {
            return Ok(Some(*hash.value()));
        }
        // A held row carries every node whose last leaf it is.
        let (seq, at) = tables::node_location(node);
        Ok(self
            .entries
            .get(feed_key(self.feed, seq))?
            .and_then(|row| row.value().get(at..at + 32)?.try_into().ok()))
    }

    /// `node`'s hash, if what is stored fixes it.
    pub fn hash(&self, node: Node) -> Result<Option<Hash>> {
        if let Some(hash) = self.stored(node)? {
            return Ok(Some(hash));
        }
        if node.depth == 0 || !(self.holds_entry(node)? || self.stores_below(node)?) {
            return Ok(None);
        }
        let (left, right) = node.children();
        match (self.hash(left)?, self.hash(right)?) {
            (Some(left), Some(right)) => Ok(Some(tree::parent_hash(&left, &right))),
            _ => Ok(None),
        }
    }
}

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
    /// [`Error::Interest`] for an interest that cannot be set, [`Error::UnknownNamespace`],
    /// and database failures.
    pub fn set_interest(&self, ns: &NamespaceId, interest: Interest) -> Result<()> {
        let ns_number = self.namespace_number(ns)?;
        let interest = Interest::new(interest.prefixes, interest.authors);
        if interest.prefixes.is_empty() {
            return Err(Error::Interest(
                "a sparse replica needs at least one prefix; a replica cannot go back to full \
                 (make a new one with `weft init --join TICKET`)"
                    .into(),
            ));
        }
        if interest.prefixes.len() > MAX_PREFIXES {
            return Err(Error::Interest(format!(
                "{} prefixes, over the limit of {MAX_PREFIXES}",
                interest.prefixes.len()
            )));
        }
        let bytes: usize = interest.prefixes.iter().map(Vec::len).sum();
        if bytes > MAX_INTEREST_BYTES {
            return Err(Error::Interest(format!(
                "prefixes of {bytes} bytes in all, over the limit of {MAX_INTEREST_BYTES}"
            )));
        }
        for prefix in &interest.prefixes {
            if prefix.is_empty() {
                return Err(Error::Interest("a prefix must not be empty".into()));
            }
            self.options()
                .validate(prefix, &Op::Delete)
                .map_err(|e| Error::Interest(format!("prefix: {e}")))?;
        }
        let current = self.interest(ns)?;
        let txn = self.db().begin_write()?;
        {
            let sparse_feeds = self.sparse_feeds(&txn, ns_number)?;
            let mut sparse = txn.open_table(SPARSE_FEEDS)?;
            match &current {
                None => {
                    let feed_ids = txn.open_table(FEED_IDS)?;
                    let low = tables::feed_ids_key(ns_number, &AuthorId([0; 32]));
                    let high = tables::feed_ids_key(ns_number, &AuthorId([0xff; 32]));
                    let own = tables::feed_ids_key(ns_number, &self.author());
                    for row in feed_ids.range(&low[..]..=&high[..])? {
                        let (key, _) = row?;
                        if key.value() != own {
                            return Err(Error::Interest(
                                "this replica already holds other authors' feeds in full; a \
                                 full replica cannot become sparse (make a new one with \
                                 `weft init --join TICKET --prefix P`)"
                                    .into(),
                            ));
                        }
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
        let low = tables::feed_ids_key(ns_number, &AuthorId([0; 32]));
        let high = tables::feed_ids_key(ns_number, &AuthorId([0xff; 32]));
        let mut out = Vec::new();
        for row in feed_ids.range(&low[..]..=&high[..])? {
            let (_, feed) = row?;
            if sparse.get(feed.value())?.is_some() {
                out.push(feed.value());
            }
        }
        Ok(out)
    }

    /// The entries of `author`'s feed in `ns` from `start` whose key `want` covers, every held
    /// version of each key, live or superseded: at most `max_entries` of them and, past the
    /// first, `max_bytes` of entry bytes, with their proof against the latest head held.
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
        let limit = sparse_record.map_or(record.held, |r| r.scanned);
        if start >= limit {
            return Ok(Served::Nothing);
        }

        let view = txn.open_table(VIEW)?;
        let superseded = txn.open_table(tables::SUPERSEDED)?;
        let mut seqs = BTreeSet::new();
        for prefix in &want.prefixes {
            let low = view_key(ns_number, prefix);
            let range = match crate::store::prefix_end(&low) {
                Some(high) => view.range(&low[..]..&high[..])?,
                None => view.range(&low[..]..)?,
            };
            for row in range {
                let (key, _) = row?;
                let key = &key.value()[4..];
                for (id, _) in key_versions(&view, &superseded, ns_number, key)? {
                    if id.author == *author && (start..limit).contains(&id.seq) {
                        seqs.insert(id.seq);
                    }
                }
            }
        }
        let entries_table = txn.open_table(ENTRIES)?;
        // Entries that do not count here (no grant yet, a future timestamp) are not in the
        // view, but the asker judges them by what it knows, so they are sent too.
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

        let mut entries = Vec::new();
        let mut bytes = 0usize;
        let mut end = limit;
        for seq in seqs {
            let Some(row) = entries_table.get(feed_key(feed, seq))? else {
                // Superseded rows may name versions this replica never received.
                continue;
            };
            let parts = tables::split_row(seq, row.value()).ok_or_else(|| {
                Error::Damaged(format!("entry {seq} of local feed {feed} is truncated"))
            })?;
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

        let leaves: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
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
            let extension: HashMap<Node, Hash> =
                tree::extension_nodes(record.held, record.head.length)?
                    .into_iter()
                    .zip(record.extension.iter().copied())
                    .collect();
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

    /// The live versions of `key` in `ns`, each in a run proven against its author's head from
    /// index 0: what a peer sends for a remote read.
    ///
    /// # Errors
    /// As [`Store::read_sparse`].
    pub fn read_key(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<SparseRun>> {
        let ns_number = self.namespace_number(ns)?;
        let live = {
            let txn = self.db().begin_read()?;
            read_register(&txn.open_table(VIEW)?, ns_number, key)?
        };
        let mut by_author: HashMap<AuthorId, Vec<u64>> = HashMap::new();
        for version in live.live() {
            by_author
                .entry(version.id.author)
                .or_default()
                .push(version.id.seq);
        }
        let mut runs = Vec::new();
        let want = Interest::new([key.to_vec()], Vec::new());
        for (author, mut seqs) in by_author {
            seqs.sort_unstable();
            // Read as a sparse run of this one key from 0, then keep only the live versions.
            if let Served::Run(mut run) =
                self.read_sparse(ns, &author, 0, &want, usize::MAX, usize::MAX)?
            {
                // Keys that merely start with `key` ride along; drop them and re-prove.
                run.entries
                    .retain(|(seq, _)| seqs.binary_search(seq).is_ok());
                if let Some(run) = self.reprove(ns, &author, *run)? {
                    runs.push(run);
                }
            }
        }
        Ok(runs)
    }

    /// `run` with its proof remade for the entries it still carries.
    fn reprove(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        run: SparseRun,
    ) -> Result<Option<SparseRun>> {
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(None);
        };
        if record.head != run.head {
            return Ok(None);
        }
        let entries = txn.open_table(ENTRIES)?;
        let stored = txn.open_table(NODES)?;
        let leaves = run.leaves();
        let shape = SparseShape {
            length: run.head.length,
            start: run.start,
            end: run.end,
            leaves: &leaves,
        };
        let extension: HashMap<Node, Hash> =
            tree::extension_nodes(record.held, record.head.length)?
                .into_iter()
                .zip(record.extension.iter().copied())
                .collect();
        let is_sparse = txn.open_table(SPARSE_FEEDS)?.get(feed)?.is_some();
        let tree = SparseTree {
            entries: &entries,
            nodes: &stored,
            feed,
        };
        let mut nodes = Vec::new();
        for node in shape.proof_nodes() {
            let hash = if is_sparse {
                tree.hash(node)?
            } else {
                Some(node_hash(&entries, feed, record.held, &extension, node)?)
            };
            match hash {
                Some(hash) => nodes.push(hash),
                None => return Ok(None),
            }
        }
        Ok(Some(SparseRun { nodes, ..run }))
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

        let mut txn = self.db().begin_write().map_err(store_err)?;
        txn.set_durability(self.durability()).map_err(store_err)?;
        let index_key = tables::feed_ids_key(ns_number, &head.author);
        let frozen = is_frozen(&txn, &index_key)?;
        let mut gate = self.gate(&head.namespace)?;
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
            if frozen {
                return Ok(Ingested::Frozen {
                    held: record.scanned,
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
                let mut row = Vec::with_capacity(32 * 4 + bytes.len());
                row.extend_from_slice(&tree::leaf_hash(bytes));
                for depth in 1..=tables::row_parents(seq) as u32 {
                    let node = Node {
                        depth,
                        offset: (seq + 1 - (1 << depth)) >> depth,
                    };
                    let hash = computed.get(&node).ok_or_else(|| {
                        Error::Damaged(format!("tree node {} was not rebuilt", node.flat_index()))
                    })?;
                    row.extend_from_slice(hash);
                }
                row.extend_from_slice(bytes);
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
            let head_record =
                postcard::to_allocvec(&head_record).expect("feed records always encode");
            feeds.insert(feed, &head_record[..]).map_err(store_err)?;
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
        commit(self, txn, &gate, &head.namespace)?;
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

/// Checks the runs a peer sent for a remote read of `key` in `ns` ([`Store::read_key`]) and
/// merges their versions: the live versions, last writer first. Nothing is stored.
///
/// # Errors
/// [`Invalid`] when a run does not verify or carries another key.
pub fn verify_remote_key(
    ns: &NamespaceId,
    key: &[u8],
    runs: &[SparseRun],
) -> std::result::Result<Vec<VersionInfo>, Invalid> {
    let mut register: Register<Vec<u8>> = Register::default();
    let mut superseded = BTreeSet::new();
    for run in runs {
        if run.head.namespace != *ns || run.start != 0 {
            return Err(Invalid::UnknownNamespace(run.head.namespace));
        }
        let leaves = run.leaves();
        let shape = SparseShape {
            length: run.head.length,
            start: 0,
            end: run.end,
            leaves: &leaves,
        };
        let hashes: Vec<Hash> = run
            .entries
            .iter()
            .map(|(_, bytes)| tree::leaf_hash(bytes))
            .collect();
        if shape.root(&[], &hashes, &run.nodes, |_, _| {})? != run.head.root {
            return Err(ProofError::RootMismatch.into());
        }
        run.head.verify()?;
        for (seq, bytes) in &run.entries {
            let entry = Entry::decode(bytes).map_err(|e| Invalid::Entry {
                seq: *seq,
                reason: e.to_string(),
            })?;
            if entry.key != key {
                return Err(Invalid::OutsideInterest { seq: Some(*seq) });
            }
            let write = Write {
                version: Version {
                    id: VersionId {
                        author: run.head.author,
                        seq: *seq,
                    },
                    timestamp: entry.timestamp,
                    op: entry.op.map(|value| value.to_vec()),
                },
                supersedes: entry.supersedes.clone(),
            };
            let Ok(_) = register.apply(write, &mut superseded);
        }
    }
    Ok(register
        .live()
        .iter()
        .map(|version| VersionInfo {
            id: version.id,
            timestamp: version.timestamp,
            value: match &version.op {
                Op::Put(value) => Some(value.clone()),
                Op::Delete => None,
            },
        })
        .collect())
}
