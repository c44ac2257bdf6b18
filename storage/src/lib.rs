//! weft's local replica: signed per-author feeds, their merkle trees and proofs, and the
//! multi-writer key-value view, all in one redb database.
//!
//! # Layout
//! - [`ids`]: namespace and author ids (ed25519 public keys).
//! - [`entry`]: the feed entry and its byte format.
//! - [`tree`]: the merkle mountain range over a feed, range proofs and their verification.
//! - [`head`]: the author's signature over a feed's length and root.
//! - [`tables`]: the redb schema.
//! - `store`: [`Store`], which opens a data dir and reads and writes it. Each local write is one
//!   transaction that appends to the feed, extends the tree, signs the head and updates the view,
//!   so the log and the view never disagree.
//! - [`members`]: who may write a namespace: its charter, grants and revocations.
//! - `view`: deciding whether an entry counts, and merging versions into the view with the
//!   rules of `weft_crdt`.
//! - [`fork`]: proofs that an author signed two histories, and freezing its feed.
//! - `replicate`: [`Store::feeds`], [`Store::read_run`] and [`Store::ingest`]: sending and
//!   receiving verified runs of feeds.
//! - `sparse`: [`Interest`], [`Store::read_sparse`] and [`Store::ingest_sparse`]: replicas
//!   that hold only the keys under some prefixes, each entry still provable.
//! - `prune`: [`Store::prune`], dropping the values of superseded versions.
//! - `changes`: [`Store::changes`], the change feed: every change of a key's winner, numbered
//!   in the transaction that makes it.
//! - `verify`: [`Store::verify`] and [`Store::reindex`].
//!
//! `docs/format.md` at the repository root describes every byte.
#![deny(missing_docs)]

mod changes;
pub mod entry;
mod error;
pub mod fork;
pub mod head;
pub mod ids;
pub mod members;
mod prune;
mod replicate;
mod serde_bytes;
mod sparse;
mod store;
pub mod tables;
#[cfg(feature = "test-util")]
mod testing;
pub mod tree;
mod verify;
mod view;

pub use changes::{Change, ChangePage, ChangeValue};
pub use entry::Entry;
pub use error::{Error, Result};
pub use fork::{Fork, ForkProof};
pub use head::SignedHead;
pub use ids::{AuthorId, NamespaceId};
pub use members::{Charter, Exclusion, Grant, Membership, Mode};
pub use prune::PruneReport;
pub use replicate::{HeldFeed, IngestError, Ingested, Invalid, Run};
pub use sparse::{
    Interest, MAX_INTEREST_BYTES, MAX_PREFIXES, Served, SparseRun, verify_remote_key,
};
pub use store::{
    Access, DB_FILE, FeedInfo, HistoryItem, Info, KEYS_DIR, MAX_CLOCK_AHEAD, NamespaceInfo,
    Options, Scan, Snapshot, Store, TrustReport, VersionInfo,
};
pub use verify::{Problem, VerifyReport};
pub use view::Excluded;
pub use weft_crdt::{Op, Timestamp, VersionId};

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
