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
pub const STORE_FORMAT: u8 = 1;

/// `namespace id (32 bytes) → u32`: the local number of each namespace, which prefixes its
/// keys in [`VIEW`] and [`SUPERSEDED`] to keep them short.
pub const NAMESPACES: TableDefinition<&[u8; 32], u32> = TableDefinition::new("namespaces-1");

/// `feed id (u64) → FeedRecord`: one row per (namespace, author) feed, with its latest signed
/// head. Feed ids are local and assigned in order.
pub const FEEDS: TableDefinition<u64, &[u8]> = TableDefinition::new("feeds-1");

/// `(feed id << 64) | seq (u128) → leaf hash (32 bytes) ‖ encoded entry`. Keeping the leaf
/// hash beside the entry lets `verify` name the exact entry whose bytes changed.
pub const ENTRIES: TableDefinition<u128, &[u8]> = TableDefinition::new("entries-1");

/// `(feed id << 64) | flat index (u128) → hash (32 bytes)`: every complete parent node of a
/// feed's merkle tree (odd flat indexes). Leaf hashes live in [`ENTRIES`].
pub const TREE: TableDefinition<u128, &[u8; 32]> = TableDefinition::new("tree-1");

/// `namespace number (u32 BE) ‖ key → Register<()>`: the live versions of every key, last
/// writer first, without values (those stay in the log).
pub const VIEW: TableDefinition<&[u8], &[u8]> = TableDefinition::new("view-1");

/// `namespace number (u32 BE) ‖ key length (u32 BE) ‖ key ‖ author (32) ‖ seq (u64 BE) → ()`:
/// every version id some known version supersedes, per key. The length makes one key's rows a
/// contiguous range that no longer key with the same prefix interleaves with.
pub const SUPERSEDED: TableDefinition<&[u8], ()> = TableDefinition::new("superseded-1");

/// The [`ENTRIES`] or [`TREE`] key of position `index` in feed `feed`.
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
