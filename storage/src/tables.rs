//! Every redb table, with its key and value layout. Names carry a version: a change of layout is
//! a new name and a migration, never a silent reinterpretation of old bytes.
//!
//! Integers inside byte-string keys are big-endian, so that byte order is numeric order.
//! Values are postcard unless said otherwise.

use redb::TableDefinition;

/// `&str → bytes`: the replica's own facts.
/// - `"format"`: one byte, [`STORE_FORMAT`].
/// - `"author"`: the local author's 32-byte public key; the key file must match it.
/// - `"default-namespace"`: the 32-byte id of the namespace commands use by default.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta-1");

/// The layout version written under `"format"` in [`META`].
pub const STORE_FORMAT: u8 = 2;

/// `namespace id (32 bytes) → u32`: the local number of each namespace, which prefixes its
/// keys in [`VIEW`] and [`SUPERSEDED`] to keep them short.
pub const NAMESPACES: TableDefinition<&[u8; 32], u32> = TableDefinition::new("namespaces-1");

/// `feed id (u64) → FeedRecord`: one row per (namespace, author) feed: the latest signed head
/// known, how many of its entries are held (a prefix; fewer than the head's length while a
/// catch-up is under way), and the tree nodes that prove the held prefix against the longer
/// head. Feed ids are local and assigned in order.
pub const FEEDS: TableDefinition<u64, &[u8]> = TableDefinition::new("feeds-2");

/// `namespace number (u32 BE) ‖ author (32 bytes) → feed id (u64)`: which local feed holds an
/// author's entries in a namespace. Writers read it inside their transaction, so two writers
/// can never give one author two feeds.
pub const FEED_IDS: TableDefinition<&[u8], u64> = TableDefinition::new("feed-ids-1");

/// The [`FEED_IDS`] key of `author` in namespace number `ns`.
pub fn feed_ids_key(ns: u32, author: &crate::ids::AuthorId) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..4].copy_from_slice(&ns.to_be_bytes());
    key[4..].copy_from_slice(author.as_bytes());
    key
}

/// `(feed id << 64) | seq (u128) → leaf hash (32) ‖ parent hashes (32 each) ‖ encoded entry`.
///
/// The row of entry `seq` carries the tree nodes that appending it completed: the parents whose
/// last leaf is `seq`, at depths `1..=seq.trailing_ones()`, lowest first. So the whole merkle
/// tree lives in the entry rows and an append writes one row. Keeping the leaf hash beside the
/// entry lets `verify` name the exact entry whose bytes changed.
pub const ENTRIES: TableDefinition<u128, &[u8]> = TableDefinition::new("entries-1");

/// `namespace number (u32 BE) ‖ key → Register<u64>`: the live versions of every key, last
/// writer first, each with its entry's leaf hash. A put's value is not copied here: the
/// register holds the local feed id whose entry row (with the version's seq) holds it.
pub const VIEW: TableDefinition<&[u8], &[u8]> = TableDefinition::new("view-2");

/// `namespace number (u32 BE) ‖ key length (u32 BE) ‖ key ‖ author (32) ‖ seq (u64 BE) ‖ link
/// (33) → timestamp (u64)`: every link some known version of a key makes. The link is `1 ‖
/// hash` for a link naming the superseded entry's leaf hash (value 0), or `0 ‖ 32 zero bytes`
/// for links without one (entries of format 1), whose value is the greatest timestamp of a
/// version making such a link: they replace only versions stamped before it. The length makes
/// one key's rows a contiguous range that no longer key with the same prefix interleaves with.
pub const SUPERSEDED: TableDefinition<&[u8], u64> = TableDefinition::new("superseded-2");

/// `namespace id (32 bytes) → Interest`: the areas of interest of a sparse replica of the
/// namespace (postcard: the key prefixes, then the authors, empty meaning all). No row: the
/// replica is full.
pub const INTERESTS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("interests-1");

/// `feed id (u64) → SparseRecord`: a row marks a feed held with holes, as a sparse replica
/// holds remote feeds. Postcard `{scanned, entries}`: every entry under the interest in
/// `[0, scanned)` is held, and `entries` rows are held in all. Such a feed's [`FEEDS`] record has
/// `held` 0 and no extension; its [`ENTRIES`] rows have the same layout as a full feed's.
pub const SPARSE_FEEDS: TableDefinition<u64, &[u8]> = TableDefinition::new("sparse-feeds-1");

/// `(feed id << 64) | flat index (u128) → hash (32 bytes)`: tree nodes of sparse feeds that no
/// held entry row carries: the proof nodes received, and the peaks of `scanned`.
pub const NODES: TableDefinition<u128, &[u8; 32]> = TableDefinition::new("nodes-1");

/// `namespace id (32 bytes) → Charter`: who may write the namespace, signed by the namespace
/// key ([`crate::members::Charter`]). Every namespace this build creates or joins has one; a
/// namespace without a row (made by an earlier build) is open.
pub const CHARTERS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("charters-1");

/// `(feed id << 64) | seq (u128) → reason (u8)`: entries held in a feed that do not count in
/// the view, and why ([`crate::members::Exclusion::to_byte`]). Rebuilt with the view.
pub const EXCLUDED: TableDefinition<u128, u8> = TableDefinition::new("excluded-1");

/// `namespace number (u32 BE) ‖ key length (u32 BE) ‖ key ‖ author (32) ‖ seq (u64 BE) → leaf
/// hash (32)`, keyed as [`SUPERSEDED`] without the link: the versions of each key held in
/// [`EXCLUDED`] entries. A local
/// write supersedes them as well as the live versions, since this replica saw them: one that
/// counts later (its time comes, a grant arrives) cannot then win over what was written
/// meanwhile. Rebuilt with the view.
pub const EXCLUDED_VERSIONS: TableDefinition<&[u8], &[u8; 32]> =
    TableDefinition::new("excluded-versions-2");

/// `timestamp (u64 BE) ‖ feed id (u64 BE) ‖ seq (u64 BE) → ()`: the excluded entries whose
/// only fault is a timestamp too far ahead of the local clock, in time order, so the ones
/// whose time has come are one range read away.
pub const FUTURE: TableDefinition<&[u8], ()> = TableDefinition::new("future-1");

/// `namespace number (u32 BE) ‖ author (32 bytes) → postcard ForkProof`: feeds frozen because
/// their author signed two histories ([`crate::fork::ForkProof`]), each with the proof that
/// parts them earliest. A frozen feed takes no more entries, and its entries from where the
/// histories part on do not count.
pub const FORKS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("forks-2");

/// The [`FUTURE`] key of entry `seq` of `feed` with timestamp `time`.
pub fn future_key(time: u64, feed: u64, seq: u64) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&time.to_be_bytes());
    key[8..16].copy_from_slice(&feed.to_be_bytes());
    key[16..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The [`ENTRIES`] or [`NODES`] key of position `index` in feed `feed`.
pub fn feed_key(feed: u64, index: u64) -> u128 {
    (u128::from(feed) << 64) | u128::from(index)
}

/// The [`VIEW`] key of `key` in namespace number `ns`.
pub fn view_key(ns: u32, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + key.len());
    out.extend_from_slice(&ns.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The first [`SUPERSEDED`] key of `key` in namespace number `ns`; a version's row appends
/// the author and seq to it.
pub fn superseded_prefix(ns: u32, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 4 + key.len() + 40);
    out.extend_from_slice(&ns.to_be_bytes());
    // Keys are bounded far below 4 GiB by the store's limits.
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// The first byte of the entry part of a pruned [`ENTRIES`] row, in place of the entry's
/// format byte: `weft prune` replaced the entry with this byte and the postcard encoding of
/// `(timestamp, key, supersedes)`, each link `(author, seq, option of hash)`. The leaf hash and
/// tree nodes stay, so the rest of the feed is still provable, and the view keeps what the
/// version superseded.
pub const PRUNED_FORMAT: u8 = 3;

/// The pruned-stub byte of builds before links carried hashes: the stub's `supersedes` is a
/// seq of `(author, seq)`, links without hashes.
pub const PRUNED_FORMAT_UNHASHED: u8 = 0;

/// Whether the entry part of a row is a pruned stub ([`PRUNED_FORMAT`] or
/// [`PRUNED_FORMAT_UNHASHED`]).
pub fn is_pruned(entry: &[u8]) -> bool {
    matches!(
        entry.first(),
        Some(&(PRUNED_FORMAT | PRUNED_FORMAT_UNHASHED))
    )
}

/// How many parent hashes the [`ENTRIES`] row of entry `seq` carries.
pub fn row_parents(seq: u64) -> usize {
    seq.trailing_ones() as usize
}

/// An [`ENTRIES`] row taken apart.
pub struct EntryRow<'a> {
    /// The entry's leaf hash.
    pub leaf: &'a [u8; 32],
    /// The parents completed by the entry, depth 1 first, 32 bytes each.
    pub parents: &'a [u8],
    /// The encoded entry.
    pub entry: &'a [u8],
}

/// Splits the [`ENTRIES`] row of entry `seq`; `None` if it is too short to hold its hashes.
pub fn split_row(seq: u64, row: &[u8]) -> Option<EntryRow<'_>> {
    let (leaf, rest) = row.split_first_chunk::<32>()?;
    let parents_len = 32 * row_parents(seq);
    let (parents, entry) = (rest.get(..parents_len)?, &rest[parents_len..]);
    Some(EntryRow {
        leaf,
        parents,
        entry,
    })
}

/// Where a tree node's hash is stored: the seq of the [`ENTRIES`] row of its last leaf, and
/// the hash's byte offset in that row.
pub fn node_location(node: crate::tree::Node) -> (u64, usize) {
    let last_leaf = ((node.offset + 1) << node.depth) - 1;
    (last_leaf, 32 * node.depth as usize)
}

/// `seq of the row's first change (u64) → ChangeRow`: the change feed. Every change of a
/// key's winning version in the view, local or remote, takes the next seq in the transaction
/// that makes it, so the log and the view never disagree. Postcard enum:
/// `Winners { ns: u32, author: [u8; 32], first: u64, count: u64 }` says that entries
/// `first..first + count` of the author's feed each became their key's winner, one change each
/// (a local batch or an ingested run is one row); `Gone { ns: u32, key: bytes }` is one change:
/// a rebuild left the key with no version. Rows follow each other with no gap in seqs. Only the
/// newest [`crate::Options::changes_kept`] changes (rounded out to whole rows) are kept,
/// trimmed in batches, so the first row starts at the oldest change a consumer can resume from.
pub const CHANGES: TableDefinition<u64, &[u8]> = TableDefinition::new("changes-1");
