//! Who may write a namespace: the records (`records`: charters, grants, revocations and
//! why an entry does not count) and the owner's operations on them.
//!
//! Grants and revocations are entries of the owner's own feed, written through the local
//! append path, so they replicate and verify like data.

pub(crate) mod records;

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};
use weft_crdt::{Op, VersionId};

pub use records::{
    BadCharter, Charter, Exclusion, Grant, MEMBER_PREFIX, Membership, Mode, RESERVED_PREFIX,
    member_key, member_of_key,
};

use crate::error::{Error, Result};
use crate::ids::{self, AuthorId, NamespaceId};
use crate::rows::{namespace_feeds, prefix_range};
use crate::store::Store;
use crate::tables::{ENTRIES, EXCLUDED, FEED_IDS, VIEW, feed_key, view_key};
use crate::view::read_membership;

/// Who may write a namespace, and what of it does not count.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustReport {
    /// The charter; `None` for a namespace made before charters (open).
    pub charter: Option<Charter>,
    /// Every author the owner has granted or revoked.
    pub members: Vec<(AuthorId, Membership)>,
    /// Entries held that do not count, by author and reason.
    pub excluded: Vec<Excluded>,
    /// Feeds frozen by a proven fork.
    pub forks: Vec<crate::fork::Fork>,
}

/// Entries of one author held but not counted in the view, for one reason.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
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
    /// Lets `author` write `ns` as `grant` says: an owner entry under the author's member key.
    /// Entries of `author` already held that the grant covers join the view in the same
    /// transaction.
    ///
    /// # Errors
    /// [`Error::NotOwner`] unless `ns` is closed and this replica's author owns it.
    pub fn grant(&self, ns: &NamespaceId, author: &AuthorId, grant: Grant) -> Result<VersionId> {
        self.check_owner(ns)?;
        let record = Membership::Granted(grant).encode();
        let ids = self.append(ns, vec![(member_key(author), Op::Put(record))])?;
        Ok(ids[0])
    }

    /// Makes a fresh author key and grants it: what a write ticket carries, so the joining
    /// device writes as an author the owner already trusts, and the namespace key never
    /// leaves this replica.
    ///
    /// # Errors
    /// As [`Store::grant`]; [`Error::Io`] when no randomness is to be had.
    pub fn invite(&self, ns: &NamespaceId, grant: Grant) -> Result<[u8; 32]> {
        let key = ids::generate_keypair().map_err(|source| Error::Io {
            path: self.dir().to_owned(),
            source,
        })?;
        self.grant(ns, &ids::author_of(&key), grant)?;
        Ok(key.to_bytes())
    }

    /// Who may write `ns` and what does not count: for `weft status` and `weft members`.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn trust(&self, ns: &NamespaceId) -> Result<TrustReport> {
        Ok(TrustReport {
            charter: self.charter(ns)?,
            members: self.members(ns)?,
            excluded: self.excluded(ns)?,
            forks: self.forks(ns)?,
        })
    }

    /// Revokes `author`: its entries from the length of its feed held now on no longer count,
    /// whatever their timestamps; earlier ones keep counting as its grant said. Returns that
    /// length.
    ///
    /// # Errors
    /// As [`Store::grant`]; [`Error::NotOwner`] when `author` is the owner.
    pub fn revoke(&self, ns: &NamespaceId, author: &AuthorId) -> Result<u64> {
        self.check_owner(ns)?;
        if *author == self.author() {
            return Err(Error::NotOwner(
                "the owner cannot revoke itself; it holds the namespace".into(),
            ));
        }
        let until = self
            .feeds(ns)?
            .into_iter()
            .find(|feed| feed.head.author == *author)
            .map_or(0, |feed| feed.held);
        let grant = match self.membership(ns, author)? {
            Some(Membership::Granted(grant)) => Some(grant),
            Some(Membership::Revoked { grant, .. }) => grant,
            None => None,
        };
        let record = Membership::Revoked { grant, until }.encode();
        self.append(ns, vec![(member_key(author), Op::Put(record))])?;
        Ok(until)
    }

    /// Every author the owner of `ns` has granted or revoked, with its standing, by id.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn members(&self, ns: &NamespaceId) -> Result<Vec<(AuthorId, Membership)>> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db().begin_read()?;
        let view = txn.open_table(VIEW)?;
        let entries = txn.open_table(ENTRIES)?;
        let mut out = Vec::new();
        for row in prefix_range(&view, &view_key(ns_number, MEMBER_PREFIX))? {
            let (key, _) = row?;
            let Some(author) = member_of_key(&key.value()[4..]) else {
                continue;
            };
            if let Some(membership) = read_membership(&view, &entries, ns_number, &author)? {
                out.push((author, membership));
            }
        }
        Ok(out)
    }

    /// `author`'s standing in `ns`, as the owner last wrote it.
    ///
    /// # Errors
    /// As [`Store::members`].
    pub fn membership(&self, ns: &NamespaceId, author: &AuthorId) -> Result<Option<Membership>> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db().begin_read()?;
        read_membership(
            &txn.open_table(VIEW)?,
            &txn.open_table(ENTRIES)?,
            ns_number,
            author,
        )
    }

    /// The entries held in `ns` that do not count in the view, by author and reason, the
    /// owner's feed first.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn excluded(&self, ns: &NamespaceId) -> Result<Vec<Excluded>> {
        let ns_number = self.namespace_number(ns)?;
        let owner = self.charter(ns)?.and_then(|c| c.owner());
        let txn = self.db().begin_read()?;
        let excluded = txn.open_table(EXCLUDED)?;
        let mut feeds = namespace_feeds(&txn.open_table(FEED_IDS)?, ns_number)?;
        feeds.sort_by_key(|(author, _)| Some(*author) != owner);
        let mut out: Vec<Excluded> = Vec::new();
        for (author, feed) in feeds {
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

    fn check_owner(&self, ns: &NamespaceId) -> Result<()> {
        match self.charter(ns)?.map(|c| c.mode) {
            Some(Mode::Closed { owner }) if owner == self.author() => Ok(()),
            Some(Mode::Closed { owner }) => Err(Error::NotOwner(format!(
                "only the namespace owner ({owner}) may grant or revoke"
            ))),
            _ => Err(Error::NotOwner(
                "the namespace is open: anyone holding its ticket may write, so there is nothing to grant or revoke".into(),
            )),
        }
    }
}
