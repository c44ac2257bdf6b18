//! The change feed: each change of a key's winning version in the view, local or remote, gets
//! the next local sequence number in the same transaction as the change itself, so a consumer
//! that remembers the last number it saw resumes exactly there, across restarts, with no gap.
//!
//! A row names the versions that now win rather than copying them: their entry rows already
//! hold key, value and time. Consecutive changes to consecutive entries of one feed (a local
//! batch, a run ingested) share one row, so the log costs one row per transaction, not one per
//! change.

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use weft_crdt::{AuthorId, Op, Timestamp, VersionId};

use crate::error::{Error, Result};
use crate::ids::NamespaceId;
use crate::members::RESERVED_PREFIX;
use crate::store::{Store, decode_row, feed_of, prefix_end};
use crate::tables::{CHANGES, ENTRIES, FEED_IDS, feed_key, is_pruned, split_row};
use crate::view::decode_register;

/// A [`CHANGES`] row; its key is the seq of its first change.
#[derive(Serialize, Deserialize)]
enum ChangeRow<'a> {
    /// `count` changes: entries `first..first + count` of `author`'s feed in namespace number
    /// `ns` each became the winner of its key, in that order.
    Winners {
        ns: u32,
        author: [u8; 32],
        first: u64,
        count: u64,
    },
    /// One change: a rebuild of the view left the key with no version at all.
    Gone {
        ns: u32,
        #[serde(borrow)]
        key: &'a [u8],
    },
}

impl ChangeRow<'_> {
    /// How many changes the row holds.
    fn len(&self) -> u64 {
        match self {
            ChangeRow::Winners { count, .. } => *count,
            ChangeRow::Gone { .. } => 1,
        }
    }
}

fn decode_change_row(seq: u64, bytes: &[u8]) -> Result<ChangeRow<'_>> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::Damaged(format!("change row {seq} does not decode ({e})")))
}

/// The seq the next change takes, after the last row of `table`.
fn next_seq(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64> {
    match table.last()? {
        None => Ok(1),
        Some((seq, row)) => Ok(seq.value() + decode_change_row(seq.value(), row.value())?.len()),
    }
}

/// The change log, open in a write transaction. Winners are gathered into one pending row
/// while they extend it, and written when the next change does not, or when the log is
/// dropped: every path out of a view update drops it before the transaction commits.
pub(crate) struct ChangeLog<'txn> {
    table: Table<'txn, u64, &'static [u8]>,
    /// The seq the next change takes.
    next: u64,
    /// The winners not yet written: the seq of the first, and the row.
    pending: Option<(u64, ChangeRow<'static>)>,
}

impl<'txn> ChangeLog<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        let table = txn.open_table(CHANGES)?;
        let next = next_seq(&table)?;
        Ok(ChangeLog {
            table,
            next,
            pending: None,
        })
    }

    /// Records that `id` now wins its key in namespace number `ns`.
    pub fn winner(&mut self, ns: u32, id: VersionId) -> Result<()> {
        if let Some((
            _,
            ChangeRow::Winners {
                ns: run_ns,
                author,
                first,
                count,
            },
        )) = &mut self.pending
            && *run_ns == ns
            && *author == id.author.0
            && first.checked_add(*count) == Some(id.seq)
        {
            *count += 1;
            self.next += 1;
            return Ok(());
        }
        self.flush()?;
        self.pending = Some((
            self.next,
            ChangeRow::Winners {
                ns,
                author: id.author.0,
                first: id.seq,
                count: 1,
            },
        ));
        self.next += 1;
        Ok(())
    }

    /// Records that `key` in namespace number `ns` has no version left.
    pub fn gone(&mut self, ns: u32, key: &[u8]) -> Result<()> {
        self.flush()?;
        let row = postcard::to_allocvec(&ChangeRow::Gone { ns, key }).expect("rows encode");
        self.table.insert(self.next, &row[..])?;
        self.next += 1;
        Ok(())
    }

    /// Writes the pending row.
    pub fn flush(&mut self) -> Result<()> {
        if let Some((seq, row)) = self.pending.take() {
            let bytes = postcard::to_allocvec(&row).expect("rows encode");
            self.table.insert(seq, &bytes[..])?;
        }
        Ok(())
    }
}

impl Drop for ChangeLog<'_> {
    fn drop(&mut self) {
        // The transaction commits after this. A failure here is a failure of the database
        // itself, which the commit then meets too.
        if let Err(e) = self.flush() {
            tracing::error!(error = %e, "could not write the change feed's last row");
        }
    }
}

/// Drops the oldest rows once more than `kept` plus an eighth changes are held, keeping at
/// least `kept`: a trim every `kept / 8` changes rather than a delete in every commit.
pub(crate) fn trim(txn: &WriteTransaction, kept: u64) -> Result<()> {
    let mut table = txn.open_table(CHANGES)?;
    let Some(first) = table.first()?.map(|(seq, _)| seq.value()) else {
        return Ok(());
    };
    let next = next_seq(&table)?;
    let kept = kept.max(1);
    if next - first > kept.saturating_add(kept / 8) {
        // The row holding the oldest change to keep stays, with everything after it.
        let cut = next - kept;
        let keep_from = table
            .range(..=cut)?
            .next_back()
            .transpose()?
            .map_or(first, |(seq, _)| seq.value());
        table.retain_in(..keep_from, |_, _| false)?;
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
        let next = next_seq(&table)?;
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
        let max = max.max(1) as u64;
        // The row holding `start` may begin before it.
        let first_row = table
            .range(..=start)?
            .next_back()
            .transpose()?
            .map_or(start, |(seq, _)| seq.value());
        for row in table.range(first_row..)? {
            let (row_seq, row) = row?;
            let row_seq = row_seq.value();
            let row = decode_change_row(row_seq, row.value())?;
            let skip = page.next.saturating_sub(row_seq);
            let take = row
                .len()
                .saturating_sub(skip)
                .min(max - (page.next - start));
            match row {
                ChangeRow::Gone { ns, key } => {
                    if take > 0
                        && ns == ns_number
                        && key.starts_with(prefix)
                        && !key.starts_with(RESERVED_PREFIX)
                    {
                        page.changes.push(Change {
                            seq: row_seq,
                            key: key.to_vec(),
                            value: ChangeValue::Deleted,
                            version: None,
                            timestamp: None,
                        });
                    }
                }
                ChangeRow::Winners {
                    ns, author, first, ..
                } if ns == ns_number && take > 0 => {
                    let author = AuthorId(author);
                    let missing = |at: u64| {
                        Error::Damaged(format!(
                            "the change feed names entry {at} of author {author}, which is not held"
                        ))
                    };
                    let feed = feed_of(&feed_ids, ns, &author)?.ok_or_else(|| missing(first))?;
                    for i in skip..skip + take {
                        let at = first + i;
                        let entry_row = entries
                            .get(feed_key(feed, at))?
                            .ok_or_else(|| missing(at))?;
                        let entry = decode_row(feed, at, entry_row.value())?;
                        // The owner's membership records are weft's own, as in scans.
                        if !entry.key.starts_with(prefix) || entry.key.starts_with(RESERVED_PREFIX)
                        {
                            continue;
                        }
                        let pruned =
                            split_row(at, entry_row.value()).is_some_and(|p| is_pruned(p.entry));
                        page.changes.push(Change {
                            seq: row_seq + i,
                            key: entry.key.to_vec(),
                            value: match entry.op {
                                _ if pruned => ChangeValue::Pruned,
                                Op::Put(value) => ChangeValue::Put(value.to_vec()),
                                Op::Delete => ChangeValue::Deleted,
                            },
                            version: Some(VersionId { author, seq: at }),
                            timestamp: Some(entry.timestamp),
                        });
                    }
                }
                // Another namespace's.
                ChangeRow::Winners { .. } => {}
            }
            page.next += take;
            if page.next - start >= max {
                break;
            }
        }
        Ok(page)
    }
}
