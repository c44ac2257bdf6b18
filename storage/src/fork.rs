//! Forks: two validly signed heads of one feed that cannot both be true, and the proof of it
//! that any replica can check on its own.
//!
//! An append-only feed has one tree per length. Two heads of equal length with different
//! roots, or a longer head whose tree at the shorter length has another root than the shorter
//! head, mean the author signed two histories: by mistake (one key on two devices) or to show
//! different peers different data. Either way no replica can tell which history is the real
//! one, so each that learns of the fork freezes the feed at what it holds and keeps the proof.

use redb::{ReadableDatabase, ReadableTable};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{AuthorId, NamespaceId};
use crate::replicate::{IngestError, Invalid, store_err};
use crate::rows::{extension_from, read_node};
use crate::store::Store;
use crate::tables::{self, ENTRIES, FORKS, SPARSE_FEEDS};
use crate::tree::{self, Frontier, Hash, ProofError};

/// A fork a replica knows of: the proof, and the length at which it froze the feed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Fork {
    /// The feed's entries held when the fork was found; the feed takes nothing past them.
    pub frozen_at: u64,
    /// The proof.
    pub proof: ForkProof,
}

/// Two heads of one feed that do not fit one history, with what shows it.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ForkProof {
    /// The head of lesser or equal length.
    pub shorter: SignedHead,
    /// The other head.
    pub longer: SignedHead,
    /// When the lengths differ: the peak hashes of `longer`'s tree at `shorter.length`,
    /// largest first. They fold to another root than `shorter.root`.
    pub peaks: Vec<Hash>,
    /// When the lengths differ: the hashes of [`tree::extension_nodes`]`(shorter.length,
    /// longer.length)` in `longer`'s tree, which with `peaks` rebuild `longer.root`.
    pub extension: Vec<Hash>,
}

/// Why a fork proof does not prove a fork.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum BadForkProof {
    /// The heads are of different feeds.
    #[error("the heads are of different feeds")]
    DifferentFeeds,
    /// A head's signature does not hold, or the proof nodes do not rebuild the longer root.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The heads fit one history.
    #[error("the heads are consistent")]
    Consistent,
}

impl ForkProof {
    /// Checks that both heads are signed by the feed's author and cannot both be true.
    ///
    /// # Errors
    /// [`BadForkProof`] saying what does not hold.
    pub fn verify(&self) -> Result<(), BadForkProof> {
        let (a, b) = (&self.shorter, &self.longer);
        if a.namespace != b.namespace || a.author != b.author {
            return Err(BadForkProof::DifferentFeeds);
        }
        if a.length > b.length {
            return Err(ProofError::BadRange {
                start: b.length,
                end: a.length,
                length: b.length,
            }
            .into());
        }
        if a.length == b.length {
            if !self.peaks.is_empty() || !self.extension.is_empty() {
                return Err(ProofError::WrongNodeCount.into());
            }
            if a.root == b.root {
                return Err(BadForkProof::Consistent);
            }
        } else {
            let frontier = Frontier::new(a.length, self.peaks.clone())?;
            if frontier.extended_root(b.length, &self.extension)? != b.root {
                return Err(ProofError::RootMismatch.into());
            }
            if frontier.root() == a.root {
                return Err(BadForkProof::Consistent);
            }
        }
        a.verify()?;
        b.verify()?;
        Ok(())
    }

    /// The proof that `theirs` forks from `ours`, a head held with the tree `ours_at` of
    /// `ours` at `theirs.length` (its peaks) and the extension from there to `ours.length`;
    /// `None` when they agree.
    pub(crate) fn between(
        theirs: &SignedHead,
        ours: &SignedHead,
        peaks: Vec<Hash>,
        extension: Vec<Hash>,
    ) -> Option<ForkProof> {
        let proof = if theirs.length == ours.length {
            ForkProof {
                shorter: theirs.clone(),
                longer: ours.clone(),
                peaks: Vec::new(),
                extension: Vec::new(),
            }
        } else {
            ForkProof {
                shorter: theirs.clone(),
                longer: ours.clone(),
                peaks,
                extension,
            }
        };
        proof.verify().is_ok().then_some(proof)
    }
}

impl Store {
    /// Checks `head`, a head of a feed this replica holds, against what it holds: a head that
    /// is validly signed but does not fit the held tree is a fork, and the proof of it is
    /// returned (not yet recorded; see [`Store::record_fork`]). Heads this replica cannot
    /// judge (longer than what it holds, of a feed it does not hold, or badly signed) give
    /// `None`.
    ///
    /// # Errors
    /// Database failures; [`Error::Damaged`] when a stored tree node is missing.
    pub fn check_head(&self, head: &SignedHead) -> Result<Option<ForkProof>> {
        if self.namespace_number(&head.namespace).is_err() {
            return Ok(None);
        }
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, &head.namespace, &head.author)? else {
            return Ok(None);
        };
        if head.length == record.head.length {
            return Ok(if head.root == record.head.root {
                None
            } else {
                ForkProof::between(head, &record.head, Vec::new(), Vec::new())
            });
        }
        let sparse = txn.open_table(SPARSE_FEEDS)?.get(feed)?.is_some();
        if sparse || head.length > record.held {
            return Ok(None);
        }
        let entries = txn.open_table(ENTRIES)?;
        let peaks = tree::peaks(head.length)
            .into_iter()
            .map(|node| read_node(&entries, feed, node))
            .collect::<Result<Vec<Hash>>>()?;
        if Frontier::new(head.length, peaks.clone())?.root() == head.root {
            return Ok(None);
        }
        let extension = extension_from(&entries, feed, &record, head.length)?;
        Ok(ForkProof::between(head, &record.head, peaks, extension))
    }

    /// Verifies a fork proof and freezes its feed at what is held now. Returns whether the
    /// feed was not frozen before. A fork of a feed this replica does not hold (in a namespace
    /// it does not hold, or of an author it holds nothing of) is ignored unchecked: keeping
    /// proofs only for held feeds bounds them by the feeds, whoever makes up fresh keys.
    ///
    /// # Errors
    /// [`IngestError::Invalid`] when the proof does not prove a fork (its sender is at
    /// fault); [`IngestError::Store`] on database failures.
    pub fn record_fork(&self, proof: &ForkProof) -> std::result::Result<bool, IngestError> {
        let head = &proof.longer;
        let Ok(ns_number) = self.namespace_number(&head.namespace) else {
            return Ok(false);
        };
        {
            let txn = self.db().begin_read().map_err(store_err)?;
            if self
                .feed_record(&txn, &head.namespace, &head.author)?
                .is_none()
            {
                return Ok(false);
            }
        }
        proof.verify().map_err(|e| Invalid::Fork(e.to_string()))?;
        let key = tables::feed_ids_key(ns_number, &head.author);
        let mut txn = self.db().begin_write().map_err(store_err)?;
        txn.set_durability(self.durability()).map_err(store_err)?;
        {
            let mut forks = txn.open_table(FORKS).map_err(store_err)?;
            if forks.get(&key[..]).map_err(store_err)?.is_some() {
                return Ok(false);
            }
            let frozen_at = self
                .feeds(&head.namespace)?
                .into_iter()
                .find(|feed| feed.head.author == head.author)
                .map_or(0, |feed| feed.held);
            tracing::warn!(author = %head.author, frozen_at, "fork: the author signed two histories; its feed is frozen");
            let fork = Fork {
                frozen_at,
                proof: proof.clone(),
            };
            let bytes = postcard::to_allocvec(&fork).expect("forks always encode");
            forks.insert(&key[..], &bytes[..]).map_err(store_err)?;
        }
        txn.commit().map_err(store_err)?;
        Ok(true)
    }

    /// Every fork known in `ns`.
    ///
    /// # Errors
    /// [`Error::UnknownNamespace`]; database failures.
    pub fn forks(&self, ns: &NamespaceId) -> Result<Vec<Fork>> {
        let ns_number = self.namespace_number(ns)?;
        let txn = self.db().begin_read()?;
        let forks = txn.open_table(FORKS)?;
        let low = tables::feed_ids_key(ns_number, &AuthorId([0; 32]));
        let high = tables::feed_ids_key(ns_number, &AuthorId([0xff; 32]));
        let mut out = Vec::new();
        for row in forks.range(&low[..]..=&high[..])? {
            let (_, bytes) = row?;
            out.push(
                postcard::from_bytes(bytes.value())
                    .map_err(|e| Error::Damaged(format!("a fork record does not decode ({e})")))?,
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::NamespaceId;
    use ed25519_dalek::SigningKey;

    fn tree_of(leaves: &[&[u8]]) -> Frontier {
        let mut frontier = Frontier::default();
        for leaf in leaves {
            frontier.push(tree::leaf_hash(leaf), |_, _| {});
        }
        frontier
    }

    /// The hash of the perfect subtree over `leaves`: its one leaf, or the last parent that
    /// pushing them completes.
    fn subtree_hash(leaves: &[&[u8]]) -> Hash {
        let mut last = tree::leaf_hash(leaves[0]);
        let mut frontier = Frontier::default();
        for leaf in leaves {
            frontier.push(tree::leaf_hash(leaf), |_, hash| last = hash);
        }
        last
    }

    fn hashes_of(nodes: Vec<tree::Node>, leaves: &[&[u8]]) -> Vec<Hash> {
        nodes
            .into_iter()
            .map(|node| subtree_hash(&leaves[node.first_leaf() as usize..node.end_leaf() as usize]))
            .collect()
    }

    #[test]
    fn forks_are_proven_and_consistent_heads_are_not() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let ns = NamespaceId([1; 32]);
        let honest: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e"];
        let forked: Vec<&[u8]> = vec![b"a", b"b", b"X"];
        let head = |leaves: &[&[u8]]| {
            SignedHead::sign(&key, ns, leaves.len() as u64, tree_of(leaves).root())
        };
        let long = head(&honest);
        let fork = ForkProof {
            shorter: head(&forked),
            longer: long.clone(),
            peaks: hashes_of(tree::peaks(3), &honest),
            extension: hashes_of(tree::extension_nodes(3, 5).expect("in range"), &honest),
        };
        assert_eq!(fork.verify(), Ok(()));

        let consistent = ForkProof {
            shorter: head(&honest[..3]),
            ..fork.clone()
        };
        assert_eq!(consistent.verify(), Err(BadForkProof::Consistent));

        let mut bad_nodes = fork.clone();
        bad_nodes.extension[0][0] ^= 1;
        assert!(matches!(bad_nodes.verify(), Err(BadForkProof::Proof(_))));

        let same_length = ForkProof {
            shorter: head(&[b"a", b"b", b"c", b"d", b"Y"]),
            longer: long.clone(),
            peaks: Vec::new(),
            extension: Vec::new(),
        };
        assert_eq!(same_length.verify(), Ok(()));
        let twice = ForkProof {
            shorter: long.clone(),
            ..same_length.clone()
        };
        assert_eq!(twice.verify(), Err(BadForkProof::Consistent));

        let mut forged = same_length;
        forged.shorter.signature[0] ^= 1;
        assert!(matches!(forged.verify(), Err(BadForkProof::Proof(_))));

        let other = SigningKey::from_bytes(&[4; 32]);
        let mut mixed = fork;
        mixed.shorter = SignedHead::sign(&other, ns, 3, tree_of(&forked).root());
        assert_eq!(mixed.verify(), Err(BadForkProof::DifferentFeeds));
    }
}
