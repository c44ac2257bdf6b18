//! Numbered migrations: each brings a store from one schema to the next, and the number
//! reached is kept under `"schema"` in [`META`].
//!
//! A store made before this list existed has no number: it is at schema 0, the tables of
//! format 2 ([`tables::STORE_FORMAT`]). Every migration only creates tables (and fills an
//! index from rows already there), so running one again on a store that already has them is
//! harmless, which is how such a store is brought up to date whatever it already holds.

use redb::{ReadableTable, WriteTransaction};

use crate::error::{Error, Result};
use crate::rows::{FeedRecord, decode_row};
use crate::tables::{self, META};
use crate::view::excluded_version_key;

/// A migration: what it adds, and the change itself, inside the caller's transaction.
struct Migration {
    adds: &'static str,
    run: fn(&WriteTransaction) -> Result<()>,
}

/// Every migration, in order; the schema of a store is how many of them it has had.
const MIGRATIONS: &[Migration] = &[
    Migration {
        adds: "sparse replicas: interests, sparse feeds and their tree nodes",
        run: |txn| {
            txn.open_table(tables::INTERESTS)?;
            txn.open_table(tables::SPARSE_FEEDS)?;
            txn.open_table(tables::NODES)?;
            Ok(())
        },
    },
    Migration {
        adds: "capabilities: charters, excluded entries, entries from the future, forks",
        run: |txn| {
            txn.open_table(tables::CHARTERS)?;
            txn.open_table(tables::EXCLUDED)?;
            txn.open_table(tables::FUTURE)?;
            txn.open_table(tables::FORKS)?;
            Ok(())
        },
    },
    Migration {
        adds: "the change feed",
        run: |txn| {
            txn.open_table(tables::CHANGES)?;
            Ok(())
        },
    },
    Migration {
        adds: "excluded versions by key, which local writes supersede",
        run: index_excluded_versions,
    },
];

/// Fills [`tables::EXCLUDED_VERSIONS`] from the excluded entries already held.
fn index_excluded_versions(txn: &WriteTransaction) -> Result<()> {
    let excluded = txn.open_table(tables::EXCLUDED)?;
    let feeds = txn.open_table(tables::FEEDS)?;
    let entries = txn.open_table(tables::ENTRIES)?;
    let mut index = txn.open_table(tables::EXCLUDED_VERSIONS)?;
    for row in excluded.iter()? {
        let at = row?.0.value();
        let (feed, seq) = ((at >> 64) as u64, at as u64);
        let Some(record) = feeds.get(feed)? else {
            continue;
        };
        let record = FeedRecord::decode(record.value())?;
        let Some(stored) = entries.get(at)? else {
            continue;
        };
        let entry = decode_row(feed, seq, stored.value())?;
        let id = weft_crdt::VersionId {
            author: record.head.author,
            seq,
        };
        index.insert(&excluded_version_key(record.ns, entry.key, id)[..], ())?;
    }
    Ok(())
}

/// The schema this build writes: every migration applied.
pub(crate) const SCHEMA: u8 = MIGRATIONS.len() as u8;

/// The schema recorded in `meta`; 0 when none is.
pub(crate) fn schema(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<u8> {
    match meta.get("schema")? {
        None => Ok(0),
        Some(value) => match value.value() {
            [schema] => Ok(*schema),
            other => Err(Error::Damaged(format!(
                "the schema number is {} bytes, not one",
                other.len()
            ))),
        },
    }
}

/// Runs the migrations after `from` (at most [`SCHEMA`]) in `txn` and records the schema
/// reached.
///
/// # Errors
/// Database failures.
pub(crate) fn run(txn: &WriteTransaction, from: u8) -> Result<()> {
    for (number, migration) in MIGRATIONS.iter().enumerate().skip(usize::from(from)) {
        tracing::info!(
            schema = number + 1,
            adds = migration.adds,
            "migrating the store"
        );
        (migration.run)(txn)?;
    }
    txn.open_table(META)?.insert("schema", &[SCHEMA][..])?;
    Ok(())
}
