//! The change feed: each change of a key's winning version in the view, local or remote, gets
//! the next local sequence number in the same transaction as the change itself, so a consumer
//! that remembers the last number it saw resumes exactly there, across restarts, with no gap.
//!
//! A row names the version that now wins rather than copying it: its entry row already holds
//! the key, value and time, so the log costs about 40 bytes a change.

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use weft_crdt::{AuthorId, Op, Timestamp, VersionId};

use crate::error::{Error, Result};
use crate::ids::NamespaceId;
use crate::members::RESERVED_PREFIX;
use crate::store::{Store, decode_row, feed_of, prefix_end};
use crate::tables::{CHANGES, ENTRIES, FEED_IDS, feed_key, is_pruned, split_row};
use crate::view::decode_register;

/// A [`CHANGES`] row.
#[derive(Serialize, Deserialize)]
enum ChangeRow<'a> {
    /// The key's winning version is now this one.
    Winner { ns: u32, author: [u8; 32], seq: u64 },
    /// A rebuild of the view left the key with no version at all.
    Gone {
        ns: u32,
        #[serde(borrow)]
        key: &'a [u8],
    },
}

/// The change log, open in a write transaction.
pub(crate) struct ChangeLog<'txn> {
    table: Table<'txn, u64, &'static [u8]>,
    next: u64,
}

impl<'txn> ChangeLog<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        let table = txn.open_table(CHANGES)?;
        let next = table.last()?.map_or(1, |(seq, _)| seq.value() + 1);
        Ok(ChangeLog { table, next })
    }

    /// Records that `id` now wins its key in namespace number `ns`.
    pub fn winner(&mut self, ns: u32, id: VersionId) -> Result<()> {
        self.push(&ChangeRow::Winner {
            ns,
            author: id.author.0,
            seq: id.seq,
        })
    }

    /// Records that `key` in namespace number `ns` has no version left.
    pub fn gone(&mut self, ns: u32, key: &[u8]) -> Result<()> {
        self.push(&ChangeRow::Gone { ns, key })
    }

    fn push(&mut self, row: &ChangeRow<'_>) -> Result<()> {
        let mut bytes = [0u8; 64];
        let encoded = match postcard::to_slice(row, &mut bytes) {
            Ok(encoded) => encoded.to_vec(),
            // Only a `Gone` row with a long key is over 64 bytes.
            Err(_) => postcard::to_allocvec(row).expect("change rows always encode"),
        };
        self.table.insert(self.next, &encoded[..])?;
        self.next += 1;
        Ok(())
    }
}

/// Drops the oldest changes once more than `kept` plus an eighth are held, down to `kept`:
/// a trim every `kept / 8` changes rather than a delete in every commit.
pub(crate) fn trim(txn: &WriteTransaction, kept: u64) -> Result<()> {
    let mut table = txn.open_table(CHANGES)?;
    let (Some(first), Some(last)) = (
        table.first()?.map(|(seq, _)| seq.value()),
        table.last()?.map(|(seq, _)| seq.value()),
    ) else {
        return Ok(());
    };
    let kept = kept.max(1);
    if last - first + 1 > kept.saturating_add(kept / 8) {
        table.retain_in(..=last - kept, |_, _| false)?;
    }
    Ok(())
}

/// The winning version of every key of namespace number `ns` in `view`, in key order.
pub(crate) fn winners(
    view: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ns: u32,
) -> Result<Vec<(Vec<u8>, VersionId)>> {
    let low = ns.to_be_bytes();
    let rows = match prefix_end(&low) {
        Some(high) => view.range(&low[..]..&high[..])?,
        None => view.range(&low[..]..)?,
    };
    let mut out = Vec::new();
    for row in rows {
        let (key, register) = row?;
        // A damaged row (which `reindex` is there to mend) counts as no winner.
        if let Some(winner) = decode_register(Some(register.value()))
            .ok()
            .and_then(|register| register.winner().map(|v| v.id))
        {
            out.push((key.value()[4..].to_vec(), winner));
        }
    }
    Ok(out)
}

/// Records the difference between two [`winners`] lists of namespace number `ns`, both in key
/// order: what a rebuild of the view changed.
pub(crate) fn record_difference(
    log: &mut ChangeLog<'_>,
    ns: u32,
    before: &[(Vec<u8>, VersionId)],
    after: &[(Vec<u8>, VersionId)],
) -> Result<()> {
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => return Ok(()),
            (Some((key, _)), None) => {
                log.gone(ns, key)?;
                old.next();
            }
            (None, Some((_, id))) => {
                log.winner(ns, *id)?;
                new.next();
            }
            (Some((old_key, old_id)), Some((new_key, new_id))) => match old_key.cmp(new_key) {
                std::cmp::Ordering::Less => {
                    log.gone(ns, old_key)?;
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    log.winner(ns, *new_id)?;
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if old_id != new_id {
                        log.winner(ns, *new_id)?;
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
}

/// One change of a key's winning version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Its place in this replica's change feed. Local: another replica numbers its changes
    /// differently.
    pub seq: u64,
    /// The key.
    pub key: Vec<u8>,
    /// What the key's last-writer-wins read now returns.
    pub value: ChangeValue,
    /// The winning version: its author and feed index. `None` when no version is left.
    pub version: Option<VersionId>,
    /// The winning version's timestamp.
    pub timestamp: Option<Timestamp>,
}

/// What a key holds after a [`Change`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChangeValue {
    /// A value.
    Put(Vec<u8>),
    /// Nothing: a delete won, or no version is left.
    Deleted,
    /// The version that won then has since been superseded and its value dropped by
    /// `weft prune`; a later change of the key follows.
    Pruned,
}

/// A page of the change feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePage {
    /// The changes found, in seq order.
    pub changes: Vec<Change>,
    /// Where to continue: the seq after the last change looked at (some may not have
    /// matched).
    pub next: u64,
}

impl Store {
    /// The changes of namespace `ns` under `prefix` from seq `from` on, looking at no more than
    /// `max` changes of the whole replica. `from` 0 starts at the oldest change kept; `None`
    /// starts after the newest, so the page is empty and its `next` is where new changes will
    /// start.
    ///
    /// # Errors
    /// [`Error::ChangesDropped`] when `from` is older than the oldest change kept;
    /// [`Error::ChangeAhead`] when it is past the next change; [`Error::UnknownNamespace`];
    /// [`Error::Damaged`] when a change names an entry not held.
    pub fn changes(
        &self,
        ns: &NamespaceId,
        prefix: &[u8],
        from: Option<u64>,
        max: usize,
    ) -> Result<ChangePage> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db().begin_read()?;
        let table = match txn.open_table(CHANGES) {
            Ok(table) => table,
            // A store no write has touched since the change feed was added.
            Err(redb::TableError::TableDoesNotExist(_)) => {
                return match from {
                    None | Some(0 | 1) => Ok(ChangePage {
                        changes: Vec::new(),
                        next: 1,
                    }),
                    Some(from) => Err(Error::ChangeAhead { from, next: 1 }),
                };
            }
            Err(e) => return Err(e.into()),
        };
        let next = table.last()?.map_or(1, |(seq, _)| seq.value() + 1);
        let oldest = table.first()?.map_or(next, |(seq, _)| seq.value());
        let start = match from {
            None => next,
            Some(0) => oldest,
            Some(from) if from < oldest => return Err(Error::ChangesDropped { from, oldest }),
            Some(from) if from > next => return Err(Error::ChangeAhead { from, next }),
            Some(from) => from,
        };
        let feed_ids = txn.open_table(FEED_IDS)?;
        let entries = txn.open_table(ENTRIES)?;
        let mut page = ChangePage {
            changes: Vec::new(),
            next: start,
        };
        for row in table.range(start..)?.take(max.max(1)) {
            let (seq, row) = row?;
            let seq = seq.value();
            page.next = seq + 1;
            let row: ChangeRow<'_> = postcard::from_bytes(row.value())
                .map_err(|e| Error::Damaged(format!("change {seq} does not decode ({e})")))?;
            let change = match row {
                ChangeRow::Gone { ns, key } => {
                    if ns != ns_number || !key.starts_with(prefix) {
                        continue;
                    }
                    Change {
                        seq,
                        key: key.to_vec(),
                        value: ChangeValue::Deleted,
                        version: None,
                        timestamp: None,
                    }
                }
                ChangeRow::Winner {
                    ns,
                    author,
                    seq: at,
                } => {
                    if ns != ns_number {
                        continue;
                    }
                    let id = VersionId {
                        author: AuthorId(author),
                        seq: at,
                    };
                    let missing = || {
                        Error::Damaged(format!(
                            "change {seq} names entry {at} of author {author}, which is not held",
                            author = id.author
                        ))
                    };
                    let feed = feed_of(&feed_ids, ns, &id.author)?.ok_or_else(missing)?;
                    let entry_row = entries.get(feed_key(feed, at))?.ok_or_else(missing)?;
                    let entry = decode_row(feed, at, entry_row.value())?;
                    if !entry.key.starts_with(prefix) {
                        continue;
                    }
                    let pruned =
                        split_row(at, entry_row.value()).is_some_and(|p| is_pruned(p.entry));
                    Change {
                        seq,
                        key: entry.key.to_vec(),
                        value: match entry.op {
                            _ if pruned => ChangeValue::Pruned,
                            Op::Put(value) => ChangeValue::Put(value.to_vec()),
                            Op::Delete => ChangeValue::Deleted,
                        },
                        version: Some(id),
                        timestamp: Some(entry.timestamp),
                    }
                }
            };
            // The owner's membership records are weft's own, as in scans.
            if change.key.starts_with(RESERVED_PREFIX) {
                continue;
            }
            page.changes.push(change);
        }
        Ok(page)
    }
}
