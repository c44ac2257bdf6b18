//! The rows of the database and how to read them: the codecs of feed, sparse-feed and entry
//! rows, the accessors every other module reads through, and the one way an entry row is
//! built from an entry and its tree nodes.
//!
//! Nothing here opens a transaction: callers pass the tables of theirs.

use std::collections::HashMap;

use redb::{ReadOnlyTable, ReadableTable};
use serde::{Deserialize, Serialize};
use weft_crdt::{Op, Register, Timestamp, VersionHash, VersionId};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::AuthorId;
use crate::tables::{self, feed_key, view_key};
use crate::tree::{self, Frontier, Hash, Node};

/// A [`tables::FEEDS`] row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct FeedRecord {
    /// The local number of the feed's namespace.
    pub ns: u32,
    /// The latest signed head.
    pub head: SignedHead,
    /// How many entries of the feed are stored: always a prefix, and at most `head.length`.
    pub held: u64,
    /// The hashes of [`tree::extension_nodes`]`(held, head.length)`: with the stored tree they
    /// prove the held prefix against `head`. Empty when everything is held.
    pub extension: Vec<Hash>,
}

impl FeedRecord {
    pub fn decode(bytes: &[u8]) -> Result<FeedRecord> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::Damaged(format!("a feed record does not decode ({e})")))
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("feed records always encode")
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

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("sparse records always encode")
    }
}

/// The part of a pruned entry that is kept ([`tables::PRUNED_FORMAT`]); `L` is a
/// [`weft_crdt::Link`], or a [`VersionId`] in a stub of [`tables::PRUNED_FORMAT_UNHASHED`].
#[derive(Serialize, Deserialize)]
pub(crate) struct Stub<'a, L = weft_crdt::Link> {
    pub timestamp: Timestamp,
    #[serde(borrow)]
    pub key: &'a [u8],
    pub supersedes: Vec<L>,
}

impl<'a> Stub<'a> {
    /// The stub as an entry the view can replay: a put with an empty value, which is never
    /// read, since only superseded versions are pruned.
    pub fn into_entry(self) -> Entry<'a> {
        Entry {
            timestamp: self.timestamp,
            key: self.key,
            op: Op::Put(&[]),
            supersedes: self.supersedes,
        }
    }
}

/// Appends the entry `bytes` to `frontier` and writes its [`tables::ENTRIES`] row into `row`:
/// the leaf hash, the parent nodes the append completed, the bytes. Local writes and ingested
/// runs build their rows here.
pub(crate) fn append_row(frontier: &mut Frontier, bytes: &[u8], row: &mut Vec<u8>) {
    let leaf = tree::leaf_hash(bytes);
    row.clear();
    row.extend_from_slice(&leaf);
    frontier.push(leaf, |_, parent| row.extend_from_slice(&parent));
    row.extend_from_slice(bytes);
}

/// The [`tables::ENTRIES`] row of entry `seq`, whose parent nodes a sparse run's proof rebuilt
/// into `computed`.
pub(crate) fn sparse_row(
    seq: u64,
    bytes: &[u8],
    computed: &HashMap<Node, Hash>,
) -> Result<Vec<u8>> {
    let mut row = Vec::with_capacity(32 * (1 + tables::row_parents(seq)) + bytes.len());
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
    Ok(row)
}

/// The leaf hash an [`tables::ENTRIES`] row starts with, which links to its entry name. Call
/// it on a row [`decode_row`] read, so it is known to be long enough.
pub(crate) fn row_hash(row: &[u8]) -> VersionHash {
    let mut hash = [0; 32];
    let len = row.len().min(32);
    hash[..len].copy_from_slice(&row[..len]);
    VersionHash(hash)
}

/// The entry in the [`tables::ENTRIES`] row of `seq` in `feed`; a pruned row gives its stub.
pub(crate) fn decode_row(feed: u64, seq: u64, row: &[u8]) -> Result<Entry<'_>> {
    let damaged = |what: String| Error::Damaged(format!("entry {seq} of local feed {feed} {what}"));
    let parts = tables::split_row(seq, row).ok_or_else(|| damaged("is truncated".into()))?;
    if tables::is_pruned(parts.entry) {
        let undecodable =
            |e: postcard::Error| damaged(format!("is a pruned stub that does not decode ({e})"));
        let stub: Stub<'_> = if parts.entry[0] == tables::PRUNED_FORMAT_UNHASHED {
            let old: Stub<'_, VersionId> =
                postcard::from_bytes(&parts.entry[1..]).map_err(undecodable)?;
            Stub {
                timestamp: old.timestamp,
                key: old.key,
                supersedes: old
                    .supersedes
                    .into_iter()
                    .map(|id| weft_crdt::Link { id, hash: None })
                    .collect(),
            }
        } else {
            postcard::from_bytes(&parts.entry[1..]).map_err(undecodable)?
        };
        return Ok(stub.into_entry());
    }
    Entry::decode(parts.entry).map_err(|e| damaged(format!("does not decode ({e})")))
}

/// The entry bytes of a row, refusing a truncated one.
pub(crate) fn entry_bytes<'r>(feed: u64, seq: u64, row: &'r [u8]) -> Result<tables::EntryRow<'r>> {
    tables::split_row(seq, row)
        .ok_or_else(|| Error::Damaged(format!("entry {seq} of local feed {feed} is truncated")))
}

/// Calls `read` with entry `seq` of `feed`, which must be stored.
pub(crate) fn with_entry<T>(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    seq: u64,
    read: impl FnOnce(Entry<'_>) -> T,
) -> Result<T> {
    let row = entries
        .get(feed_key(feed, seq))?
        .ok_or_else(|| Error::Damaged(format!("entry {seq} of local feed {feed} is missing")))?;
    Ok(read(decode_row(feed, seq, row.value())?))
}

/// The value of entry `seq` of `feed`, or `None` for a delete.
pub(crate) fn value_at(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    seq: u64,
) -> Result<Option<Vec<u8>>> {
    with_entry(entries, feed, seq, |entry| match entry.op {
        Op::Put(value) => Some(value.to_vec()),
        Op::Delete => None,
    })
}

/// The hash of a tree node, from the entry row of its last leaf ([`tables::node_location`]).
pub(crate) fn read_node(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    node: Node,
) -> Result<Hash> {
    let (seq, at) = tables::node_location(node);
    let missing = || {
        Error::Damaged(format!(
            "tree node {} of local feed {feed} is missing",
            node.flat_index()
        ))
    };
    let row = entries.get(feed_key(feed, seq))?.ok_or_else(missing)?;
    row.value()
        .get(at..at + 32)
        .and_then(|hash| hash.try_into().ok())
        .ok_or_else(missing)
}

/// The tree frontier of the first `length` entries of a feed held in full.
pub(crate) fn load_frontier(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    length: u64,
) -> Result<Frontier> {
    let hashes = tree::peaks(length)
        .into_iter()
        .map(|node| read_node(entries, feed, node))
        .collect::<Result<Vec<Hash>>>()?;
    Ok(Frontier::new(length, hashes)?)
}

/// The hashes of [`tree::extension_nodes`]`(from, record.head.length)` of local feed `feed`,
/// held as `record` says: what proves a prefix of length `from` against the latest head.
pub(crate) fn extension_from(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    record: &FeedRecord,
    from: u64,
) -> Result<Vec<Hash>> {
    let held_extension = held_extension(record)?;
    tree::extension_nodes(from, record.head.length)?
        .into_iter()
        .map(|node| node_hash(entries, feed, record.held, &held_extension, node))
        .collect()
}

/// The extension a feed record stores, by node.
pub(crate) fn held_extension(record: &FeedRecord) -> Result<HashMap<Node, Hash>> {
    Ok(tree::extension_nodes(record.held, record.head.length)?
        .into_iter()
        .zip(record.extension.iter().copied())
        .collect())
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

/// The smallest byte string greater than every string starting with `prefix`, or `None` when
/// there is none (the prefix is all `0xff`).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The rows of `table` whose key starts with `prefix`.
pub(crate) fn prefix_range<'t, V: redb::Value + 'static>(
    table: &'t impl ReadableTable<&'static [u8], V>,
    prefix: &[u8],
) -> Result<redb::Range<'t, &'static [u8], V>> {
    Ok(match prefix_end(prefix) {
        Some(high) => table.range(prefix..&high[..])?,
        None => table.range(prefix..)?,
    })
}

/// The local feed id of `author` in namespace number `ns`, if any.
pub(crate) fn feed_of(
    feed_ids: &impl ReadableTable<&'static [u8], u64>,
    ns: u32,
    author: &AuthorId,
) -> Result<Option<u64>> {
    Ok(feed_ids
        .get(&tables::feed_ids_key(ns, author)[..])?
        .map(|id| id.value()))
}

/// Every feed of namespace number `ns`: `(author, local feed id)`, by author.
pub(crate) fn namespace_feeds(
    feed_ids: &impl ReadableTable<&'static [u8], u64>,
    ns: u32,
) -> Result<Vec<(AuthorId, u64)>> {
    let low = tables::feed_ids_key(ns, &AuthorId([0; 32]));
    let high = tables::feed_ids_key(ns, &AuthorId([0xff; 32]));
    let mut feeds = Vec::new();
    for row in feed_ids.range(&low[..]..=&high[..])? {
        let (key, feed) = row?;
        let author = AuthorId(
            key.value()[4..]
                .try_into()
                .map_err(|_| Error::Damaged("a feed index key is not 36 bytes".into()))?,
        );
        feeds.push((author, feed.value()));
    }
    Ok(feeds)
}

/// The local feed id under `index_key` (a [`tables::FEED_IDS`] key) with its record, or, for
/// a feed not held yet, the next free id and `None`.
pub(crate) fn feed_slot(
    feeds: &impl ReadableTable<u64, &'static [u8]>,
    feed_ids: &impl ReadableTable<&'static [u8], u64>,
    index_key: &[u8],
) -> Result<(u64, Option<FeedRecord>)> {
    match feed_ids.get(index_key)? {
        Some(feed) => {
            let feed = feed.value();
            let record = feeds.get(feed)?.ok_or_else(|| {
                Error::Damaged(format!("feed {feed} is indexed but has no record"))
            })?;
            Ok((feed, Some(FeedRecord::decode(record.value())?)))
        }
        None => {
            let last = feeds.last()?;
            Ok((last.map_or(0, |(id, _)| id.value() + 1), None))
        }
    }
}

/// Decodes a [`tables::VIEW`] value; a missing row is an empty register.
pub(crate) fn decode_register(bytes: Option<&[u8]>) -> Result<Register<u64>> {
    match bytes {
        None => Ok(Register::default()),
        Some(bytes) => postcard::from_bytes(bytes)
            .map_err(|e| Error::Damaged(format!("a view row does not decode ({e})"))),
    }
}

/// The register of `key` in namespace number `ns`.
pub(crate) fn read_register(
    view: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ns: u32,
    key: &[u8],
) -> Result<Register<u64>> {
    decode_register(
        view.get(&view_key(ns, key)[..])?
            .as_ref()
            .map(|g| g.value()),
    )
}

/// The ids of every version of `key` the view knows of: the live ones (flagged `true`), then
/// those some known version superseded, which may or may not be held.
pub(crate) fn key_versions(
    view: &impl ReadableTable<&'static [u8], &'static [u8]>,
    superseded: &impl ReadableTable<&'static [u8], u64>,
    ns: u32,
    key: &[u8],
) -> Result<Vec<(VersionId, bool)>> {
    let register = read_register(view, ns, key)?;
    let mut versions: Vec<(VersionId, bool)> =
        register.live().iter().map(|v| (v.id, true)).collect();
    let live = versions.len();
    let prefix = tables::superseded_prefix(ns, key);
    let (mut low, mut high) = (prefix.clone(), prefix);
    low.extend_from_slice(&[0; 73]);
    high.extend_from_slice(&[0xff; 73]);
    for row in superseded.range(&low[..]..=&high[..])? {
        let (row, _) = row?;
        let tail = row
            .value()
            .len()
            .checked_sub(73)
            .map(|at| &row.value()[at..at + 40])
            .ok_or_else(|| Error::Damaged("a superseded row is truncated".into()))?;
        let (author, seq) = tail.split_at(32);
        let author = AuthorId(author.try_into().expect("32 of 40 bytes"));
        let seq = u64::from_be_bytes(seq.try_into().expect("8 of 40 bytes"));
        let id = VersionId { author, seq };
        // Several links may name one id (their rows are adjacent), and a link whose hash does
        // not match may name a live version.
        let named = versions.len() > live && versions.last().is_some_and(|(last, _)| *last == id);
        if !named && !versions[..live].iter().any(|(known, _)| *known == id) {
            versions.push((id, false));
        }
    }
    Ok(versions)
}

/// A read-only view table, as snapshots hold it.
pub(crate) type ViewTable = ReadOnlyTable<&'static [u8], &'static [u8]>;

/// A read-only entries table, as snapshots hold it.
pub(crate) type EntriesTable = ReadOnlyTable<u128, &'static [u8]>;
