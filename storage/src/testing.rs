//! Hooks that damage a store on purpose, so tests can check that damage is found. Compiled only
//! with the `test-util` feature.

use redb::ReadableTable;

use crate::error::Result;
use crate::ids::{AuthorId, NamespaceId};
use crate::rows::{FeedRecord, feed_of};
use crate::store::Store;
use crate::tables::{ENTRIES, FEEDS, VIEW, feed_key, view_key};

impl Store {
    /// From now on, stamps this store's writes `ahead` of the real time, as a device with a
    /// fast (or lying) clock does.
    pub fn set_clock_ahead(&self, ahead: std::time::Duration) {
        self.skew_clock(ahead);
    }

    /// Flips every bit of byte `byte` (taken modulo the row's length) of the stored row of
    /// entry `seq` (its leaf hash, then its encoded bytes). Returns the row's length.
    pub fn tamper_entry(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        seq: u64,
        byte: usize,
    ) -> Result<usize> {
        let feed = self.test_feed(ns, author);
        let txn = self.db().begin_write()?;
        let len;
        {
            let mut entries = txn.open_table(ENTRIES)?;
            let mut row = entries
                .get(feed_key(feed, seq))?
                .expect("entry to tamper with exists")
                .value()
                .to_vec();
            len = row.len();
            row[byte % len] ^= 0xff;
            entries.insert(feed_key(feed, seq), &row[..])?;
        }
        txn.commit()?;
        Ok(len)
    }

    /// Flips every bit of byte `byte % 64` of the signature of the feed's head.
    pub fn tamper_signature(&self, ns: &NamespaceId, author: &AuthorId, byte: usize) -> Result<()> {
        let feed = self.test_feed(ns, author);
        let txn = self.db().begin_write()?;
        {
            let mut feeds = txn.open_table(FEEDS)?;
            let mut record = FeedRecord::decode(feeds.get(feed)?.expect("feed exists").value())?;
            record.head.signature[byte % 64] ^= 0xff;
            feeds.insert(feed, &postcard::to_allocvec(&record).expect("encodes")[..])?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Removes `key`'s row from the view, as a bug that forgot to update it would.
    pub fn tamper_view(&self, ns: &NamespaceId, key: &[u8]) -> Result<()> {
        let number = self.test_namespace_number(ns);
        let txn = self.db().begin_write()?;
        txn.open_table(VIEW)?.remove(&view_key(number, key)[..])?;
        txn.commit()?;
        Ok(())
    }

    fn test_namespace_number(&self, ns: &NamespaceId) -> u32 {
        let txn = redb::ReadableDatabase::begin_read(self.db()).expect("read");
        let table = txn
            .open_table(crate::tables::NAMESPACES)
            .expect("namespaces");
        table
            .get(ns.as_bytes())
            .expect("read")
            .expect("namespace exists")
            .value()
    }

    fn test_feed(&self, ns: &NamespaceId, author: &AuthorId) -> u64 {
        let txn = redb::ReadableDatabase::begin_read(self.db()).expect("read");
        let feed_ids = txn.open_table(crate::tables::FEED_IDS).expect("feed ids");
        feed_of(&feed_ids, self.test_namespace_number(ns), author)
            .expect("read")
            .expect("feed exists")
    }
}

impl Store {
    /// Puts the store back to how an earlier build left it at `schema` 4: the view lived in
    /// tables of the old layout (here one junk row of `view-1`), forks in `forks-1` (one junk
    /// row), and today's tables for them do not exist. The next open must migrate and rebuild
    /// the view from the feeds.
    pub fn rewind_to_schema_4(&self) -> Result<()> {
        let txn = self.db().begin_write()?;
        txn.delete_table(crate::tables::VIEW)?;
        txn.delete_table(crate::tables::SUPERSEDED)?;
        txn.delete_table(crate::tables::EXCLUDED_VERSIONS)?;
        let old: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("view-1");
        txn.open_table(old)?
            .insert(&b"junk"[..], &b"of the old layout"[..])?;
        txn.delete_table(crate::tables::FORKS)?;
        let old_forks: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("forks-1");
        txn.open_table(old_forks)?
            .insert(&[0u8; 36][..], &b"a proof of the old kind"[..])?;
        txn.open_table(crate::tables::META)?
            .insert("schema", &[4][..])?;
        txn.commit()?;
        Ok(())
    }

    /// The names of every table in the database.
    pub fn table_names(&self) -> Result<Vec<String>> {
        use redb::{ReadableDatabase, TableHandle};
        let txn = self.db().begin_read()?;
        Ok(txn.list_tables()?.map(|t| t.name().to_owned()).collect())
    }
}

/// Copies the data dir `from` (of a replica no process has open) to `to`, as a backup does:
/// opening the copy later is restoring that backup.
///
/// # Errors
/// Any file that cannot be read or written.
pub fn copy_data_dir(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for item in std::fs::read_dir(from)? {
        let item = item?;
        let target = to.join(item.file_name());
        if item.file_type()?.is_dir() {
            copy_data_dir(&item.path(), &target)?;
        } else {
            std::fs::copy(item.path(), target)?;
        }
    }
    Ok(())
}
