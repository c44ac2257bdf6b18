//! Full replicas: runs of a feed's prefix, sent with the extension that proves them against
//! the latest head, and ingested by pushing their entries onto the held peaks.

use redb::ReadableDatabase;
use weft_crdt::VersionId;

use super::{
    IngestError, IngestTxn, Ingested, Invalid, Run, check_remote_entry, store_err,
    store_remote_entry,
};
use crate::error::Result;
use crate::ids::{AuthorId, NamespaceId};
use crate::rows::{FeedRecord, append_row, entry_bytes, extension_from, feed_slot, load_frontier};
use crate::store::Store;
use crate::tables::{self, ENTRIES, FEED_IDS, FEEDS, feed_key};
use crate::tree::ProofError;
use crate::view::ViewTables;

impl Store {
    /// Entries of `author`'s feed in `ns` from `start`, at most `max_entries` of them and, past
    /// the first, at most `max_bytes` of entry bytes, proven against the latest signed head
    /// held. `None` when nothing from `start` on is held.
    ///
    /// # Errors
    /// [`crate::Error::UnknownNamespace`]; database failures; [`crate::Error::Damaged`] when a stored row
    /// needed is missing or truncated.
    pub fn read_run(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        start: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Option<Run>> {
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(None);
        };
        if start >= record.held || max_entries == 0 {
            return Ok(None);
        }
        let entries_table = txn.open_table(ENTRIES)?;
        let last = record.held.min(start.saturating_add(max_entries as u64));
        let mut entries = Vec::new();
        let mut bytes = 0usize;
        for row in entries_table.range(feed_key(feed, start)..feed_key(feed, last))? {
            let (key, row) = row?;
            let seq = key.value() as u64;
            let parts = entry_bytes(feed, seq, row.value())?;
            if tables::is_pruned(parts.entry) {
                // A pruned entry's bytes are gone: the run ends before it.
                break;
            }
            if !entries.is_empty() && bytes + parts.entry.len() > max_bytes {
                break;
            }
            bytes += parts.entry.len();
            entries.push(parts.entry.to_vec());
        }
        if entries.is_empty() {
            return Ok(None);
        }
        let end = start + entries.len() as u64;
        let extension = extension_from(&entries_table, feed, &record, end)?;
        Ok(Some(Run {
            head: record.head,
            start,
            entries,
            extension,
        }))
    }

    /// Verifies a run of a remote feed and stores its new entries, merging them into the view,
    /// in one transaction. Entries already held are skipped; a run that starts past what is
    /// held stores nothing and reports the gap.
    ///
    /// # Errors
    /// [`IngestError::Invalid`] when the run does not verify or holds an entry this replica
    /// refuses; [`IngestError::Store`] when the store fails. Nothing is stored in either case.
    pub fn ingest(&self, run: &Run) -> Result<Ingested, IngestError> {
        let head = &run.head;
        let ns_number = self
            .namespace_number(&head.namespace)
            .map_err(|_| Invalid::UnknownNamespace(head.namespace))?;
        // A replica holds all of its own feed, sparse or not; a peer may hold more of it
        // when this one was restored from an older backup, and such a run is taken back whole.
        if head.author != self.author()
            && let Some(interest) = self.interest(&head.namespace)?
        {
            return self.ingest_run_sparsely(run, &interest);
        }
        if !self.syncs_author(&head.namespace, &head.author)? {
            return Ok(Ingested::NotMember {
                held: self.head_held(&head.namespace, &head.author)?,
            });
        }
        let end = run.start.checked_add(run.entries.len() as u64);
        let Some(end) = end.filter(|end| *end <= head.length) else {
            return Err(Invalid::BadRange {
                start: run.start,
                end: run.end(),
                length: head.length,
            }
            .into());
        };
        let IngestTxn {
            txn,
            index_key,
            frozen,
            mut gate,
        } = self.begin_ingest(ns_number, head)?;
        let outcome = {
            let mut feeds = txn.open_table(FEEDS).map_err(store_err)?;
            let mut feed_ids = txn.open_table(FEED_IDS).map_err(store_err)?;
            let mut entries = txn.open_table(ENTRIES).map_err(store_err)?;
            let mut view = ViewTables::open(&txn)?;
            let (feed, known) = feed_slot(&feeds, &feed_ids, &index_key)?;
            let held = known.as_ref().map_or(0, |record| record.held);
            // Both histories hold the same entries before the fork, so a run that ends by
            // it is taken from either: a replica that was behind catches up to where every
            // replica counts.
            if let Some(at) = frozen
                && (held >= at || end > at)
            {
                return Ok(Ingested::Frozen { held, at });
            }
            if run.start > held {
                return Ok(Ingested::Gap { held });
            }
            if end <= held {
                return Ok(Ingested::AlreadyHeld { held });
            }
            let new = &run.entries[(held - run.start) as usize..];

            // Verify everything before the first insert.
            let mut frontier = load_frontier(&entries, feed, held)?;
            let mut rows = Vec::with_capacity(new.len());
            for bytes in new {
                let mut row = Vec::with_capacity(32 * 3 + bytes.len());
                append_row(&mut frontier, bytes, &mut row);
                rows.push(row);
            }
            if frontier
                .extended_root(head.length, &run.extension)
                .map_err(Invalid::Proof)?
                != head.root
            {
                return Err(Invalid::Proof(ProofError::RootMismatch).into());
            }
            head.verify().map_err(Invalid::Proof)?;

            if known.is_none() {
                feed_ids.insert(&index_key[..], feed).map_err(store_err)?;
            }
            for (i, (bytes, row)) in new.iter().zip(&rows).enumerate() {
                let seq = held + i as u64;
                let entry = check_remote_entry(self, seq, bytes)?;
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
                    row,
                    &entry,
                )?;
            }
            let record = FeedRecord {
                ns: ns_number,
                head: head.clone(),
                held: end,
                extension: if end == head.length {
                    Vec::new()
                } else {
                    run.extension.clone()
                },
            };
            feeds
                .insert(feed, &record.encode()[..])
                .map_err(store_err)?;
            Ingested::Appended {
                added: new.len() as u64,
                held: end,
            }
        };
        self.commit_view(txn, &gate, &head.namespace)?;
        Ok(outcome)
    }
}
