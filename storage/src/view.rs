//! Keeping the materialized view: deciding whether an entry counts ([`Gate`]), merging a
//! version into a key's register in redb, and rebuilding every register from the feeds.

use std::collections::HashMap;
use std::time::Duration;

use redb::{ReadableTable, ReadableTableMetadata, Table, WriteTransaction};
use weft_crdt::{
    Applied, AuthorId, Link, Op, Register, SupersededSet, Timestamp, Version, VersionHash,
    VersionId, Write,
};

use crate::changelog::{self, ChangeLog};
use crate::entry::{Entry, MAX_SUPERSEDES};
use crate::error::Result;
use crate::members::records::{
    Charter, Exclusion, MEMBER_PREFIX, Membership, RESERVED_PREFIX, member_key, member_of_key,
};
use crate::rows::{decode_row, namespace_feeds, prefix_end, read_register, row_hash, with_entry};
use crate::tables::{
    self, ENTRIES, EXCLUDED, FEED_IDS, FUTURE, feed_key, future_key, superseded_prefix, view_key,
};

/// One key's superseded set, as rows of [`tables::SUPERSEDED`].
struct StoredSuperseded<'t, 'txn> {
    table: &'t mut Table<'txn, &'static [u8], u64>,
    prefix: Vec<u8>,
}

/// The [`tables::SUPERSEDED`] link bytes of a link without a hash.
const UNHASHED_LINK: [u8; 33] = [0; 33];

/// The [`tables::SUPERSEDED`] row of the key with `prefix` for link bytes `link` to `id`:
/// [`hashed_link`], or [`UNHASHED_LINK`].
fn link_row(prefix: &[u8], id: &VersionId, link: &[u8; 33]) -> Vec<u8> {
    let mut row = Vec::with_capacity(prefix.len() + 73);
    row.extend_from_slice(prefix);
    row.extend_from_slice(id.author.as_bytes());
    row.extend_from_slice(&id.seq.to_be_bytes());
    row.extend_from_slice(link);
    row
}

/// Whether a link among the [`tables::SUPERSEDED`] rows of the key with `prefix` replaces the
/// version `id` with `hash`, stamped `timestamp`.
pub(crate) fn replaced_in(
    table: &impl ReadableTable<&'static [u8], u64>,
    prefix: &[u8],
    id: &VersionId,
    hash: &VersionHash,
    timestamp: Timestamp,
) -> Result<bool, redb::StorageError> {
    // Two point reads rather than a range over the id's rows: this runs for every version
    // merged, and a range costs more to set up than both reads.
    let mut row = link_row(prefix, id, &hashed_link(hash));
    if table.get(&row[..])?.is_some() {
        return Ok(true);
    }
    let link_at = row.len() - UNHASHED_LINK.len();
    row[link_at..].copy_from_slice(&UNHASHED_LINK);
    Ok(table
        .get(&row[..])?
        .is_some_and(|by| timestamp.0 < by.value()))
}

fn hashed_link(hash: &VersionHash) -> [u8; 33] {
    let mut link = [1; 33];
    link[1..].copy_from_slice(&hash.0);
    link
}

impl SupersededSet for StoredSuperseded<'_, '_> {
    type Error = redb::StorageError;

    fn replaces(
        &self,
        id: &VersionId,
        hash: &VersionHash,
        timestamp: Timestamp,
    ) -> Result<bool, Self::Error> {
        replaced_in(&*self.table, &self.prefix, id, hash, timestamp)
    }

    fn insert(&mut self, link: Link, by: Timestamp) -> Result<(), Self::Error> {
        match link.hash {
            Some(hash) => {
                let row = link_row(&self.prefix, &link.id, &hashed_link(&hash));
                self.table.insert(&row[..], 0)?;
            }
            None => {
                let row = link_row(&self.prefix, &link.id, &UNHASHED_LINK);
                let known = self.table.get(&row[..])?.map_or(0, |by| by.value());
                self.table.insert(&row[..], known.max(by.0))?;
            }
        }
        Ok(())
    }
}

/// The names of the tables a view is kept in: the real ones, or scratch ones `verify` rebuilds
/// into to compare.
pub(crate) struct ViewNames {
    pub view: redb::TableDefinition<'static, &'static [u8], &'static [u8]>,
    pub superseded: redb::TableDefinition<'static, &'static [u8], u64>,
    pub excluded: redb::TableDefinition<'static, u128, u8>,
    pub excluded_versions: redb::TableDefinition<'static, &'static [u8], &'static [u8; 32]>,
    pub future: redb::TableDefinition<'static, &'static [u8], ()>,
}

/// The tables of the live view.
pub(crate) const VIEW_TABLES: ViewNames = ViewNames {
    view: tables::VIEW,
    superseded: tables::SUPERSEDED,
    excluded: EXCLUDED,
    excluded_versions: tables::EXCLUDED_VERSIONS,
    future: FUTURE,
};

/// The tables a view update writes.
pub(crate) struct ViewTables<'txn> {
    pub view: Table<'txn, &'static [u8], &'static [u8]>,
    pub superseded: Table<'txn, &'static [u8], u64>,
    pub excluded: Table<'txn, u128, u8>,
    pub excluded_versions: Table<'txn, &'static [u8], &'static [u8; 32]>,
    pub future: Table<'txn, &'static [u8], ()>,
    /// The live view's change feed; `None` for the scratch view `verify` builds.
    pub changes: Option<ChangeLog<'txn>>,
}

impl<'txn> ViewTables<'txn> {
    /// The live view's tables, its change feed included.
    pub fn open(txn: &'txn WriteTransaction) -> Result<Self> {
        let mut tables = Self::open_named(txn, &VIEW_TABLES)?;
        tables.changes = Some(ChangeLog::open(txn)?);
        Ok(tables)
    }

    /// Tables named `names`, without a change feed.
    pub fn open_named(txn: &'txn WriteTransaction, names: &ViewNames) -> Result<Self> {
        Ok(ViewTables {
            view: txn.open_table(names.view)?,
            superseded: txn.open_table(names.superseded)?,
            excluded: txn.open_table(names.excluded)?,
            excluded_versions: txn.open_table(names.excluded_versions)?,
            future: txn.open_table(names.future)?,
            changes: None,
        })
    }

    /// Merges entry `id` of local feed `feed`, whose leaf hash is `hash`, into the view if
    /// `gate` lets it count, and otherwise records why not. Returns the reason it was kept
    /// out.
    pub fn admit(
        &mut self,
        gate: &mut Gate,
        entries: &impl ReadableTable<u128, &'static [u8]>,
        feed: u64,
        (id, hash): (VersionId, VersionHash),
        entry: &Entry<'_>,
    ) -> Result<Option<Exclusion>> {
        match gate.judge(&self.view, entries, id, entry)? {
            None => {
                self.apply(gate.ns, entry.key, write_of(entry, id, hash, feed))?;
                if let Some(member) = member_of_key(entry.key) {
                    gate.members.remove(&member);
                    gate.membership_changed = true;
                }
                Ok(None)
            }
            Some(reason) => {
                self.excluded
                    .insert(feed_key(feed, id.seq), reason.to_byte())?;
                self.excluded_versions
                    .insert(&excluded_version_key(gate.ns, entry.key, id)[..], &hash.0)?;
                if reason == Exclusion::Future {
                    self.future
                        .insert(&future_key(entry.timestamp.0, feed, id.seq)[..], ())?;
                }
                Ok(Some(reason))
            }
        }
    }

    /// Entry `id` of `key`, excluded before, counts now (or is judged again): it is no longer
    /// an excluded version of the key.
    pub fn unexclude(&mut self, ns: u32, key: &[u8], feed: u64, id: VersionId) -> Result<()> {
        self.excluded.remove(feed_key(feed, id.seq))?;
        self.excluded_versions
            .remove(&excluded_version_key(ns, key, id)[..])?;
        Ok(())
    }

    /// Whether any excluded version is held at all: most stores hold none, and then a write
    /// need not look for them key by key.
    pub fn holds_excluded(&self) -> Result<bool> {
        Ok(!self.excluded_versions.is_empty()?)
    }

    /// What a local write of `key` in namespace number `ns` links to: the live versions,
    /// the last writer first, and, when `excluded` (see [`ViewTables::holds_excluded`]), the
    /// excluded versions held (at most [`MAX_EXCLUDED_SUPERSEDED`] of them, the latest of
    /// each author first), which would otherwise win over it once they count; at most
    /// [`MAX_SUPERSEDES`] in all.
    pub fn seen_versions(&self, ns: u32, key: &[u8], excluded: bool) -> Result<Vec<Link>> {
        let mut seen = self.register(ns, key)?.heads();
        seen.truncate(MAX_SUPERSEDES);
        if !excluded {
            return Ok(seen);
        }
        let prefix = superseded_prefix(ns, key);
        let mut excluded = Vec::new();
        let rows = match prefix_end(&prefix) {
            Some(end) => self.excluded_versions.range(&prefix[..]..&end[..])?,
            None => self.excluded_versions.range(&prefix[..]..)?,
        };
        for row in rows {
            let (at, hash) = row?;
            if let Some(id) = version_of_row(&at.value()[prefix.len()..]) {
                excluded.push(Link {
                    id,
                    hash: Some(VersionHash(*hash.value())),
                });
            }
        }
        // Newest of each author first, then round by round, so a flood from one author
        // cannot push every other author's versions past the cap.
        excluded.sort_by(|a, b| a.id.author.cmp(&b.id.author).then(b.id.seq.cmp(&a.id.seq)));
        let mut rank = Vec::with_capacity(excluded.len());
        let mut last = None;
        let mut nth = 0usize;
        for link in excluded {
            nth = if last == Some(link.id.author) {
                nth + 1
            } else {
                0
            };
            last = Some(link.id.author);
            rank.push((nth, link));
        }
        rank.sort();
        let room = MAX_SUPERSEDES - seen.len();
        for (_, link) in rank.into_iter().take(MAX_EXCLUDED_SUPERSEDED.min(room)) {
            if !seen.iter().any(|known| known.id == link.id) {
                seen.push(link);
            }
        }
        Ok(seen)
    }

    /// The register of `key` in namespace number `ns`, empty if the key has no live version.
    pub fn register(&self, ns: u32, key: &[u8]) -> Result<Register<u64>> {
        read_register(&self.view, ns, key)
    }

    /// Merges one version of `key` into the view, and logs the change when the key's winner
    /// is a new one.
    pub fn apply(&mut self, ns: u32, key: &[u8], write: Write<u64>) -> Result<Applied> {
        let mut register = self.register(ns, key)?;
        let winner_before = register.winner().map(|v| v.id);
        let mut superseded = StoredSuperseded {
            table: &mut self.superseded,
            prefix: superseded_prefix(ns, key),
        };
        let applied = register.apply(write, &mut superseded)?;
        if applied.changed() {
            let row = postcard::to_allocvec(&register).expect("registers always encode");
            self.view.insert(&view_key(ns, key)[..], &row[..])?;
            let winner = register.winner().map(|v| v.id);
            if let Some(log) = &mut self.changes
                && winner != winner_before
            {
                match winner {
                    Some(id) => log.winner(ns, id)?,
                    None => log.gone(ns, key)?,
                }
            }
        }
        Ok(applied)
    }
}

/// The most excluded versions of one key a local write supersedes.
pub const MAX_EXCLUDED_SUPERSEDED: usize = 64;

/// The [`tables::EXCLUDED_VERSIONS`] key of version `id` of `key` in namespace number `ns`.
pub(crate) fn excluded_version_key(ns: u32, key: &[u8], id: VersionId) -> Vec<u8> {
    let mut row = superseded_prefix(ns, key);
    row.extend_from_slice(id.author.as_bytes());
    row.extend_from_slice(&id.seq.to_be_bytes());
    row
}

/// The version id at the end of an [`tables::EXCLUDED_VERSIONS`] key, after its key prefix.
fn version_of_row(rest: &[u8]) -> Option<VersionId> {
    let author: [u8; 32] = rest.get(..32)?.try_into().ok()?;
    let seq: [u8; 8] = rest.get(32..40)?.try_into().ok()?;
    Some(VersionId {
        author: AuthorId(author),
        seq: u64::from_be_bytes(seq),
    })
}

/// The view write an entry of local feed `feed` makes: a put points at the feed, whose entry
/// row holds the value.
pub(crate) fn write_of(
    entry: &Entry<'_>,
    id: VersionId,
    hash: VersionHash,
    feed: u64,
) -> Write<u64> {
    Write {
        version: Version {
            id,
            timestamp: entry.timestamp,
            op: entry.op.map(|_| feed),
            hash,
        },
        supersedes: entry.supersedes.clone(),
    }
}

/// Decides whether entries of one namespace count in the view: the charter's owner and the
/// grants it wrote, and how far ahead of the local clock a timestamp may be. Memberships read
/// are cached for the transaction; an owner write to a membership key drops its cache line and
/// sets `membership_changed`, after which the caller rebuilds the namespace's view.
pub(crate) struct Gate {
    pub ns: u32,
    /// `None` for an open namespace.
    owner: Option<AuthorId>,
    /// Timestamps above this (NTP64) are [`Exclusion::Future`].
    pub future_after: u64,
    /// This replica's author, whose entries are stamped by this machine's own clock and so are
    /// never "from the future".
    local: Option<AuthorId>,
    /// How far ahead of the clock a timestamp may be ([`crate::Options::max_future`]), NTP64.
    max_future: u64,
    /// Each author's membership read so far, with the timestamp of the owner's record of it.
    members: HashMap<AuthorId, Option<(Membership, Timestamp)>>,
    pub membership_changed: bool,
    /// Where each feed frozen by a fork stops counting.
    frozen: HashMap<AuthorId, u64>,
}

impl Gate {
    /// The gate of namespace number `ns` under `charter` (none: open), judging timestamps
    /// of authors other than `local` against `now` (this replica's clock) plus `max_future`,
    /// with the feeds in `frozen` counted only up to where their forks part.
    pub fn new(
        ns: u32,
        charter: Option<&Charter>,
        max_future: Duration,
        local: Option<AuthorId>,
        now: Timestamp,
        frozen: HashMap<AuthorId, u64>,
    ) -> Gate {
        let max_future = uhlc::NTP64::from(max_future).as_u64();
        Gate {
            ns,
            owner: charter.and_then(Charter::owner),
            future_after: now.0.saturating_add(max_future),
            local,
            max_future,
            members: HashMap::new(),
            membership_changed: false,
            frozen,
        }
    }

    /// Counts `author`'s feed only up to `at` from now on, for a fork just proven.
    pub fn freeze(&mut self, author: AuthorId, at: u64) {
        self.frozen.insert(author, at);
    }

    /// Why entry `id` does not count, or `None` when it does.
    pub fn judge(
        &mut self,
        view: &impl ReadableTable<&'static [u8], &'static [u8]>,
        entries: &impl ReadableTable<u128, &'static [u8]>,
        id: VersionId,
        entry: &Entry<'_>,
    ) -> Result<Option<Exclusion>> {
        if self.frozen.get(&id.author).is_some_and(|&at| id.seq >= at) {
            return Ok(Some(Exclusion::Forked));
        }
        let is_owner = self.owner == Some(id.author);
        if entry.key.starts_with(RESERVED_PREFIX)
            && !(is_owner && entry.key.starts_with(MEMBER_PREFIX))
        {
            return Ok(Some(Exclusion::Reserved));
        }
        if self.owner.is_some() && !is_owner {
            let max_future = self.max_future;
            let verdict = match self.membership(view, entries, &id.author)? {
                None => Err(Exclusion::NoGrant),
                // An entry stamped so far past its author's revocation that it could not
                // have counted before the revocation was made (it was still in the future
                // then) never counts: otherwise it would come due later and win.
                Some((Membership::Revoked { .. }, revoked_at))
                    if entry.timestamp.0 > revoked_at.0.saturating_add(max_future) =>
                {
                    Err(Exclusion::Revoked)
                }
                Some((membership, _)) => membership.admits(id.seq, entry),
            };
            if let Err(reason) = verdict {
                return Ok(Some(reason));
            }
        }
        if entry.timestamp.0 > self.future_after && self.local != Some(id.author) {
            return Ok(Some(Exclusion::Future));
        }
        Ok(None)
    }

    fn membership(
        &mut self,
        view: &impl ReadableTable<&'static [u8], &'static [u8]>,
        entries: &impl ReadableTable<u128, &'static [u8]>,
        author: &AuthorId,
    ) -> Result<Option<&(Membership, Timestamp)>> {
        if !self.members.contains_key(author) {
            let found = read_membership_at(view, entries, self.ns, author)?;
            self.members.insert(*author, found);
        }
        Ok(self.members.get(author).and_then(Option::as_ref))
    }
}

/// `author`'s membership as the view holds it: the owner's live record under its member key.
/// A record that does not decode grants nothing.
pub(crate) fn read_membership(
    view: &impl ReadableTable<&'static [u8], &'static [u8]>,
    entries: &impl ReadableTable<u128, &'static [u8]>,
    ns: u32,
    author: &AuthorId,
) -> Result<Option<Membership>> {
    Ok(read_membership_at(view, entries, ns, author)?.map(|(membership, _)| membership))
}

/// As [`read_membership`], with the timestamp of the owner's record.
fn read_membership_at(
    view: &impl ReadableTable<&'static [u8], &'static [u8]>,
    entries: &impl ReadableTable<u128, &'static [u8]>,
    ns: u32,
    author: &AuthorId,
) -> Result<Option<(Membership, Timestamp)>> {
    let register = read_register(view, ns, &member_key(author))?;
    let Some(winner) = register.winner() else {
        return Ok(None);
    };
    let Op::Put(feed) = winner.op else {
        return Ok(None);
    };
    let at = winner.timestamp;
    with_entry(entries, feed, winner.id.seq, |entry| {
        match entry.op {
        Op::Put(bytes) => Membership::decode(bytes)
            .inspect_err(|e| tracing::warn!(%author, error = %e, "a membership record does not decode; it grants nothing"))
            .ok()
            .map(|membership| (membership, at)),
        Op::Delete => None,
    }
    })
}

/// Empties namespace number `ns`'s rows of `tables` and replays every entry of its feeds
/// into them, the owner's first. Returns the number of entries replayed.
///
/// # Errors
/// [`Error::Damaged`] on the first stored entry that does not decode: the view of a damaged
/// feed cannot be rebuilt, and `verify` says which entry it is.
pub(crate) fn rebuild_namespace(
    txn: &WriteTransaction,
    tables: &mut ViewTables<'_>,
    mut gate: Gate,
) -> Result<u64> {
    let ns = gate.ns;
    // The replay below would log every key again; only what it changes is logged, after.
    let mut log = tables.changes.take();
    let winners_before = match log {
        Some(_) => changelog::winners(&tables.view, ns)?,
        None => Vec::new(),
    };
    let mut feeds = namespace_feeds(&txn.open_table(FEED_IDS)?, ns)?;
    feeds.sort_by_key(|(author, _)| Some(*author) != gate.owner);
    let prefix = ns.to_be_bytes();
    match prefix_end(&prefix) {
        Some(end) => {
            tables.view.retain_in(&prefix[..]..&end[..], |_, _| false)?;
            tables
                .superseded
                .retain_in(&prefix[..]..&end[..], |_, _| false)?;
            tables
                .excluded_versions
                .retain_in(&prefix[..]..&end[..], |_, _| false)?;
        }
        None => {
            tables.view.retain_in(&prefix[..].., |_, _| false)?;
            tables.superseded.retain_in(&prefix[..].., |_, _| false)?;
            tables
                .excluded_versions
                .retain_in(&prefix[..].., |_, _| false)?;
        }
    }
    for (_, feed) in &feeds {
        tables
            .excluded
            .retain_in(feed_key(*feed, 0)..=feed_key(*feed, u64::MAX), |_, _| false)?;
    }
    tables.future.retain(|key, _| {
        let feed = key
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes);
        !feeds.iter().any(|(_, f)| Some(*f) == feed)
    })?;

    let entries = txn.open_table(ENTRIES)?;
    let mut replayed = 0;
    for (author, feed) in feeds {
        for row in entries.range(feed_key(feed, 0)..=feed_key(feed, u64::MAX))? {
            let (key, row) = row?;
            let seq = key.value() as u64;
            let entry = decode_row(feed, seq, row.value())?;
            let version = (VersionId { author, seq }, row_hash(row.value()));
            tables.admit(&mut gate, &entries, feed, version, &entry)?;
            replayed += 1;
        }
    }
    if let Some(log) = &mut log {
        let winners_after = changelog::winners(&tables.view, ns)?;
        changelog::record_difference(log, ns, &winners_before, &winners_after)?;
    }
    tables.changes = log;
    Ok(replayed)
}

/// Rebuilds every namespace's view into `tables`. Returns the number of entries replayed.
///
/// # Errors
/// As [`rebuild_namespace`].
pub(crate) fn rebuild(
    txn: &WriteTransaction,
    tables: &mut ViewTables<'_>,
    gates: impl IntoIterator<Item = Gate>,
) -> Result<u64> {
    let mut replayed = 0;
    for gate in gates {
        replayed += rebuild_namespace(txn, tables, gate)?;
    }
    Ok(replayed)
}
