//! The local write path: a batch of this replica's own writes appended to its feed, signed
//! and merged into the view in one transaction; and admitting entries whose time has come.

use std::collections::HashMap;

use redb::{ReadableDatabase, ReadableTable};
use weft_crdt::{Op, VersionId};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::NamespaceId;
use crate::rows::{FeedRecord, append_row, decode_row, feed_slot, load_frontier, row_hash};
use crate::store::Store;
use crate::tables::{self, ENTRIES, FEED_IDS, FEEDS, FUTURE, feed_key, future_key};
use crate::view::{Gate, ViewTables, rebuild_namespace};

impl Store {
    /// Puts `value` under `key`: one entry, one commit, one signature.
    ///
    /// # Errors
    /// See [`Store::write`].
    pub fn put(&self, ns: &NamespaceId, key: &[u8], value: &[u8]) -> Result<VersionId> {
        let ids = self.write(ns, vec![(key.to_vec(), Op::Put(value.to_vec()))])?;
        Ok(ids[0])
    }

    /// Deletes `key`, leaving a tombstone that wins over the versions seen now.
    ///
    /// # Errors
    /// See [`Store::write`].
    pub fn delete(&self, ns: &NamespaceId, key: &[u8]) -> Result<VersionId> {
        let ids = self.write(ns, vec![(key.to_vec(), Op::Delete)])?;
        Ok(ids[0])
    }

    /// Appends a batch of writes to the local author's feed: one redb transaction that appends
    /// the entries, extends the merkle tree, updates the view and stores one new signed head.
    /// Later writes of a key in the batch supersede earlier ones. Returns the new versions' ids.
    ///
    /// # Errors
    /// [`Error::KeyTooLarge`], [`Error::ValueTooLarge`] or [`Error::EmptyKey`] for any op, and
    /// [`Error::UnknownNamespace`], before anything is written; database failures, after which
    /// nothing of the batch is kept.
    pub fn write(
        &self,
        ns: &NamespaceId,
        ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    ) -> Result<Vec<VersionId>> {
        for (key, op) in &ops {
            self.check_write(ns, key, op)?;
        }
        self.append(ns, ops)
    }

    /// Appends `ops` to the local author's feed, checked only against the namespace's charter
    /// and grants: [`Store::write`] for user writes, and the owner's membership records.
    pub(crate) fn append(
        &self,
        ns: &NamespaceId,
        ops: Vec<(Vec<u8>, Op<Vec<u8>>)>,
    ) -> Result<Vec<VersionId>> {
        let ns_number = self.namespace_number(ns)?;
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(frozen_at) = self.frozen_at(ns_number, &self.author()) {
            return Err(Error::OwnFeedForked {
                namespace: *ns,
                frozen_at,
            });
        }
        let mut txn = self.db().begin_write()?;
        txn.set_durability(self.durability())?;
        let mut ids = Vec::with_capacity(ops.len());
        let mut gate = self.gate(ns)?;
        {
            let mut feeds = txn.open_table(FEEDS)?;
            let mut feed_ids = txn.open_table(FEED_IDS)?;
            let mut entries = txn.open_table(ENTRIES)?;
            let mut view = ViewTables::open(&txn)?;
            let index_key = tables::feed_ids_key(ns_number, &self.author());
            let (feed, known) = feed_slot(&feeds, &feed_ids, &index_key)?;
            let length = match known {
                Some(record) => record.held,
                None => {
                    feed_ids.insert(&index_key[..], feed)?;
                    0
                }
            };
            self.check_own_feed_current(ns, length)?;
            let mut frontier = load_frontier(&entries, feed, length)?;
            let (mut bytes, mut row) = (Vec::new(), Vec::new());
            // A local write is never excluded itself (it is refused instead), so this holds
            // for the whole batch.
            let excluded = view.holds_excluded()?;
            for (key, op) in &ops {
                let seen = view.seen_versions(ns_number, key, excluded)?;
                let id = VersionId {
                    author: self.author(),
                    seq: frontier.length(),
                };
                let entry = Entry {
                    timestamp: self.clock_now(),
                    key,
                    op: match op {
                        Op::Put(value) => Op::Put(&value[..]),
                        Op::Delete => Op::Delete,
                    },
                    supersedes: seen,
                };
                bytes.clear();
                entry.encode_into(&mut bytes);
                append_row(&mut frontier, &bytes, &mut row);
                entries.insert(feed_key(feed, id.seq), &row[..])?;
                let version = (id, row_hash(&row));
                if let Some(reason) = view.admit(&mut gate, &entries, feed, version, &entry)? {
                    // Dropping the transaction aborts it: nothing of the batch is kept.
                    return Err(Error::NotAllowed {
                        author: self.author(),
                        key: String::from_utf8_lossy(key).into_owned(),
                        reason,
                    });
                }
                ids.push(id);
            }
            let head = self.sign_head(ns, frontier.length(), frontier.root());
            let record = FeedRecord {
                ns: ns_number,
                held: head.length,
                head,
                extension: Vec::new(),
            };
            feeds.insert(feed, &record.encode()[..])?;
        }
        self.commit_view(txn, &gate, ns)?;
        Ok(ids)
    }

    /// Notes `head`, a validly signed head of this replica's own feed that a peer holds.
    /// Returns whether it is longer than what is held here: then writes to `ns` fail with
    /// [`Error::OwnFeedBehind`] until sync has fetched the rest of the feed back.
    ///
    /// # Errors
    /// Database failures.
    pub fn note_own_head(&self, head: &SignedHead) -> Result<bool> {
        if head.author != self.author() {
            return Ok(false);
        }
        let held = self.head_held(&head.namespace, &head.author)?;
        if head.length <= held {
            return Ok(false);
        }
        let mut elsewhere = self.own_elsewhere();
        let longest = elsewhere.entry(head.namespace).or_insert(0);
        if head.length > *longest {
            tracing::warn!(
                namespace = %head.namespace,
                held,
                elsewhere = head.length,
                "a peer holds more of this replica's own feed (restored from a backup?); writes wait until it is fetched back"
            );
            *longest = head.length;
        }
        Ok(true)
    }

    /// Refuses a write while a peer is known to hold more of the own feed than `held`.
    fn check_own_feed_current(&self, ns: &NamespaceId, held: u64) -> Result<()> {
        let mut elsewhere = self.own_elsewhere();
        match elsewhere.get(ns).copied() {
            Some(longest) if longest > held => Err(Error::OwnFeedBehind {
                namespace: *ns,
                held,
                elsewhere: longest,
            }),
            Some(_) => {
                elsewhere.remove(ns);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Lets the entries kept out for a timestamp too far ahead count, once this machine's
    /// clock is within [`crate::Options::max_future`] of them. Returns how many now count. A
    /// node calls it every tick; it costs one read when nothing is due.
    ///
    /// # Errors
    /// Database failures; [`Error::Damaged`] when a row named is not there.
    pub fn admit_due(&self) -> Result<u64> {
        let namespaces: HashMap<u32, NamespaceId> = self
            .namespace_ids()
            .into_iter()
            .filter_map(|ns| Some((self.namespace_number(&ns).ok()?, ns)))
            .collect();
        let bound = Gate::new(
            0,
            None,
            self.options().max_future,
            None,
            self.clock_now(),
            HashMap::new(),
        )
        .future_after;
        let end = future_key(bound, u64::MAX, u64::MAX);
        {
            let txn = self.db().begin_read()?;
            if txn.open_table(FUTURE)?.range(..=&end[..])?.next().is_none() {
                return Ok(0);
            }
        }
        let mut txn = self.db().begin_write()?;
        txn.set_durability(self.durability())?;
        let mut admitted = 0;
        let mut changed = Vec::new();
        {
            let mut tables = ViewTables::open(&txn)?;
            let feeds = txn.open_table(FEEDS)?;
            let entries = txn.open_table(ENTRIES)?;
            let mut due = Vec::new();
            for row in tables.future.range(..=&end[..])? {
                let key = row?.0.value().to_vec();
                let number = |at: usize| {
                    key.get(at..at + 8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                        .ok_or_else(|| Error::Damaged("a future row is truncated".into()))
                };
                due.push((key.clone(), number(8)?, number(16)?));
            }
            let mut gates: HashMap<u32, Gate> = HashMap::new();
            for (key, feed, seq) in due {
                tables.future.remove(&key[..])?;
                let record = FeedRecord::decode(
                    feeds
                        .get(feed)?
                        .ok_or_else(|| Error::Damaged(format!("feed {feed} has no record")))?
                        .value(),
                )?;
                let Some(ns) = namespaces.get(&record.ns) else {
                    continue;
                };
                let gate = match gates.entry(record.ns) {
                    std::collections::hash_map::Entry::Occupied(gate) => gate.into_mut(),
                    std::collections::hash_map::Entry::Vacant(slot) => slot.insert(self.gate(ns)?),
                };
                let row = entries.get(feed_key(feed, seq))?.ok_or_else(|| {
                    Error::Damaged(format!("entry {seq} of local feed {feed} is missing"))
                })?;
                let entry = decode_row(feed, seq, row.value())?;
                let id = VersionId {
                    author: record.head.author,
                    seq,
                };
                let version = (id, row_hash(row.value()));
                tables.unexclude(record.ns, entry.key, feed, id)?;
                if tables
                    .admit(gate, &entries, feed, version, &entry)?
                    .is_none()
                {
                    admitted += 1;
                }
            }
            for (number, gate) in gates {
                if gate.membership_changed
                    && let Some(ns) = namespaces.get(&number)
                {
                    changed.push(*ns);
                }
            }
        }
        for ns in changed {
            rebuild_namespace(&txn, &mut ViewTables::open(&txn)?, self.gate(&ns)?)?;
        }
        self.commit(txn)?;
        Ok(admitted)
    }
}
