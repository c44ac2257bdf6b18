//! Numbered migrations: each brings a store from one schema to the next, and the number
//! reached is kept under `"schema"` in [`META`].
//!
//! A store made before this list existed has no number: it is at schema 0, the tables of
//! format 2 ([`tables::STORE_FORMAT`]). Every migration only creates tables, or drops tables
//! the view is rebuilt into from the feeds, so running one again on a store that already has
//! them is harmless, which is how such a store is brought up to date whatever it already holds.

use redb::{ReadableTable, WriteTransaction};

use crate::error::{Error, Result};
use crate::tables::{self, META};

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
            txn.open_table(replaced::FORKS_1)?;
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
        // Filled by the rebuild of the next migration.
        run: |txn| {
            txn.open_table(replaced::EXCLUDED_VERSIONS_1)?;
            Ok(())
        },
    },
    Migration {
        adds: "links that name the superseded entry's hash: the view is rebuilt",
        run: rebuild_view_for_hashed_links,
    },
    Migration {
        adds: "fork proofs that name where the histories part",
        // A proof of the old kind cannot say where the histories part, so it cannot become
        // one of the new; it is dropped, and the fork is proven again the next time a peer
        // on the other branch is met (the feed's entries, which the old freeze kept
        // counting, count until then).
        run: |txn| {
            txn.delete_table(replaced::FORKS_1)?;
            txn.open_table(tables::FORKS)?;
            Ok(())
        },
    },
];

/// Tables of earlier schemas that a later migration replaces.
mod replaced {
    use redb::TableDefinition;

    pub const VIEW_1: TableDefinition<&[u8], &[u8]> = TableDefinition::new("view-1");
    pub const SUPERSEDED_1: TableDefinition<&[u8], ()> = TableDefinition::new("superseded-1");
    pub const EXCLUDED_VERSIONS_1: TableDefinition<&[u8], ()> =
        TableDefinition::new("excluded-versions-1");
    pub const FORKS_1: TableDefinition<&[u8], &[u8]> = TableDefinition::new("forks-1");
}

/// The [`META`] key set while the view must be rebuilt from the feeds before the store is
/// used: the next open does it ([`crate::Store::reindex`] clears it), so a crash midway only
/// means it is done again.
pub(crate) const REINDEX: &str = "reindex";

/// Drops the view's tables whose layout changed, and asks for the view to be rebuilt into
/// the new ones.
fn rebuild_view_for_hashed_links(txn: &WriteTransaction) -> Result<()> {
    txn.delete_table(replaced::VIEW_1)?;
    txn.delete_table(replaced::SUPERSEDED_1)?;
    txn.delete_table(replaced::EXCLUDED_VERSIONS_1)?;
    txn.open_table(META)?.insert(REINDEX, &[1][..])?;
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
