//! The change feed: each change of a key's winning version in the view, local or remote,
//! numbered in the transaction that makes it ([`crate::changelog`]), so a consumer that
//! remembers the last number it saw resumes exactly there, across restarts, with no gap.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use weft_crdt::{AuthorId, Op, Timestamp, VersionId};

use crate::changelog::{ChangeRow, decode_change_row, next_seq};
use crate::error::{Error, Result};
use crate::ids::NamespaceId;
use crate::members::RESERVED_PREFIX;
use crate::rows::{decode_row, feed_of};
use crate::store::Store;
use crate::tables::{CHANGES, ENTRIES, FEED_IDS, feed_key, is_pruned, split_row};

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
