//! The multi-value register of one key.

use serde::{Deserialize, Serialize};

use crate::ids::{Timestamp, VersionId};

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
}

impl<V> Version<V> {
    /// The order that picks the last writer: timestamp first, the author's key to break ties
    /// between authors, and the sequence number between two entries of one author.
    fn lww_order(&self) -> (Timestamp, &crate::AuthorId, u64) {
        (self.timestamp, &self.id.author, self.id.seq)
    }
}

/// A version as its writer wrote it: with the ids of the versions of the same key that the writer
/// saw live at the time, which it thereby replaces.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Write<V> {
    /// The new version.
    pub version: Version<V>,
    /// The versions it replaces.
    pub supersedes: Vec<VersionId>,
}

/// The ids of one key's versions that some known version supersedes.
///
/// It must outlive the versions themselves: a superseded version may arrive after the version
/// that superseded it, and must then stay dead. Storage keeps it in a table; the in-memory
/// model in a `BTreeSet`.
pub trait SupersededSet {
    /// Failure of the backing store.
    type Error;
    /// Whether some known version supersedes `id`.
    fn contains(&self, id: &VersionId) -> Result<bool, Self::Error>;
    /// Records that `id` is superseded.
    fn insert(&mut self, id: VersionId) -> Result<(), Self::Error>;
}

impl SupersededSet for std::collections::BTreeSet<VersionId> {
    type Error = std::convert::Infallible;

    fn contains(&self, id: &VersionId) -> Result<bool, Self::Error> {
        Ok(std::collections::BTreeSet::contains(self, id))
    }

    fn insert(&mut self, id: VersionId) -> Result<(), Self::Error> {
        std::collections::BTreeSet::insert(self, id);
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
        for id in &write.supersedes {
            // A version cannot replace itself; a forged link to itself must not hide it.
            if *id == write.version.id {
                continue;
            }
            superseded.insert(*id)?;
            let before = self.live.len();
            self.live.retain(|live| live.id != *id);
            removed += before - self.live.len();
        }
        let id = write.version.id;
        let added = !self.live.iter().any(|live| live.id == id) && !superseded.contains(&id)?;
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

    /// The ids a new write of this key must supersede: everything live now.
    pub fn heads(&self) -> Vec<VersionId> {
        self.live.iter().map(|live| live.id).collect()
    }

    /// Whether no version is live.
    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }
}
