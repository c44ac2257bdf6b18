//! Forks: two validly signed heads of one feed that cannot both be true, and the proof of it
//! that any replica can check on its own.
//!
//! An append-only feed has one tree per length. Two signed heads whose trees hold different
//! entries at one index mean the author signed two histories: by mistake (one key on two
//! devices, a backup restored and written to) or to show different peers different data.
//! No replica can tell which history is the real one, but every replica can agree on where
//! they part: a [`ForkProof`] names the first index at which the histories differ and proves
//! that both hold the same entries before it. Each replica that checks one freezes the feed
//! there, whichever branch it holds: the entries before count, none from there on do. With
//! several proofs of one feed (three branches, or one pair seen from different lengths) the
//! lowest point wins, so replicas that have exchanged their proofs count the same entries.
//!
//! No single replica holds both branches, so a proof is found between two: the one that sees
//! a head or entries that do not fit what it holds walks down the other's tree ([`ForkSearch`],
//! a bounded number of node hashes a step) to the first leaf that differs, then asks for the
//! other's [`Branch`] there and puts the proof together.

use redb::ReadableDatabase;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::head::SignedHead;
use crate::ids::{AuthorId, NamespaceId};
use crate::replicate::{IngestError, Invalid, store_err};
use crate::rows::{SparseRecord, SparseTree, extension_from, read_node};
use crate::store::Store;
use crate::tables::{self, ENTRIES, FORKS, NODES, SPARSE_FEEDS};
use crate::tree::{self, Frontier, Hash, Node, ProofError};
use crate::view::{ViewTables, rebuild_namespace};

/// A fork a replica knows of: the proof, and the length at which it froze the feed.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Fork {
    /// Where the histories part ([`ForkProof::agreed`]): the entries before it count, none
    /// from it on do, and the feed takes nothing more.
    pub frozen_at: u64,
    /// The proof.
    pub proof: ForkProof,
}

/// Two signed heads of one feed whose histories hold the same entries up to `agreed` and
/// different ones at `agreed`.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct ForkProof {
    /// The index of the first entry in which the two histories differ.
    pub agreed: u64,
    /// The peak hashes of the tree both histories share at length `agreed`, largest first.
    pub common: Vec<Hash>,
    /// The two histories.
    pub branches: [Branch; 2],
}

/// One history of a forked feed, from where it parts from the other.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Branch {
    /// Its author's signed head.
    pub head: SignedHead,
    /// The leaf hash of its entry at the index where the histories part.
    pub leaf: Hash,
    /// The hashes of [`tree::extension_nodes`]`(agreed + 1, head.length)`, which with the
    /// common peaks and `leaf` rebuild `head.root`.
    pub extension: Vec<Hash>,
}

/// Why a fork proof does not prove a fork.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum BadForkProof {
    /// The heads are of different feeds.
    #[error("the heads are of different feeds")]
    DifferentFeeds,
    /// A head's signature does not hold, or the proof nodes do not rebuild its root.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The two histories hold the same entry at the index named.
    #[error("the heads are consistent")]
    Consistent,
}

impl ForkProof {
    /// Checks that both heads are signed by the feed's author, that both histories hold the
    /// same entries before [`ForkProof::agreed`], and different ones at it.
    ///
    /// # Errors
    /// [`BadForkProof`] saying what does not hold.
    pub fn verify(&self) -> Result<(), BadForkProof> {
        let [a, b] = &self.branches;
        if a.head.namespace != b.head.namespace || a.head.author != b.head.author {
            return Err(BadForkProof::DifferentFeeds);
        }
        if a.leaf == b.leaf {
            return Err(BadForkProof::Consistent);
        }
        let common = Frontier::new(self.agreed, self.common.clone())?;
        for branch in &self.branches {
            let head = &branch.head;
            tree::check_length(head.length)?;
            if self.agreed >= head.length {
                return Err(ProofError::BadRange {
                    start: self.agreed,
                    end: self.agreed + 1,
                    length: head.length,
                }
                .into());
            }
            let mut frontier = common.clone();
            frontier.push(branch.leaf, |_, _| {});
            if frontier.extended_root(head.length, &branch.extension)? != head.root {
                return Err(ProofError::RootMismatch.into());
            }
        }
        a.head.verify()?;
        b.head.verify()?;
        Ok(())
    }

    /// The feed's author.
    pub fn author(&self) -> AuthorId {
        self.branches[0].head.author
    }

    /// The feed's namespace.
    pub fn namespace(&self) -> NamespaceId {
        self.branches[0].head.namespace
    }
}

/// The most node hashes one step of a [`ForkSearch`] asks for: the search narrows by a factor
/// of 256 a step, so it ends within 7 steps on the longest feed.
pub const SEARCH_NODES: usize = 256;

/// How many levels of the tree one step of a [`ForkSearch`] descends (`2^8 =`
/// [`SEARCH_NODES`]).
const SEARCH_LEVELS: u32 = 8;

/// A walk down a peer's tree of one feed to the first entry where it differs from this
/// replica's: each step asks the peer for the hashes of `asked` and compares them with its own.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ForkSearch {
    /// The feed's namespace.
    pub namespace: NamespaceId,
    /// The feed's author.
    pub author: AuthorId,
    /// The nodes the peer is asked for, left to right; at most [`SEARCH_NODES`].
    pub asked: Vec<Node>,
}

/// What a step of a [`ForkSearch`] found.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SearchStep {
    /// The difference lies under one of the nodes answered: ask for these next.
    Ask(ForkSearch),
    /// The histories first differ at this index: ask the peer for its [`Branch`] there.
    Found(u64),
    /// Every node answered is the same here: the peer's copy shows no fork.
    Agree,
    /// The histories differ under a node whose children this replica does not keep (it holds
    /// the feed sparsely): the peer's copy may be another branch, and neither can be shown
    /// wrong here. A full replica's proof settles it when one arrives.
    Parted,
}

/// Whether `node` lies within the longest feed, so no bound of it overflows.
pub fn node_in_range(node: Node) -> bool {
    node.depth <= 48 && node.offset < (tree::MAX_LENGTH >> node.depth)
}

impl Store {
    /// The start of a search for where a peer's copy of `author`'s feed in `ns`, of
    /// `their_length` entries, parts from the one held here: the peaks of the shorter of the
    /// two. A sparse replica keeps the peaks of where it has scanned to and no others, so it
    /// compares only a copy at least that long, there. `None` when nothing is held to compare
    /// (the feed is not held, a sparse replica's copy is longer than the peer's, or one side
    /// is empty).
    ///
    /// # Errors
    /// Database failures.
    pub fn start_fork_search(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        their_length: u64,
    ) -> Result<Option<ForkSearch>> {
        let Some((held, sparse)) = self.comparable_length(ns, author)? else {
            return Ok(None);
        };
        if sparse && their_length < held {
            return Ok(None);
        }
        let length = held.min(their_length).min(tree::MAX_LENGTH);
        Ok((length > 0).then(|| ForkSearch {
            namespace: *ns,
            author: *author,
            asked: tree::peaks(length),
        }))
    }

    /// Compares a peer's hashes of `search.asked` with this replica's: the first node that
    /// differs is walked into, 8 levels down (or is the leaf where the histories part); a
    /// sparse replica, which keeps none of the nodes below, stops at [`SearchStep::Parted`].
    ///
    /// # Errors
    /// [`IngestError::Invalid`] when the peer answered another number of hashes than asked
    /// (its fault); [`IngestError::Store`] on database failures, or when a node asked is no
    /// longer held here.
    pub fn fork_search_step(
        &self,
        search: ForkSearch,
        theirs: &[Hash],
    ) -> std::result::Result<SearchStep, IngestError> {
        if theirs.len() != search.asked.len() {
            return Err(Invalid::Fork(format!(
                "{} node hashes answered for {} asked",
                theirs.len(),
                search.asked.len()
            ))
            .into());
        }
        let (ours, sparse) = self
            .held_hashes(&search.namespace, &search.author, &search.asked, true)?
            .ok_or_else(|| Error::Damaged("a fork search's own nodes are not held".into()))?;
        let Some(at) = (0..ours.len()).find(|&i| ours[i] != theirs[i]) else {
            return Ok(SearchStep::Agree);
        };
        if sparse {
            return Ok(SearchStep::Parted);
        }
        let node = search.asked[at];
        if node.depth == 0 {
            return Ok(SearchStep::Found(node.offset));
        }
        let down = node.depth.min(SEARCH_LEVELS);
        let depth = node.depth - down;
        let first = node.offset << down;
        Ok(SearchStep::Ask(ForkSearch {
            asked: (first..first + (1 << down))
                .map(|offset| Node { depth, offset })
                .collect(),
            ..search
        }))
    }

    /// This replica's hashes of `nodes` of `author`'s feed in `ns`, for a peer's
    /// [`ForkSearch`]; `None` unless the feed is held in full and every node lies in what is
    /// held, and there are at most [`SEARCH_NODES`].
    ///
    /// # Errors
    /// Database failures.
    pub fn node_hashes(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        nodes: &[Node],
    ) -> Result<Option<Vec<Hash>>> {
        // What a sparse replica keeps shows only its own history: a searcher that walks it
        // finds nothing it can prove, so none of it is read for a peer.
        Ok(self
            .held_hashes(ns, author, nodes, false)?
            .map(|(hashes, _)| hashes))
    }

    /// This replica's hashes of `nodes`, at most [`SEARCH_NODES`], and whether it holds the
    /// feed sparsely; `None` unless every node is held (in full: lies in what is held; sparse:
    /// is kept or made from what is kept, and `sparse_too`).
    fn held_hashes(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        nodes: &[Node],
        sparse_too: bool,
    ) -> Result<Option<(Vec<Hash>, bool)>> {
        if nodes.len() > SEARCH_NODES
            || self.namespace_number(ns).is_err()
            || !nodes.iter().all(|node| node_in_range(*node))
        {
            return Ok(None);
        }
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(None);
        };
        let entries = txn.open_table(ENTRIES)?;
        if txn.open_table(SPARSE_FEEDS)?.get(feed)?.is_some() {
            if !sparse_too {
                return Ok(None);
            }
            let kept = txn.open_table(NODES)?;
            let tree = SparseTree {
                entries: &entries,
                nodes: &kept,
                feed,
            };
            return Ok(nodes
                .iter()
                .map(|node| tree.hash(*node))
                .collect::<Result<Option<Vec<Hash>>>>()?
                .map(|hashes| (hashes, true)));
        }
        if !nodes.iter().all(|node| node.end_leaf() <= record.held) {
            return Ok(None);
        }
        nodes
            .iter()
            .map(|node| read_node(&entries, feed, *node))
            .collect::<Result<Vec<Hash>>>()
            .map(|hashes| Some((hashes, false)))
    }

    /// This replica's history of `author`'s feed in `ns` from index `at`, for a peer that
    /// found its own parts from it there; `None` unless the feed is held in full past `at`.
    ///
    /// # Errors
    /// Database failures.
    pub fn branch_at(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        at: u64,
    ) -> Result<Option<Branch>> {
        Ok(self.fork_side(ns, author, at)?.map(|(branch, _)| branch))
    }

    /// [`Store::branch_at`], with the peaks of the tree at `at`.
    fn fork_side(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        at: u64,
    ) -> Result<Option<(Branch, Vec<Hash>)>> {
        if self.namespace_number(ns).is_err() {
            return Ok(None);
        }
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(None);
        };
        if txn.open_table(SPARSE_FEEDS)?.get(feed)?.is_some() || at >= record.held {
            return Ok(None);
        }
        let entries = txn.open_table(ENTRIES)?;
        let common = tree::peaks(at)
            .into_iter()
            .map(|node| read_node(&entries, feed, node))
            .collect::<Result<Vec<Hash>>>()?;
        let branch = Branch {
            leaf: read_node(&entries, feed, Node::leaf(at))?,
            extension: extension_from(&entries, feed, &record, at + 1)?,
            head: record.head,
        };
        Ok(Some((branch, common)))
    }

    /// The proof that `theirs`, a peer's history of `author`'s feed in `ns` from index `at`
    /// (where a [`ForkSearch`] found the two part), forks from the one held here. `None` when
    /// this replica no longer holds its side.
    ///
    /// # Errors
    /// [`IngestError::Invalid`] when `theirs` does not make a fork proof with this replica's
    /// side (the peer answered its search or its branch falsely); [`IngestError::Store`] on
    /// database failures.
    pub fn prove_fork(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
        at: u64,
        theirs: Branch,
    ) -> std::result::Result<Option<ForkProof>, IngestError> {
        let Some((ours, common)) = self.fork_side(ns, author, at)? else {
            return Ok(None);
        };
        if theirs.head.namespace != *ns || theirs.head.author != *author {
            return Err(Invalid::Fork(BadForkProof::DifferentFeeds.to_string()).into());
        }
        let proof = ForkProof {
            agreed: at,
            common,
            branches: [ours, theirs],
        };
        proof.verify().map_err(|e| Invalid::Fork(e.to_string()))?;
        Ok(Some(proof))
    }

    /// The length at which `author`'s feed in `ns` can be compared with a peer's, and whether
    /// it is held sparsely: the entries held in full, or where a sparse replica has scanned to
    /// (it keeps the peaks there).
    fn comparable_length(
        &self,
        ns: &NamespaceId,
        author: &AuthorId,
    ) -> Result<Option<(u64, bool)>> {
        if self.namespace_number(ns).is_err() {
            return Ok(None);
        }
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, ns, author)? else {
            return Ok(None);
        };
        Ok(Some(match txn.open_table(SPARSE_FEEDS)?.get(feed)? {
            Some(sparse) => (SparseRecord::decode(sparse.value())?.scanned, true),
            None => (record.held, false),
        }))
    }

    /// Whether `head`, a validly signed head of a feed this replica holds in full, does not
    /// fit what it holds: then the peer that sent it holds another history, and a
    /// [`ForkSearch`] with it finds where the two part. Heads this replica cannot judge (longer
    /// than what it holds, of a feed not held in full) and feeds already frozen give `None`.
    ///
    /// # Errors
    /// Database failures; [`Error::Damaged`] when a stored tree node is missing.
    pub fn suspect_fork(&self, head: &SignedHead) -> Result<Option<ForkSearch>> {
        let Ok(ns_number) = self.namespace_number(&head.namespace) else {
            return Ok(None);
        };
        if self.frozen_at(ns_number, &head.author).is_some() {
            return Ok(None);
        }
        let txn = self.db().begin_read()?;
        let Some((feed, record)) = self.feed_record(&txn, &head.namespace, &head.author)? else {
            return Ok(None);
        };
        let sparse = txn.open_table(SPARSE_FEEDS)?.get(feed)?.is_some();
        if sparse || head.length > record.held {
            return Ok(None);
        }
        let fits = if head.length == record.head.length {
            head.root == record.head.root
        } else {
            let entries = txn.open_table(ENTRIES)?;
            let peaks = tree::peaks(head.length)
                .into_iter()
                .map(|node| read_node(&entries, feed, node))
                .collect::<Result<Vec<Hash>>>()?;
            Frontier::new(head.length, peaks)?.root() == head.root
        };
        drop(txn);
        if fits {
            return Ok(None);
        }
        self.start_fork_search(&head.namespace, &head.author, head.length)
    }

    /// Verifies a fork proof and freezes its feed at [`ForkProof::agreed`]: entries from there
    /// on stop counting in the view in the same transaction. Returns whether the proof was
    /// kept: the feed was not frozen before, or this proof parts the histories earlier (the
    /// lowest point wins, so every replica ends at the same one). A fork of a feed this
    /// replica does not hold (in a namespace it does not hold, or of an author it holds nothing
    /// of) is ignored unchecked: keeping proofs only for held feeds bounds them by the feeds,
    /// whoever makes up fresh keys.
    ///
    /// # Errors
    /// [`IngestError::Invalid`] when the proof does not prove a fork (its sender is at
    /// fault); [`IngestError::Store`] on database failures.
    pub fn record_fork(&self, proof: &ForkProof) -> std::result::Result<bool, IngestError> {
        let (ns, author) = (proof.namespace(), proof.author());
        let Ok(ns_number) = self.namespace_number(&ns) else {
            return Ok(false);
        };
        {
            let txn = self.db().begin_read().map_err(store_err)?;
            if self.feed_record(&txn, &ns, &author)?.is_none() {
                return Ok(false);
            }
        }
        if self
            .frozen_at(ns_number, &author)
            .is_some_and(|frozen| frozen <= proof.agreed)
        {
            return Ok(false);
        }
        proof.verify().map_err(|e| Invalid::Fork(e.to_string()))?;
        let key = tables::feed_ids_key(ns_number, &author);
        let mut txn = self.db().begin_write().map_err(store_err)?;
        txn.set_durability(self.durability()).map_err(store_err)?;
        {
            let mut forks = txn.open_table(FORKS).map_err(store_err)?;
            let bytes = postcard::to_allocvec(proof).expect("fork proofs always encode");
            forks.insert(&key[..], &bytes[..]).map_err(store_err)?;
        }
        let mut gate = self.gate(&ns)?;
        gate.freeze(author, proof.agreed);
        rebuild_namespace(&txn, &mut ViewTables::open(&txn)?, gate)?;
        txn.commit().map_err(store_err)?;
        tracing::warn!(%author, frozen_at = proof.agreed, "fork: the author signed two histories; its feed is frozen where they part");
        self.frozen_feeds()
            .entry(ns_number)
            .or_default()
            .insert(author, proof.agreed);
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
            let proof: ForkProof = decode_fork(bytes.value())?;
            out.push(Fork {
                frozen_at: proof.agreed,
                proof,
            });
        }
        Ok(out)
    }
}

/// A [`FORKS`] value.
fn decode_fork(bytes: &[u8]) -> Result<ForkProof> {
    postcard::from_bytes(bytes)
        .map_err(|e| Error::Damaged(format!("a fork record does not decode ({e})")))
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

    fn hashes_of(nodes: Vec<Node>, leaves: &[&[u8]]) -> Vec<Hash> {
        nodes
            .into_iter()
            .map(|node| subtree_hash(&leaves[node.first_leaf() as usize..node.end_leaf() as usize]))
            .collect()
    }

    fn branch(key: &SigningKey, ns: NamespaceId, leaves: &[&[u8]], at: u64) -> Branch {
        Branch {
            head: SignedHead::sign(key, ns, leaves.len() as u64, tree_of(leaves).root()),
            leaf: tree::leaf_hash(leaves[at as usize]),
            extension: hashes_of(
                tree::extension_nodes(at + 1, leaves.len() as u64).expect("in range"),
                leaves,
            ),
        }
    }

    #[test]
    fn forks_are_proven_where_the_histories_part_and_nowhere_else() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let ns = NamespaceId([1; 32]);
        let honest: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"e"];
        let forked: Vec<&[u8]> = vec![b"a", b"b", b"X"];
        let fork = ForkProof {
            agreed: 2,
            common: hashes_of(tree::peaks(2), &honest),
            branches: [branch(&key, ns, &honest, 2), branch(&key, ns, &forked, 2)],
        };
        assert_eq!(fork.verify(), Ok(()));

        // Equal lengths part the same way.
        let twin: Vec<&[u8]> = vec![b"a", b"b", b"c", b"d", b"Y"];
        let same_length = ForkProof {
            agreed: 4,
            common: hashes_of(tree::peaks(4), &honest),
            branches: [branch(&key, ns, &honest, 4), branch(&key, ns, &twin, 4)],
        };
        assert_eq!(same_length.verify(), Ok(()));

        // A prefix of the same history is no fork.
        let consistent = ForkProof {
            branches: [
                branch(&key, ns, &honest, 2),
                branch(&key, ns, &honest[..3], 2),
            ],
            ..fork.clone()
        };
        assert_eq!(consistent.verify(), Err(BadForkProof::Consistent));

        // The histories do part at 2, but the proof cannot claim they agree past it.
        let too_late = ForkProof {
            agreed: 3,
            common: hashes_of(tree::peaks(3), &honest),
            branches: [
                branch(&key, ns, &honest, 3),
                branch(&key, ns, &[b"a", b"b", b"X", b"Z"], 3),
            ],
        };
        assert_eq!(too_late.verify(), Err(ProofError::RootMismatch.into()));

        let mut bad_nodes = fork.clone();
        bad_nodes.branches[0].extension[0][0] ^= 1;
        assert_eq!(bad_nodes.verify(), Err(ProofError::RootMismatch.into()));
        let mut bad_common = fork.clone();
        bad_common.common[0][0] ^= 1;
        assert_eq!(bad_common.verify(), Err(ProofError::RootMismatch.into()));
        let mut short_common = fork.clone();
        short_common.common.pop();
        assert_eq!(
            short_common.verify(),
            Err(ProofError::WrongNodeCount.into())
        );
        let mut past_the_end = fork.clone();
        past_the_end.agreed = 7;
        assert!(matches!(past_the_end.verify(), Err(BadForkProof::Proof(_))));

        let mut forged = same_length;
        forged.branches[1].head.signature[0] ^= 1;
        assert_eq!(forged.verify(), Err(ProofError::BadSignature.into()));

        let other = SigningKey::from_bytes(&[4; 32]);
        let mut mixed = fork;
        mixed.branches[1] = branch(&other, ns, &forked, 2);
        assert_eq!(mixed.verify(), Err(BadForkProof::DifferentFeeds));
    }

    #[test]
    fn a_stored_proof_begins_with_where_it_freezes_the_feed() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let ns = NamespaceId([1; 32]);
        let leaves: Vec<&[u8]> = vec![b"a"; 300];
        let proof = ForkProof {
            agreed: 299,
            common: hashes_of(tree::peaks(299), &leaves),
            branches: [
                branch(&key, ns, &leaves, 299),
                branch(&key, ns, &leaves, 299),
            ],
        };
        let bytes = postcard::to_allocvec(&proof).expect("encodes");
        assert_eq!(crate::store::frozen_length(&bytes).expect("decodes"), 299);
    }

    #[test]
    fn nodes_out_of_any_feed_are_refused_before_their_bounds_overflow() {
        assert!(node_in_range(Node {
            depth: 48,
            offset: 0
        }));
        assert!(!node_in_range(Node {
            depth: 48,
            offset: 1
        }));
        assert!(!node_in_range(Node {
            depth: 63,
            offset: 0
        }));
        assert!(!node_in_range(Node {
            depth: 0,
            offset: u64::MAX
        }));
    }
}
