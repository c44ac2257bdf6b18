//! Checking a replica end to end, and rebuilding its view.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;

use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::entry::Entry;
use crate::error::Result;
use crate::ids::{AuthorId, NamespaceId};
use crate::rows::{FeedRecord, SparseRecord, SparseTree, feed_of};
use crate::store::Store;
use crate::tables::{
    self, ENTRIES, FEED_IDS, FEEDS, NAMESPACES, NODES, SPARSE_FEEDS, SUPERSEDED, VIEW, feed_key,
};
use crate::tree::{self, Frontier, Hash};
use crate::view::{VIEW_TABLES, ViewNames, ViewTables, rebuild};

/// Where `verify` rebuilds the view to compare it; the transaction is aborted, so these never
/// reach the disk.
const SCRATCH: ViewNames = ViewNames {
    view: TableDefinition::new("verify-scratch-view"),
    superseded: TableDefinition::new("verify-scratch-superseded"),
    excluded: TableDefinition::new("verify-scratch-excluded"),
    excluded_versions: TableDefinition::new("verify-scratch-excluded-versions"),
    future: TableDefinition::new("verify-scratch-future"),
};

/// What [`Store::verify`] found.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Feeds checked.
    pub feeds: u64,
    /// Entries checked.
    pub entries: u64,
    /// The first problem of each damaged feed, then any view problem. Empty when clean.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One thing that does not check out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The namespace concerned, when known.
    pub namespace: Option<NamespaceId>,
    /// The feed's author, when a feed is concerned.
    pub author: Option<AuthorId>,
    /// The first bad entry's index, when an entry is concerned.
    pub entry: Option<u64>,
    /// What is wrong.
    pub reason: String,
    /// The view disagrees with the feeds, which are sound: rebuilding the view from them
    /// ([`Store::reindex`]) mends it.
    pub in_view: bool,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(namespace) = &self.namespace {
            write!(f, "namespace {namespace}: ")?;
        }
        if let Some(author) = &self.author {
            write!(f, "feed of {author}: ")?;
        }
        if let Some(entry) = self.entry {
            write!(f, "entry {entry}: ")?;
        }
        f.write_str(&self.reason)
    }
}

impl Store {
    /// Re-checks every entry hash, tree node and head signature of every feed, then that the
    /// view equals one rebuilt from the feeds. Reports the first bad entry of each feed.
    ///
    /// Holds the write lock while it runs: writers wait.
    ///
    /// # Errors
    /// Database failures only; damage is reported in the [`VerifyReport`].
    pub fn verify(&self) -> Result<VerifyReport> {
        // Entries whose time has come would count in the rebuilt view but not yet in the
        // stored one.
        self.admit_due()?;
        let txn = self.db().begin_write()?;
        let mut report = VerifyReport::default();
        {
            let feeds = txn.open_table(FEEDS)?;
            let entries = txn.open_table(ENTRIES)?;
            let namespaces = txn.open_table(NAMESPACES)?;
            let feed_ids = txn.open_table(FEED_IDS)?;
            let sparse = txn.open_table(SPARSE_FEEDS)?;
            let nodes = txn.open_table(NODES)?;
            for row in feeds.iter()? {
                let (feed, record) = row?;
                report.feeds += 1;
                let record = match FeedRecord::decode(record.value()) {
                    Ok(record) => record,
                    Err(e) => {
                        report.problems.push(Problem {
                            namespace: None,
                            author: None,
                            entry: None,
                            reason: format!("feed {}: {e}", feed.value()),
                            in_view: false,
                        });
                        continue;
                    }
                };
                let problem = |entry: Option<u64>, reason: String| Problem {
                    namespace: Some(record.head.namespace),
                    author: Some(record.head.author),
                    entry,
                    reason,
                    in_view: false,
                };
                let number = namespaces
                    .get(record.head.namespace.as_bytes())?
                    .map(|n| n.value());
                if number != Some(record.ns) {
                    report.problems.push(problem(
                        None,
                        "the feed's namespace does not match its head".into(),
                    ));
                    continue;
                }
                if feed_of(&feed_ids, record.ns, &record.head.author)? != Some(feed.value()) {
                    report.problems.push(problem(
                        None,
                        "the feed index does not point at this feed".into(),
                    ));
                    continue;
                }
                let found = match sparse.get(feed.value())? {
                    Some(holes) => match SparseRecord::decode(holes.value()) {
                        Ok(holes) => {
                            let tree = SparseTree {
                                entries: &entries,
                                nodes: &nodes,
                                feed: feed.value(),
                            };
                            check_sparse_feed(&tree, &record, holes, &mut report.entries)?
                        }
                        Err(e) => Some((None, e.to_string())),
                    },
                    None => check_feed(&entries, feed.value(), &record, &mut report.entries)?,
                };
                if let Some((entry, reason)) = found {
                    report.problems.push(problem(entry, reason));
                }
            }
        }
        if report.is_clean()
            && let Some(problem) = self.check_view(&txn)?
        {
            report.problems.push(problem);
        }
        txn.abort()?;
        Ok(report)
    }

    /// Rebuilds the view from the feeds in one transaction. Returns the entries replayed.
    ///
    /// # Errors
    /// [`crate::Error::Damaged`] if a stored entry does not decode (nothing is changed; run
    /// [`Store::verify`] to find it), and database failures.
    pub fn reindex(&self) -> Result<u64> {
        let mut txn = self.db().begin_write()?;
        txn.set_durability(self.durability())?;
        // The view's rows are cleared namespace by namespace as each is rebuilt, so that the
        // change feed logs only the keys whose winner the rebuild changes.
        txn.delete_table(SUPERSEDED)?;
        txn.delete_table(VIEW_TABLES.excluded)?;
        txn.delete_table(VIEW_TABLES.excluded_versions)?;
        txn.delete_table(VIEW_TABLES.future)?;
        txn.open_table(tables::META)?
            .remove(crate::migrations::REINDEX)?;
        let gates = self.gates();
        let known: Vec<[u8; 4]> = gates.iter().map(|gate| gate.ns.to_be_bytes()).collect();
        let mut tables = ViewTables::open(&txn)?;
        let replayed = rebuild(&txn, &mut tables, gates)?;
        // A row whose namespace number was damaged belongs to no namespace rebuilt.
        tables
            .view
            .retain(|key, _| known.iter().any(|ns| key.starts_with(ns)))?;
        drop(tables);
        self.commit(txn)?;
        Ok(replayed)
    }

    fn check_view(&self, txn: &redb::WriteTransaction) -> Result<Option<Problem>> {
        let mut scratch = ViewTables::open_named(txn, &SCRATCH)?;
        rebuild(txn, &mut scratch, self.gates())?;
        let view = txn.open_table(VIEW)?;
        let superseded = txn.open_table(SUPERSEDED)?;
        let excluded = txn.open_table(VIEW_TABLES.excluded)?;
        let (stored, rebuilt) = (exclusions(&excluded)?, exclusions(&scratch.excluded)?);
        if stored != rebuilt {
            let at = (0..stored.len().max(rebuilt.len()))
                .find(|&i| stored.get(i) != rebuilt.get(i))
                .unwrap_or_default();
            let key = stored.get(at).or(rebuilt.get(at)).map_or(0, |(k, _)| *k);
            let (feed, seq) = ((key >> 64) as u64, key as u64);
            return Ok(Some(self.view_problem(
                &[],
                &format!(
                    "entry {seq} of local feed {feed}: whether it counts in the view differs from what the feeds and grants say"
                ),
            )));
        }
        if let Some(key) = first_difference(&view, &scratch.view)? {
            return Ok(Some(
                self.view_problem(&key, "its live versions differ from the feeds'"),
            ));
        }
        if let Some(key) = first_difference(&superseded, &scratch.superseded)? {
            return Ok(Some(self.view_problem(
                &key,
                "its superseded versions differ from the feeds'",
            )));
        }
        let excluded_versions = txn.open_table(VIEW_TABLES.excluded_versions)?;
        if let Some(key) = first_difference(&excluded_versions, &scratch.excluded_versions)? {
            return Ok(Some(self.view_problem(
                &key,
                "its excluded versions differ from the feeds'",
            )));
        }
        Ok(None)
    }

    fn view_problem(&self, row_key: &[u8], what: &str) -> Problem {
        Problem {
            namespace: None,
            author: None,
            entry: None,
            reason: format!(
                "view row {:?}: {what}",
                String::from_utf8_lossy(row_key.get(4..).unwrap_or_default())
            ),
            in_view: true,
        }
    }
}

/// A problem found in a feed: the entry it concerns, if one, and what is wrong.
type Finding = (Option<u64>, String);

/// Checks one feed's entries, tree nodes and head, counting the entries read into `checked`.
/// Returns the first problem.
fn check_feed(
    entries: &impl ReadableTable<u128, &'static [u8]>,
    feed: u64,
    record: &FeedRecord,
    checked: &mut u64,
) -> Result<Option<Finding>> {
    let mut frontier = Frontier::default();
    let mut parents = Vec::new();
    for row in entries.range(feed_key(feed, 0)..=feed_key(feed, u64::MAX))? {
        let (key, row) = row?;
        let seq = key.value() as u64;
        if seq != frontier.length() {
            return Ok(Some((Some(frontier.length()), "entry is missing".into())));
        }
        *checked += 1;
        let Some(parts) = tables::split_row(seq, row.value()) else {
            return Ok(Some((Some(seq), "entry row is truncated".into())));
        };
        if let Some(finding) = check_entry_bytes(seq, &parts) {
            return Ok(Some(finding));
        }
        parents.clear();
        frontier.push(*parts.leaf, |_, hash| parents.extend_from_slice(&hash));
        if parents != parts.parents {
            return Ok(Some((
                Some(seq),
                "tree nodes stored with the entry are wrong".into(),
            )));
        }
    }
    let head = &record.head;
    if frontier.length() != record.held {
        let reason = format!(
            "{} entries stored, but the feed record says {}",
            frontier.length(),
            record.held
        );
        return Ok(Some((None, reason)));
    }
    if frontier.extended_root(head.length, &record.extension) != Ok(head.root) {
        return Ok(Some((
            None,
            "the tree's root does not match the signed head".into(),
        )));
    }
    if head.verify().is_err() {
        return Ok(Some((None, "the head's signature does not verify".into())));
    }
    Ok(None)
}

/// Checks a feed held with holes: each held entry against its leaf hash, and all of them,
/// with the stored proof nodes, against the signed head, including every tree node stored
/// beside them that the check rebuilds.
fn check_sparse_feed<E, N>(
    tree: &SparseTree<'_, E, N>,
    record: &FeedRecord,
    holes: SparseRecord,
    checked: &mut u64,
) -> Result<Option<Finding>>
where
    E: ReadableTable<u128, &'static [u8]>,
    N: ReadableTable<u128, &'static [u8; 32]>,
{
    let mut held = Vec::new();
    let mut leaves = HashMap::new();
    let range = feed_key(tree.feed, 0)..=feed_key(tree.feed, u64::MAX);
    for row in tree.entries.range(range)? {
        let (key, row) = row?;
        let seq = key.value() as u64;
        *checked += 1;
        let Some(parts) = tables::split_row(seq, row.value()) else {
            return Ok(Some((Some(seq), "entry row is truncated".into())));
        };
        if let Some(finding) = check_entry_bytes(seq, &parts) {
            return Ok(Some(finding));
        }
        held.push(seq);
        leaves.insert(seq, *parts.leaf);
    }
    if held.len() as u64 != holes.entries {
        let reason = format!(
            "{} entries stored, but the feed record says {}",
            held.len(),
            holes.entries
        );
        return Ok(Some((None, reason)));
    }
    let head = &record.head;
    let wrong: RefCell<Option<Finding>> = RefCell::new(None);
    let root = tree::fold_root(
        head.length,
        &mut |node| tree::holds_any(node, &held),
        &mut |node| -> Result<Hash> {
            if node.depth == 0
                && let Some(leaf) = leaves.get(&node.offset)
            {
                return Ok(*leaf);
            }
            Ok(tree.hash(node)?.unwrap_or_else(|| {
                let missing = format!("tree node {} is missing", node.flat_index());
                wrong.borrow_mut().get_or_insert((None, missing));
                [0; 32]
            }))
        },
        &mut |node, hash| {
            // Nodes over held entries were rebuilt from them: what is stored must agree.
            if node.depth > 0 && tree::holds_any(node, &held) {
                match tree.stored(node) {
                    Ok(Some(stored)) if stored != *hash => {
                        let reason = format!("stored tree node {} is wrong", node.flat_index());
                        wrong.borrow_mut().get_or_insert((None, reason));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        wrong.borrow_mut().get_or_insert((None, e.to_string()));
                    }
                }
            }
        },
    )?;
    if let Some(finding) = wrong.into_inner() {
        return Ok(Some(finding));
    }
    if root != head.root {
        return Ok(Some((
            None,
            "the held entries and tree nodes do not match the signed head".into(),
        )));
    }
    if head.verify().is_err() {
        return Ok(Some((None, "the head's signature does not verify".into())));
    }
    Ok(None)
}

/// Checks a row's entry part against its leaf hash, and that it decodes. A pruned entry has
/// only its stub, so only the stub's shape is checked.
fn check_entry_bytes(seq: u64, parts: &tables::EntryRow<'_>) -> Option<Finding> {
    if tables::is_pruned(parts.entry) {
        // Only the stub is left to check; the leaf hash is checked by the tree above it.
        let stub = postcard::from_bytes::<crate::rows::Stub<'_>>(&parts.entry[1..]);
        return stub
            .err()
            .map(|e| (Some(seq), format!("pruned stub does not decode ({e})")));
    }
    if tree::leaf_hash(parts.entry) != *parts.leaf {
        return Some((
            Some(seq),
            "entry bytes do not match their stored hash".into(),
        ));
    }
    Entry::decode(parts.entry)
        .err()
        .map(|e| (Some(seq), e.to_string()))
}

/// The first row key at which two tables differ, in key or value.
/// Every row of an excluded-entries table.
fn exclusions(table: &impl ReadableTable<u128, u8>) -> Result<Vec<(u128, u8)>> {
    let mut out = Vec::new();
    for row in table.iter()? {
        let (key, reason) = row?;
        out.push((key.value(), reason.value()));
    }
    Ok(out)
}

fn first_difference<V: redb::Value + 'static>(
    left: &impl ReadableTable<&'static [u8], V>,
    right: &impl ReadableTable<&'static [u8], V>,
) -> Result<Option<Vec<u8>>>
where
    for<'a> V::SelfType<'a>: PartialEq,
{
    let mut left = left.iter()?;
    let mut right = right.iter()?;
    loop {
        match (left.next().transpose()?, right.next().transpose()?) {
            (None, None) => return Ok(None),
            (Some((key, _)), None) | (None, Some((key, _))) => {
                return Ok(Some(key.value().to_vec()));
            }
            (Some((lk, lv)), Some((rk, rv))) => {
                if lk.value() != rk.value() {
                    return Ok(Some(lk.value().min(rk.value()).to_vec()));
                }
                if lv.value() != rv.value() {
                    return Ok(Some(lk.value().to_vec()));
                }
            }
        }
    }
}
