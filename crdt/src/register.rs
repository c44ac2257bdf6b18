//! The multi-value register of one key.

use serde::{Deserialize, Serialize};

use std::collections::{BTreeMap, BTreeSet};

use crate::ids::{Timestamp, VersionHash, VersionId};

/// What a version does to its key. `V` is the value, or where to find it (the storage view keeps
/// a pointer into the log).
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum Op<V> {
    /// Set the key to a value.
    Put(V),
    /// Remove the key; kept as a tombstone so it can win against older concurrent puts.
    Delete,
}

impl<V> Op<V> {
    /// The same op with the value mapped by `f`: storage's view keeps a pointer to where the
    /// value lives instead of the value.
    pub fn map<U>(&self, f: impl FnOnce(&V) -> U) -> Op<U> {
        match self {
            Op::Put(value) => Op::Put(f(value)),
            Op::Delete => Op::Delete,
        }
    }
}

/// One version of a key, as the register keeps it while it is live.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Version<V> {
    /// Where the version was written.
    pub id: VersionId,
    /// When, by its author's hybrid logical clock.
    pub timestamp: Timestamp,
    /// What it does.
    pub op: Op<V>,
    /// What its entry hashes to, which a link to it must name.
    pub hash: VersionHash,
}

impl<V> Version<V> {
    /// The order that picks the last writer: timestamp first, the author's key to break ties
    /// between authors, and the sequence number between two entries of one author.
    fn lww_order(&self) -> (Timestamp, &crate::AuthorId, u64) {
        (self.timestamp, &self.id.author, self.id.seq)
    }

    /// A link that supersedes this version.
    pub fn link(&self) -> Link {
        Link {
            id: self.id,
            hash: Some(self.hash),
        }
    }
}

/// A version's link to a version of the same key that its writer saw, and so replaces.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
pub struct Link {
    /// The version replaced.
    pub id: VersionId,
    /// Its hash. `None` only in links of entries written before links carried hashes: such
    /// a link replaces only a version stamped earlier than the version that makes it, so it
    /// can do no more than that version's timestamp does anyway.
    pub hash: Option<VersionHash>,
}

impl Link {
    /// Whether this link, made by a version stamped `by`, replaces `version`.
    pub fn replaces<V>(&self, version: &Version<V>, by: Timestamp) -> bool {
        self.id == version.id
            && match self.hash {
                Some(hash) => hash == version.hash,
                None => version.timestamp < by,
            }
    }
}

/// A version as its writer wrote it: with links to the versions of the same key that the
/// writer saw at the time, which it thereby replaces.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Write<V> {
    /// The new version.
    pub version: Version<V>,
    /// The versions it replaces.
    pub supersedes: Vec<Link>,
}

/// The links some known version of one key made.
///
/// It must outlive the versions themselves: a superseded version may arrive after the version
/// that superseded it, and must then stay dead. Storage keeps it in a table; the in-memory
/// model in a [`Superseded`].
pub trait SupersededSet {
    /// Failure of the backing store.
    type Error;
    /// Whether some known link replaces the version `id` with `hash`, stamped `timestamp`.
    fn replaces(
        &self,
        id: &VersionId,
        hash: &VersionHash,
        timestamp: Timestamp,
    ) -> Result<bool, Self::Error>;
    /// Records `link`, made by a version stamped `by`.
    fn insert(&mut self, link: Link, by: Timestamp) -> Result<(), Self::Error>;
}

/// The links known of one key, in memory.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct Superseded {
    links: BTreeMap<VersionId, Linked>,
}

/// The links to one version id: the hashes named, and the latest timestamp of a version that
/// made a link without one.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
struct Linked {
    hashes: BTreeSet<VersionHash>,
    unhashed_by: Option<Timestamp>,
}

impl Superseded {
    /// Every version id some link names.
    pub fn ids(&self) -> impl Iterator<Item = &VersionId> {
        self.links.keys()
    }
}

impl SupersededSet for Superseded {
    type Error = std::convert::Infallible;

    fn replaces(
        &self,
        id: &VersionId,
        hash: &VersionHash,
        timestamp: Timestamp,
    ) -> Result<bool, Self::Error> {
        Ok(self.links.get(id).is_some_and(|linked| {
            linked.hashes.contains(hash) || linked.unhashed_by.is_some_and(|by| timestamp < by)
        }))
    }

    fn insert(&mut self, link: Link, by: Timestamp) -> Result<(), Self::Error> {
        let linked = self.links.entry(link.id).or_default();
        match link.hash {
            Some(hash) => {
                linked.hashes.insert(hash);
            }
            None => linked.unhashed_by = linked.unhashed_by.max(Some(by)),
        }
        Ok(())
    }
}

/// What applying a write did to the register.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Applied {
    /// The write's version became live.
    pub added: bool,
    /// How many live versions it superseded.
    pub removed: usize,
}

impl Applied {
    /// Whether the set of live versions changed.
    pub fn changed(&self) -> bool {
        self.added || self.removed > 0
    }
}

/// The live versions of one key, the last writer first.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Register<V> {
    live: Vec<Version<V>>,
}

impl<V> Default for Register<V> {
    fn default() -> Self {
        Register { live: Vec::new() }
    }
}

impl<V> Register<V> {
    /// Merges a write into the register. `superseded` is this key's superseded set and is
    /// updated too.
    ///
    /// Applying the same write twice, or writes in any order, gives the same register.
    ///
    /// # Errors
    /// Only the superseded set's own failures.
    pub fn apply<S: SupersededSet>(
        &mut self,
        write: Write<V>,
        superseded: &mut S,
    ) -> Result<Applied, S::Error> {
        let mut removed = 0;
        let by = write.version.timestamp;
        for link in &write.supersedes {
            // A version cannot replace itself; a forged link to itself must not hide it.
            if link.id == write.version.id {
                continue;
            }
            superseded.insert(*link, by)?;
            let before = self.live.len();
            self.live.retain(|live| !link.replaces(live, by));
            removed += before - self.live.len();
        }
        let version = &write.version;
        let added = !self.live.iter().any(|live| live.id == version.id)
            && !superseded.replaces(&version.id, &version.hash, version.timestamp)?;
        if added {
            let at = self
                .live
                .partition_point(|live| live.lww_order() > write.version.lww_order());
            self.live.insert(at, write.version);
        }
        Ok(Applied { added, removed })
    }

    /// Every live version, the last writer first.
    pub fn live(&self) -> &[Version<V>] {
        &self.live
    }

    /// The last writer's version, which may be a tombstone.
    pub fn winner(&self) -> Option<&Version<V>> {
        self.live.first()
    }

    /// The last-writer-wins read: the winner's value, or `None` when the key is absent or the
    /// winner is a tombstone.
    pub fn value(&self) -> Option<&V> {
        match &self.winner()?.op {
            Op::Put(value) => Some(value),
            Op::Delete => None,
        }
    }

    /// The links a new write of this key makes: to everything live now.
    pub fn heads(&self) -> Vec<Link> {
        self.live.iter().map(Version::link).collect()
    }

    /// Whether no version is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}
