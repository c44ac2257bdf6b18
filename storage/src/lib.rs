//! weft's local replica: signed per-author feeds, their merkle trees and proofs, and the
//! multi-writer key-value view, all in one redb database.
//!
//! # Layout
//! Each module uses only those listed before it (`tests/layering.rs` checks it).
//! - Records and their bytes: [`ids`], [`entry`] (the feed entry), [`tree`] (the merkle
//!   mountain range and its proofs), [`head`] (the author's signature over a feed's length and
//!   root), [`tables`] (the redb schema), the records of [`members`] (charters, grants,
//!   revocations), `interest` ([`Interest`]: what a sparse replica replicates), and `error`.
//! - `rows`: the row codecs and accessors every module below reads through, and the one way
//!   an entry row is built.
//! - `changelog`: the change feed's rows, written by the transaction that changes the view.
//! - `view`: deciding whether an entry counts (the gate), merging versions into the view with
//!   the rules of `weft_crdt`, and rebuilding it.
//! - `migrations`: the numbered schema migrations run at open.
//! - `store`: [`Store`], which creates and opens a data dir and commits transactions.
//! - Operations on a [`Store`], each one transaction: `write` (the local write path),
//!   `read` (get, `get_at`, history, scans, snapshots), `changes` ([`Store::changes`]),
//!   [`members`] (grants and revocations), `replicate` (full runs, sparse runs and remote key
//!   reads, sent and verified), [`fork`] (proofs that an author signed two histories),
//!   `prune` and `verify`.
//!
//! `docs/format.md` at the repository root describes every byte.
#![deny(missing_docs)]

pub mod entry;
mod error;
pub mod head;
pub mod ids;
mod interest;
pub mod members;
mod serde_bytes;
pub mod tables;
pub mod tree;

mod rows;

mod changelog;
mod view;

mod migrations;
mod store;

mod changes;
pub mod fork;
mod prune;
mod read;
mod replicate;
#[cfg(feature = "test-util")]
mod testing;
#[cfg(feature = "test-util")]
pub use testing::copy_data_dir;
mod verify;
mod write;

pub use changes::{Change, ChangePage, ChangeValue};
pub use entry::Entry;
pub use error::{Error, Result};
pub use fork::{Branch, Fork, ForkProof, ForkSearch, SEARCH_NODES, SearchStep};
pub use head::SignedHead;
pub use ids::{AuthorId, NamespaceId};
pub use interest::{Interest, InterestError, MAX_INTEREST_BYTES, MAX_PREFIXES};
pub use members::{Charter, Excluded, Exclusion, Grant, Membership, Mode, TrustReport};
pub use prune::PruneReport;
pub use read::{FeedInfo, HistoryItem, Info, NamespaceInfo, Scan, Snapshot, VersionInfo};
pub use replicate::{
    FEED_WALK_ENTRIES, HeldFeed, IngestError, Ingested, Invalid, Run, Served, SparseRun,
    VIEW_WALK_KEYS, verify_remote_key,
};
pub use store::{Access, DB_FILE, DEFAULT_CACHE_SIZE, KEYS_DIR, MAX_CLOCK_AHEAD, Options, Store};
pub use verify::{Problem, VerifyReport};
pub use weft_crdt::{Link, Op, Timestamp, VersionHash, VersionId};

/// The timestamp `after` from now by this machine's clock, as grants' expiries are given.
pub fn timestamp_after(after: std::time::Duration) -> Timestamp {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(uhlc::NTP64::from(now.saturating_add(after)).as_u64())
}

/// The last timestamp within the nanosecond an RFC 3339 time names, so that a time printed by
/// [`format_timestamp`] (which drops the sub-nanosecond bits) includes the version printed
/// with it; `None` when `text` is not RFC 3339.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let start = uhlc::NTP64::parse_rfc3339(text.trim()).ok()?.as_u64();
    let nanosecond = uhlc::NTP64::from(std::time::Duration::from_nanos(1)).as_u64();
    Some(Timestamp(
        start.saturating_add(nanosecond.saturating_sub(1)),
    ))
}

/// A timestamp as RFC 3339 UTC with nanoseconds, e.g. `2026-11-20T22:34:41.123456789Z`.
pub fn format_timestamp(timestamp: Timestamp) -> String {
    format!("{:#}", uhlc::NTP64(timestamp.0))
}
