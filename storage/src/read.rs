//! Reading the replica: a key's value, its live versions, its value as of a past time, its
//! history, scans in key order, snapshots, and a summary of what is held.

use std::fs;

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};
use weft_crdt::{
    Link, Op, Register, Superseded, Timestamp, Version, VersionHash, VersionId, Write,
};

use crate::error::{Error, Result};
use crate::ids::{AuthorId, NamespaceId};
use crate::interest::Interest;
use crate::members::RESERVED_PREFIX;
use crate::rows::{
    EntriesTable, FeedRecord, SparseRecord, ViewTable, decode_register, decode_row, entry_bytes,
    feed_of, key_versions, prefix_end, prefix_range, read_node, read_register, row_hash, value_at,
};
use crate::store::Store;
use crate::tables::{self, ENTRIES, FEED_IDS, FEEDS, SPARSE_FEEDS, VIEW, feed_key, view_key};
use crate::tree::{self, Hash};

/// One version of a key as reads return it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Where it was written.
    pub id: VersionId,
    /// When, by its author's clock.
    pub timestamp: Timestamp,
    /// The value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// One version in a key's history.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The version.
    pub version: VersionInfo,
    /// Whether it is still live (not superseded).
    pub live: bool,
}

/// A summary of the replica.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Info {
    /// The local author.
    pub author: AuthorId,
    /// The namespace commands use by default.
    pub default_namespace: NamespaceId,
    /// Every namespace held.
    pub namespaces: Vec<NamespaceInfo>,
    /// The size of the database file.
    pub db_bytes: u64,
}

/// A namespace in [`Info`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NamespaceInfo {
    /// Its id.
    pub id: NamespaceId,
    /// Its feeds.
    pub feeds: Vec<FeedInfo>,
    /// Keys whose last writer put a value (deleted keys are not counted).
    pub keys: u64,
    /// What a sparse replica replicates; `None` when it replicates everything.
    pub interest: Option<Interest>,
}

/// A feed in [`Info`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedInfo {
    /// Its author.
    pub author: AuthorId,
    /// How many of its entries are held.
    pub length: u64,
    /// The length of its latest signed head: more than `length` while a catch-up is under way.
    pub signed_length: u64,
    /// For a feed held with holes: every wanted entry before this index is held.
    pub scanned: Option<u64>,
}

impl Store {
    /// The last writer's value of `key`, or `None` if it is absent or deleted.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures; [`Error::Corrupt`] if the view points at
    /// an entry that is not there.
    pub fn get(&self, ns: &NamespaceId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snapshot()?.get(ns, key)
    }

    /// Every live version of `key`, the last writer first: the multi-value read.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn get_all(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<VersionInfo>> {
        self.snapshot()?.get_all(ns, key)
    }

    /// A consistent read-only view of the replica as of the last commit. Reads through one
    /// snapshot skip the per-call cost of starting a read transaction and opening tables, and
    /// see no write committed after it was taken. Holding one for long keeps the pages it
    /// reads from being reused, so the file grows while it lives.
    ///
    /// # Errors
    /// Database failures.
    pub fn snapshot(&self) -> Result<Snapshot<'_>> {
        let txn = self.db().begin_read()?;
        Ok(Snapshot {
            store: self,
            view: txn.open_table(VIEW)?,
            entries: txn.open_table(ENTRIES)?,
        })
    }

    /// The last writer's value of `key` as of `at`: what [`Store::get`] would have returned if
    /// only the versions held that are timestamped at or before `at` had been written. A
    /// version counts as superseded only by another of those.
    ///
    /// # Errors
    /// As [`Store::get`]; [`Error::Pruned`] when the version that won at `at` has had its value
    /// dropped by [`Store::prune`].
    pub fn get_at(&self, ns: &NamespaceId, key: &[u8], at: Timestamp) -> Result<Option<Vec<u8>>> {
        // Replayed into a register as if only the versions stamped by then had been written. A
        // pruned stub keeps the timestamp and supersedes, so it still takes part.
        let then: Vec<HeldVersion> = self
            .held_versions(ns, key)?
            .into_iter()
            .filter(|version| version.timestamp <= at)
            .collect();
        let mut register: Register<usize> = Register::default();
        let mut superseded = Superseded::default();
        for (index, version) in then.iter().enumerate() {
            let write = Write {
                version: Version {
                    id: version.id,
                    timestamp: version.timestamp,
                    op: match version.value {
                        Some(_) => Op::Put(index),
                        None => Op::Delete,
                    },
                    hash: version.hash,
                },
                supersedes: version.supersedes.clone(),
            };
            let Ok(_) = register.apply(write, &mut superseded);
        }
        match register.winner().map(|winner| &winner.op) {
            None | Some(Op::Delete) => Ok(None),
            Some(Op::Put(index)) if then[*index].pruned => Err(Error::Pruned {
                key: String::from_utf8_lossy(key).into_owned(),
            }),
            Some(Op::Put(index)) => Ok(then[*index].value.clone()),
        }
    }

    /// Every version of `key` held in the feeds, oldest first, live or superseded.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn history(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<HistoryItem>> {
        let mut items: Vec<HistoryItem> = self
            .held_versions(ns, key)?
            .into_iter()
            // `weft prune` dropped its value.
            .filter(|version| !version.pruned)
            .map(|version| HistoryItem {
                version: VersionInfo {
                    id: version.id,
                    timestamp: version.timestamp,
                    value: version.value,
                },
                live: version.live,
            })
            .collect();
        items.sort_by_key(|item| (item.version.timestamp, item.version.id));
        Ok(items)
    }

    /// Every version of `key` the view knows, live or superseded, whose entry this replica
    /// holds, pruned stubs included, read from one snapshot.
    fn held_versions(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<HeldVersion>> {
        self.check_covered(ns, key)?;
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db().begin_read()?;
        let versions = key_versions(
            &txn.open_table(VIEW)?,
            &txn.open_table(tables::SUPERSEDED)?,
            ns_number,
            key,
        )?;
        let entries = txn.open_table(ENTRIES)?;
        let feed_ids = txn.open_table(FEED_IDS)?;
        let mut held = Vec::with_capacity(versions.len());
        for (id, live) in versions {
            // Superseded rows may name versions this replica has not received.
            let Some(feed) = feed_of(&feed_ids, ns_number, &id.author)? else {
                continue;
            };
            let Some(row) = entries.get(feed_key(feed, id.seq))? else {
                continue;
            };
            let pruned =
                tables::split_row(id.seq, row.value()).is_some_and(|p| tables::is_pruned(p.entry));
            let entry = decode_row(feed, id.seq, row.value())?;
            held.push(HeldVersion {
                id,
                hash: row_hash(row.value()),
                live,
                pruned,
                timestamp: entry.timestamp,
                value: match entry.op {
                    Op::Put(value) => Some(value.to_vec()),
                    Op::Delete => None,
                },
                supersedes: entry.supersedes,
            });
        }
        Ok(held)
    }

    /// The keys under `prefix` whose last writer put a value, in byte order, read from one
    /// snapshot. With `values`, each comes with its value.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`] and database failures here; each item can fail like
    /// [`Store::get`].
    pub fn scan(&self, ns: &NamespaceId, prefix: &[u8], values: bool) -> Result<Scan> {
        self.scan_after(ns, prefix, None, values)
    }

    /// As [`Store::scan`], starting after the key `after` when given: how a scan is paged.
    ///
    /// # Errors
    /// As [`Store::scan`].
    pub fn scan_after(
        &self,
        ns: &NamespaceId,
        prefix: &[u8],
        after: Option<&[u8]>,
        values: bool,
    ) -> Result<Scan> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db().begin_read()?;
        let view = txn.open_table(VIEW)?;
        let start = view_key(ns_number, prefix);
        let low = match after {
            Some(after) => {
                // The least key greater than `after`.
                let mut next = view_key(ns_number, after);
                next.push(0);
                next.max(start.clone())
            }
            None => start.clone(),
        };
        let range = match prefix_end(&start) {
            Some(high) if low >= high => view.range(&high[..]..&high[..])?,
            Some(high) => view.range(&low[..]..&high[..])?,
            None => view.range(&low[..]..)?,
        };
        Ok(Scan {
            range,
            entries: txn.open_table(ENTRIES)?,
            values,
        })
    }

    /// A summary: ids, feed lengths, key counts and the database's size on disk.
    ///
    /// # Errors
    /// Database failures.
    pub fn info(&self) -> Result<Info> {
        let txn = self.db().begin_read()?;
        let mut namespaces: Vec<NamespaceInfo> = Vec::new();
        let mut numbers = self.namespace_numbers();
        numbers.sort();
        let view = txn.open_table(VIEW)?;
        for (number, id) in &numbers {
            let mut keys = 0;
            for row in prefix_range(&view, &number.to_be_bytes())? {
                let (key, register) = row?;
                if key.value()[4..].starts_with(RESERVED_PREFIX) {
                    continue;
                }
                if decode_register(Some(register.value()))?.value().is_some() {
                    keys += 1;
                }
            }
            namespaces.push(NamespaceInfo {
                id: *id,
                feeds: Vec::new(),
                keys,
                interest: self.interests().get(id).cloned(),
            });
        }
        let sparse = txn.open_table(SPARSE_FEEDS)?;
        for row in txn.open_table(FEEDS)?.iter()? {
            let (feed, record) = row?;
            let record = FeedRecord::decode(record.value())?;
            let holes = match sparse.get(feed.value())? {
                Some(bytes) => Some(SparseRecord::decode(bytes.value())?),
                None => None,
            };
            if let Some(i) = numbers.iter().position(|(n, _)| *n == record.ns) {
                namespaces[i].feeds.push(FeedInfo {
                    author: record.head.author,
                    length: holes.map_or(record.held, |h| h.entries),
                    signed_length: record.head.length,
                    scanned: holes.map(|h| h.scanned),
                });
            }
        }
        let db_path = self.dir().join(crate::store::DB_FILE);
        let db_bytes = fs::metadata(&db_path)
            .map_err(|source| Error::Io {
                path: db_path.clone(),
                source,
            })?
            .len();
        Ok(Info {
            author: self.author(),
            default_namespace: self.default_namespace(),
            namespaces,
            db_bytes,
        })
    }

    /// The encoded entries `[start, end)` of `author`'s feed in `ns`, and the proof nodes that
    /// verify them against a head of `length` entries ([`crate::SignedHead::verify_range`]).
    ///
    /// # Errors
    /// [`Error::Proof`] when the range does not fit `length` or `length` exceeds what is held.
    pub fn read_range(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        start: u64,
        end: u64,
        length: u64,
    ) -> Result<(Vec<Vec<u8>>, Vec<Hash>)> {
        let txn = self.db().begin_read()?;
        let found = self.feed_record(&txn, ns, author)?;
        let held = found.as_ref().map_or(0, |(_, record)| record.held);
        tree::check_range(start, end, length)?;
        if length > held {
            return Err(tree::ProofError::BadRange {
                start,
                end: length,
                length: held,
            }
            .into());
        }
        let Some((feed, _)) = found else {
            // Nothing held, and the range is empty: no entries, and the peaks of nothing.
            return Ok((Vec::new(), Vec::new()));
        };
        let entries = txn.open_table(ENTRIES)?;
        let mut bytes = Vec::with_capacity((end - start) as usize);
        for row in entries.range(feed_key(feed, start)..feed_key(feed, end))? {
            let (key, row) = row?;
            let seq = key.value() as u64;
            bytes.push(entry_bytes(feed, seq, row.value())?.entry.to_vec());
        }
        let nodes = tree::proof_nodes(length, start, end, |node| read_node(&entries, feed, node))?;
        Ok((bytes, nodes))
    }
}

/// A version of a key as [`Store::held_versions`] reads it from its entry row.
struct HeldVersion {
    id: VersionId,
    hash: VersionHash,
    /// Live in the view now.
    live: bool,
    /// `weft prune` dropped its value: `value` is meaningless.
    pruned: bool,
    timestamp: Timestamp,
    value: Option<Vec<u8>>,
    supersedes: Vec<Link>,
}

/// A consistent read-only view of a [`Store`], from [`Store::snapshot`].
pub struct Snapshot<'a> {
    store: &'a Store,
    view: ViewTable,
    entries: EntriesTable,
}

impl Snapshot<'_> {
    /// As [`Store::get`], as of the snapshot.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn get(&self, ns: &NamespaceId, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.store.check_covered(ns, key)?;
        let register = read_register(&self.view, self.store.namespace_number(ns)?, key)?;
        match register.winner() {
            Some(winner) => match winner.op {
                Op::Put(feed) => value_at(&self.entries, feed, winner.id.seq),
                Op::Delete => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// As [`Store::get_all`], as of the snapshot.
    ///
    /// # Errors
    /// As [`Store::get`].
    pub fn get_all(&self, ns: &NamespaceId, key: &[u8]) -> Result<Vec<VersionInfo>> {
        self.store.check_covered(ns, key)?;
        let register = read_register(&self.view, self.store.namespace_number(ns)?, key)?;
        register
            .live()
            .iter()
            .map(|version| {
                let value = match version.op {
                    Op::Put(feed) => value_at(&self.entries, feed, version.id.seq)?,
                    Op::Delete => None,
                };
                Ok(VersionInfo {
                    id: version.id,
                    timestamp: version.timestamp,
                    value,
                })
            })
            .collect()
    }
}

/// Items of [`Store::scan`].
pub struct Scan {
    range: redb::Range<'static, &'static [u8], &'static [u8]>,
    entries: EntriesTable,
    values: bool,
}

impl Iterator for Scan {
    /// A key, and its value when asked for.
    type Item = Result<(Vec<u8>, Option<Vec<u8>>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (key, register) = match self.range.next()? {
                Ok(row) => row,
                Err(e) => return Some(Err(e.into())),
            };
            let register = match decode_register(Some(register.value())) {
                Ok(register) => register,
                Err(e) => return Some(Err(e)),
            };
            let Some(winner) = register.winner() else {
                continue;
            };
            let Op::Put(feed) = winner.op else {
                continue;
            };
            if key.value()[4..].starts_with(RESERVED_PREFIX) {
                continue;
            }
            let user_key = key.value()[4..].to_vec();
            if !self.values {
                return Some(Ok((user_key, None)));
            }
            return Some(
                value_at(&self.entries, feed, winner.id.seq).map(|value| (user_key, value)),
            );
        }
    }
}
