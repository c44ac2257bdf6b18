//! Keeping the materialized view: merging a version into a key's register in redb, and
//! rebuilding every register from the feeds.

use redb::{ReadableTable, Table, WriteTransaction};
use weft_crdt::{Applied, Register, SupersededSet, Version, VersionId, Write};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::store::{FeedRecord, decode_row};
use crate::tables::{self, ENTRIES, FEEDS, superseded_prefix, view_key};

/// One key's superseded set, as rows of [`tables::SUPERSEDED`].
struct StoredSuperseded<'t, 'txn> {
    table: &'t mut Table<'txn, &'static [u8], ()>,
    prefix: Vec<u8>,
}

impl StoredSuperseded<'_, '_> {
    fn row(&self, id: &VersionId) -> Vec<u8> {
        let mut row = Vec::with_capacity(self.prefix.len() + 40);
        row.extend_from_slice(&self.prefix);
        row.extend_from_slice(id.author.as_bytes());
        row.extend_from_slice(&id.seq.to_be_bytes());
        row
    }
}

impl SupersededSet for StoredSuperseded<'_, '_> {
    type Error = redb::StorageError;

    fn contains(&self, id: &VersionId) -> Result<bool, Self::Error> {
        Ok(self.table.get(&self.row(id)[..])?.is_some())
    }

    fn insert(&mut self, id: VersionId) -> Result<(), Self::Error> {
        let row = self.row(&id);
        self.table.insert(&row[..], ())?;
        Ok(())
    }
}

/// The tables a view update writes.
pub(crate) struct ViewTables<'txn> {
    pub view: Table<'txn, &'static [u8], &'static [u8]>,
    pub superseded: Table<'txn, &'static [u8], ()>,
}

impl<'txn> ViewTables<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        Self::open_named(txn, tables::VIEW, tables::SUPERSEDED)
    }

    pub fn open_named(
        txn: &'txn WriteTransaction,
        view: redb::TableDefinition<&'static [u8], &'static [u8]>,
        superseded: redb::TableDefinition<&'static [u8], ()>,
    ) -> Result<Self> {
        Ok(ViewTables {
            view: txn.open_table(view)?,
            superseded: txn.open_table(superseded)?,
        })
    }

    /// The register of `key` in namespace number `ns`, empty if the key has no live version.
    pub fn register(&self, ns: u32, key: &[u8]) -> Result<Register<u64>> {
        decode_register(
            self.view
                .get(&view_key(ns, key)[..])?
                .as_ref()
                .map(|g| g.value()),
        )
    }

    /// Merges one version of `key` into the view.
    pub fn apply(&mut self, ns: u32, key: &[u8], write: Write<u64>) -> Result<Applied> {
        let mut register = self.register(ns, key)?;
        let mut superseded = StoredSuperseded {
            table: &mut self.superseded,
            prefix: superseded_prefix(ns, key),
        };
        let applied = register.apply(write, &mut superseded)?;
        if applied.changed() {
            let row = postcard::to_allocvec(&register).expect("registers always encode");
            self.view.insert(&view_key(ns, key)[..], &row[..])?;
        }
        Ok(applied)
    }
}

/// Decodes a [`tables::VIEW`] value; a missing row is an empty register.
pub(crate) fn decode_register(bytes: Option<&[u8]>) -> Result<Register<u64>> {
    match bytes {
        None => Ok(Register::default()),
        Some(bytes) => postcard::from_bytes(bytes).map_err(|e| {
            Error::Damaged(format!(
                "a view row does not decode ({e}); `weft reindex` rebuilds the view"
            ))
        }),
    }
}

/// The view write an entry of local feed `feed` makes: a put points at the feed, whose entry
/// row holds the value.
pub(crate) fn write_of(entry: &Entry<'_>, id: VersionId, feed: u64) -> Write<u64> {
    Write {
        version: Version {
            id,
            timestamp: entry.timestamp,
            op: entry.op.map(|_| feed),
        },
        supersedes: entry.supersedes.clone(),
    }
}

/// Replays every entry of every feed into `tables`, which the caller has emptied. Returns the
/// number of entries replayed.
///
/// # Errors
/// [`Error::Damaged`] on the first stored entry that does not decode: the view of a damaged
/// feed cannot be rebuilt, and `verify` says which entry it is.
pub(crate) fn rebuild(txn: &WriteTransaction, tables: &mut ViewTables<'_>) -> Result<u64> {
    let feeds = txn.open_table(FEEDS)?;
    let entries = txn.open_table(ENTRIES)?;
    let mut replayed = 0;
    for feed in feeds.iter()? {
        let (feed, record) = feed?;
        let record = FeedRecord::decode(record.value())?;
        let range = tables::feed_key(feed.value(), 0)..=tables::feed_key(feed.value(), u64::MAX);
        for row in entries.range(range)? {
            let (key, row) = row?;
            let seq = key.value() as u64;
            let entry = decode_row(feed.value(), seq, row.value())?;
            let id = VersionId {
                author: record.head.author,
                seq,
            };
            tables.apply(record.ns, entry.key, write_of(&entry, id, feed.value()))?;
            replayed += 1;
        }
    }
    Ok(replayed)
}
