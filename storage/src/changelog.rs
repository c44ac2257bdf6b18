//! The change log's rows, written in the transaction that changes the view: each change of
//! a key's winning version takes the next local sequence number, so the log and the view
//! never disagree. Reading the log is [`crate::Store::changes`].
//!
//! A row names the versions that now win rather than copying them: their entry rows already
//! hold key, value and time. Consecutive changes to consecutive entries of one feed (a local
//! batch, a run ingested) share one row, so the log costs one row per transaction, not one per
//! change.

use redb::{ReadableTable, Table, WriteTransaction};
use serde::{Deserialize, Serialize};
use weft_crdt::VersionId;

use crate::error::{Error, Result};
use crate::rows::{decode_register, prefix_range};
use crate::tables::CHANGES;

/// A [`CHANGES`] row; its key is the seq of its first change.
#[derive(Serialize, Deserialize)]
pub(crate) enum ChangeRow<'a> {
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
    pub fn len(&self) -> u64 {
        match self {
            ChangeRow::Winners { count, .. } => *count,
            ChangeRow::Gone { .. } => 1,
        }
    }
}

pub(crate) fn decode_change_row(seq: u64, bytes: &[u8]) -> Result<ChangeRow<'_>> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::Damaged(format!("change row {seq} does not decode ({e})")))
}

/// The seq the next change takes, after the last row of `table`.
pub(crate) fn next_seq(table: &impl ReadableTable<u64, &'static [u8]>) -> Result<u64> {
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
    let mut out = Vec::new();
    for row in prefix_range(view, &ns.to_be_bytes())? {
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
