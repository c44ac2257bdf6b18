//! Keeping the materialized view: deciding whether an entry counts ([`Gate`]), merging a
//! version into a key's register in redb, and rebuilding every register from the feeds.

use std::collections::HashMap;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, Table, WriteTransaction};
use weft_crdt::{Applied, AuthorId, Op, Register, SupersededSet, Version, VersionId, Write};

use crate::changes::{self, ChangeLog};
use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::ids::NamespaceId;
use crate::members::{
    Charter, Exclusion, MEMBER_PREFIX, Membership, RESERVED_PREFIX, member_key, member_of_key,
};
use crate::store::{FeedRecord, Store, decode_row, with_entry};
use crate::tables::{
    self, ENTRIES, EXCLUDED, FEED_IDS, FEEDS, FUTURE, feed_key, future_key, superseded_prefix,
    view_key,
};

/// One key's superseded set, as rows of [`tables::SUPERSEDED`].
struct StoredSuperseded<'t, 'txn> {
    table: &'t mut Table<'txn, &'static [u8], ()>,
    prefix: Vec<u8>,
}

impl StoredSuperseded<'_, '_> {
    fn row(&self, id: &VersionId) -> Vec<u8> {
        let mut row = Vec::with_capacity(self.prefix.len() + 40);
        row.extend_from_slice(&self.prefix);
        row.extend_from_slice(id.author.as_bytes());
        row.extend_from_slice(&id.seq.to_be_bytes());
        row
    }
}

impl SupersededSet for StoredSuperseded<'_, '_> {
    type Error = redb::StorageError;

    fn contains(&self, id: &VersionId) -> Result<bool, Self::Error> {
        Ok(self.table.get(&self.row(id)[..])?.is_some())
    }

    fn insert(&mut self, id: VersionId) -> Result<(), Self::Error> {
        let row = self.row(&id);
        self.table.insert(&row[..], ())?;
        Ok(())
    }
}

/// The names of the tables a view is kept in: the real ones, or scratch ones `verify` rebuilds
/// into to compare.
pub(crate) struct ViewNames {
    pub view: redb::TableDefinition<'static, &'static [u8], &'static [u8]>,
    pub superseded: redb::TableDefinition<'static, &'static [u8], ()>,
    pub excluded: redb::TableDefinition<'static, u128, u8>,
    pub future: redb::TableDefinition<'static, &'static [u8], ()>,
}

/// The tables of the live view.
pub(crate) const VIEW_TABLES: ViewNames = ViewNames {
    view: tables::VIEW,
    superseded: tables::SUPERSEDED,
    excluded: EXCLUDED,
    future: FUTURE,
};

/// The tables a view update writes.
pub(crate) struct ViewTables<'txn> {
    pub view: Table<'txn, &'static [u8], &'static [u8]>,
    pub superseded: Table<'txn, &'static [u8], ()>,
    pub excluded: Table<'txn, u128, u8>,
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
            future: txn.open_table(names.future)?,
            changes: None,
        })
    }

    /// Merges entry `id` of local feed `feed` into the view if `gate` lets it count, and
    /// otherwise records why not. Returns the reason it was kept out.
    pub fn admit(
        &mut self,
        gate: &mut Gate,
        entries: &impl ReadableTable<u128, &'static [u8]>,
        feed: u64,
        id: VersionId,
        entry: &Entry<'_>,
    ) -> Result<Option<Exclusion>> {
        match gate.judge(self, entries, id, entry)? {
            None => {
                self.apply(gate.ns, entry.key, write_of(entry, id, feed))?;
                if let Some(member) = member_of_key(entry.key) {
                    gate.members.remove(&member);
                    gate.membership_changed = true;
                }
                Ok(None)
            }
            Some(reason) => {
                self.excluded
                    .insert(feed_key(feed, id.seq), reason.to_byte())?;
                if reason == Exclusion::Future {
                    self.future
                        .insert(&future_key(entry.timestamp.0, feed, id.seq)[..], ())?;
                }
                Ok(Some(reason))
            }
        }
    }

    /// The register of `key` in namespace number `ns`, empty if the key has no live version.
    pub fn register(&self, ns: u32, key: &[u8]) -> Result<Register<u64>> {
        decode_register(
            self.view
                .get(&view_key(ns, key)[..])?
                .as_ref()
                .map(|g| g.value()),
        )
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

/// Decodes a [`tables::VIEW`] value; a missing row is an empty register.
pub(crate) fn decode_register(bytes: Option<&[u8]>) -> Result<Register<u64>> {
    match bytes {
        None => Ok(Register::default()),
        Some(bytes) => postcard::from_bytes(bytes).map_err(|e| {
            Error::Damaged(format!(
                "a view row does not decode ({e}); `weft reindex` rebuilds the view"
            ))
        }),
    }
}

/// The view write an entry of local feed `feed` makes: a put points at the feed, whose entry
/// row holds the value.
pub(crate) fn write_of(entry: &Entry<'_>, id: VersionId, feed: u64) -> Write<u64> {
    Write {
        version: Version {
            id,
            timestamp: entry.timestamp,
            op: entry.op.map(|_| feed),
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
    members: HashMap<AuthorId, Option<Membership>>,
    pub membership_changed: bool,
}

impl Gate {
    /// The gate of namespace number `ns` under `charter` (none: open), judging timestamps
    /// of authors other than `local` against this machine's clock plus `max_future`.
    pub fn new(
        ns: u32,
        charter: Option<&Charter>,
        max_future: Duration,
        local: Option<AuthorId>,
    ) -> Gate {
        let now = uhlc::NTP64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        );
        Gate {
            ns,
            owner: charter.and_then(Charter::owner),
            future_after: now
                .as_u64()
                .saturating_add(uhlc::NTP64::from(max_future).as_u64()),
            local,
            members: HashMap::new(),
            membership_changed: false,
        }
    }

    /// Why entry `id` does not count, or `None` when it does.
    pub fn judge(
        &mut self,
        view: &ViewTables<'_>,
        entries: &impl ReadableTable<u128, &'static [u8]>,
        id: VersionId,
        entry: &Entry<'_>,
    ) -> Result<Option<Exclusion>> {
        let is_owner = self.owner == Some(id.author);
        if entry.key.starts_with(RESERVED_PREFIX)
            && !(is_owner && entry.key.starts_with(MEMBER_PREFIX))
        {
            return Ok(Some(Exclusion::Reserved));
        }
        if self.owner.is_some() && !is_owner {
            let verdict = match self.membership(view, entries, &id.author)? {
                None => Err(Exclusion::NoGrant),
                Some(membership) => membership.admits(id.seq, entry),
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
        view: &ViewTables<'_>,
        entries: &impl ReadableTable<u128, &'static [u8]>,
        author: &AuthorId,
    ) -> Result<Option<&Membership>> {
        if !self.members.contains_key(author) {
            let found = read_membership(&view.view, entries, self.ns, author)?;
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
    let register = decode_register(
        view.get(&view_key(ns, &member_key(author))[..])?
            .as_ref()
            .map(|g| g.value()),
    )?;
    let Some(winner) = register.winner() else {
        return Ok(None);
    };
    let Op::Put(feed) = winner.op else {
        return Ok(None);
    };
    with_entry(entries, feed, winner.id.seq, |entry| {
        match entry.op {
        Op::Put(bytes) => Membership::decode(bytes)
            .inspect_err(|e| tracing::warn!(%author, error = %e, "a membership record does not decode; it grants nothing"))
            .ok(),
        Op::Delete => None,
    }
    })
}

/// The local feeds of namespace number `ns`: `(author, feed id)`, the owner's first, since the
/// grants in it decide whether the others' entries count.
fn namespace_feeds(
    feed_ids: &impl ReadableTable<&'static [u8], u64>,
    ns: u32,
    owner: Option<AuthorId>,
) -> Result<Vec<(AuthorId, u64)>> {
    let low = tables::feed_ids_key(ns, &AuthorId([0; 32]));
    let high = tables::feed_ids_key(ns, &AuthorId([0xff; 32]));
    let mut feeds = Vec::new();
    for row in feed_ids.range(&low[..]..=&high[..])? {
        let (key, feed) = row?;
        let author = AuthorId(
            key.value()[4..]
                .try_into()
                .map_err(|_| Error::Damaged("a feed index key is not 36 bytes".into()))?,
        );
        feeds.push((author, feed.value()));
    }
    feeds.sort_by_key(|(author, _)| Some(*author) != owner);
    Ok(feeds)
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
        Some(_) => changes::winners(&tables.view, ns)?,
        None => Vec::new(),
    };
    let feeds = namespace_feeds(&txn.open_table(FEED_IDS)?, ns, gate.owner)?;
    let prefix = ns.to_be_bytes();
    match crate::store::prefix_end(&prefix) {
        Some(end) => {
            tables.view.retain_in(&prefix[..]..&end[..], |_, _| false)?;
            tables
                .superseded
                .retain_in(&prefix[..]..&end[..], |_, _| false)?;
        }
        None => {
            tables.view.retain_in(&prefix[..].., |_, _| false)?;
            tables.superseded.retain_in(&prefix[..].., |_, _| false)?;
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
            tables.admit(&mut gate, &entries, feed, VersionId { author, seq }, &entry)?;
            replayed += 1;
        }
    }
    if let Some(log) = &mut log {
        let winners_after = changes::winners(&tables.view, ns)?;
        changes::record_difference(log, ns, &winners_before, &winners_after)?;
    }
    tables.changes = log;
    Ok(replayed)
}

/// Commits `txn`, first rebuilding namespace `ns`'s view when `gate` saw the owner write a
/// membership record in it, so entries that a grant now covers (or a revocation no longer
/// does) are judged again in the same transaction.
pub(crate) fn commit(
    store: &Store,
    txn: WriteTransaction,
    gate: &Gate,
    ns: &NamespaceId,
) -> Result<()> {
    if gate.membership_changed {
        rebuild_namespace(&txn, &mut ViewTables::open(&txn)?, store.gate(ns)?)?;
    }
    store.commit(txn)
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

/// Entries of one author held but not counted in the view, for one reason.
#[derive(Clone, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize)]
pub struct Excluded {
    /// Their author.
    pub author: AuthorId,
    /// Why they do not count.
    pub reason: Exclusion,
    /// How many there are.
    pub entries: u64,
    /// The first one's index in the feed.
    pub first: u64,
}

impl Store {
    /// The entries held in `ns` that do not count in the view, by author and reason.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn excluded(&self, ns: &NamespaceId) -> Result<Vec<Excluded>> {
        let ns_number = self.namespace_number(ns)?;
        let owner = self.charter(ns)?.and_then(|c| c.owner());
        let txn = self.db().begin_read()?;
        let excluded = txn.open_table(EXCLUDED)?;
        let mut out: Vec<Excluded> = Vec::new();
        for (author, feed) in namespace_feeds(&txn.open_table(FEED_IDS)?, ns_number, owner)? {
            for row in excluded.range(feed_key(feed, 0)..=feed_key(feed, u64::MAX))? {
                let (key, reason) = row?;
                let seq = key.value() as u64;
                let reason = Exclusion::from_byte(reason.value()).ok_or_else(|| {
                    Error::Damaged(format!(
                        "entry {seq} of local feed {feed} is excluded for an unknown reason"
                    ))
                })?;
                match out
                    .iter_mut()
                    .find(|e| e.author == author && e.reason == reason)
                {
                    Some(summary) => summary.entries += 1,
                    None => out.push(Excluded {
                        author,
                        reason,
                        entries: 1,
                        first: seq,
                    }),
                }
            }
        }
        Ok(out)
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
        let bound = Gate::new(0, None, self.options().max_future, None).future_after;
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
                tables.excluded.remove(feed_key(feed, seq))?;
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
                if tables.admit(gate, &entries, feed, id, &entry)?.is_none() {
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
