//! The merkle tree over a feed, and proofs that entries belong to it.
//!
//! The tree is a merkle mountain range: the leaves are the entries in feed order, every
//! complete power-of-two block of leaves has a node, and a feed of length `n` has one *peak* per
//! set bit of `n`, the largest first. Nodes never change once their block is complete, so the
//! nodes of any shorter length are still there when the feed has grown: a proof can be built
//! against any signed head the verifier holds.
//!
//! Nodes are addressed by `(depth, offset)`: the node over leaves
//! `[offset << depth, (offset + 1) << depth)`. Storage keys them by in-order ("flat tree")
//! index, `(offset << (depth + 1)) + (1 << depth) - 1`, as hypercore does.
//!
//! Hashes, all blake3, with a leading domain byte so that no leaf can pose as a parent or root:
//! - leaf: `H(0x00 ‖ entry bytes)`
//! - parent: `H(0x01 ‖ left ‖ right)`
//! - root: `H(0x02 ‖ length as u64 little-endian ‖ peaks, largest first)`

/// A blake3 hash.
pub type Hash = [u8; 32];

/// A node of the tree: the one over leaves `[offset << depth, (offset + 1) << depth)`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Node {
    /// 0 for a leaf.
    pub depth: u32,
    /// Position among the nodes of the same depth.
    pub offset: u64,
}

impl Node {
    /// The node of leaf `index`.
    pub fn leaf(index: u64) -> Node {
        Node {
            depth: 0,
            offset: index,
        }
    }

    /// The in-order flat-tree index, by which storage keys nodes.
    pub fn flat_index(&self) -> u64 {
        (self.offset << (self.depth + 1)) + (1u64 << self.depth) - 1
    }

    pub(crate) fn first_leaf(&self) -> u64 {
        self.offset << self.depth
    }

    pub(crate) fn end_leaf(&self) -> u64 {
        (self.offset + 1) << self.depth
    }

    pub(crate) fn children(&self) -> (Node, Node) {
        let depth = self.depth - 1;
        (
            Node {
                depth,
                offset: self.offset * 2,
            },
            Node {
                depth,
                offset: self.offset * 2 + 1,
            },
        )
    }
}

/// The hash of a leaf holding `entry`'s bytes.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]);
    hasher.update(entry);
    *hasher.finalize().as_bytes()
}

/// The hash of a parent node.
pub fn parent_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x01]);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

/// The root of a feed of `length` entries, from its peaks (largest first).
pub fn root_hash(length: u64, peaks: &[Hash]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x02]);
    hasher.update(&length.to_le_bytes());
    for peak in peaks {
        hasher.update(peak);
    }
    *hasher.finalize().as_bytes()
}

/// The peaks of a feed of `length` entries, largest (leftmost) first.
pub fn peaks(length: u64) -> Vec<Node> {
    let mut start = 0u64;
    let mut out = Vec::with_capacity(length.count_ones() as usize);
    for depth in (0..64u32).rev() {
        if length & (1u64 << depth) != 0 {
            out.push(Node {
                depth,
                offset: start >> depth,
            });
            start += 1u64 << depth;
        }
    }
    out
}

/// The right edge of a growing tree: its peaks with their hashes. Appending a leaf merges equal
/// peaks and yields the parents it completed, which storage must keep.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    length: u64,
    peaks: Vec<(Node, Hash)>,
}

impl Frontier {
    /// The frontier of a feed of `length` entries, given its peak hashes largest first.
    ///
    /// # Errors
    /// [`ProofError::WrongNodeCount`] when `hashes` is not one per peak of `length`.
    pub fn new(length: u64, hashes: Vec<Hash>) -> Result<Frontier, ProofError> {
        check_length(length)?;
        let nodes = peaks(length);
        if nodes.len() != hashes.len() {
            return Err(ProofError::WrongNodeCount);
        }
        Ok(Frontier {
            length,
            peaks: nodes.into_iter().zip(hashes).collect(),
        })
    }

    /// How many leaves the tree has.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Appends a leaf; calls `completed` with every parent node the append finished.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(Node, Hash)) {
        self.peaks.push((Node::leaf(self.length), leaf));
        self.length += 1;
        while let [.., (left, left_hash), (right, right_hash)] = self.peaks[..] {
            if left.depth != right.depth {
                break;
            }
            let parent = Node {
                depth: left.depth + 1,
                offset: left.offset / 2,
            };
            let hash = parent_hash(&left_hash, &right_hash);
            self.peaks.truncate(self.peaks.len() - 2);
            self.peaks.push((parent, hash));
            completed(parent, hash);
        }
    }

    /// The root over everything pushed so far.
    pub fn root(&self) -> Hash {
        let hashes: Vec<Hash> = self.peaks.iter().map(|(_, hash)| *hash).collect();
        root_hash(self.length, &hashes)
    }
}

/// Why a proof does not hold.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum ProofError {
    /// The range is empty of sense: it ends before it starts, or past the head.
    #[error("range {start}..{end} does not fit a feed of length {length}")]
    BadRange {
        /// First entry.
        start: u64,
        /// One past the last entry.
        end: u64,
        /// The head's length.
        length: u64,
    },
    /// The proof has too few or too many hashes for the range and length.
    #[error("proof has the wrong number of hashes")]
    WrongNodeCount,
    /// The hashes do not lead to the signed root.
    #[error("proof does not match the signed root")]
    RootMismatch,
    /// The head's signature is not the author's.
    #[error("head signature does not verify")]
    BadSignature,
    /// A feed length past [`MAX_LENGTH`]: no real feed, and tree arithmetic past it would
    /// overflow.
    #[error("a feed length of {0}, past the most a feed may hold")]
    TooLong(u64),
}

/// The most entries a feed may hold: far past any real feed (a million writes a second for
/// eight years), and far enough below `u64::MAX` that every flat index and leaf bound of its
/// tree fits.
pub const MAX_LENGTH: u64 = 1 << 48;

/// Refuses a length past [`MAX_LENGTH`], as every proof check does first.
///
/// # Errors
/// [`ProofError::TooLong`].
pub fn check_length(length: u64) -> Result<(), ProofError> {
    if length <= MAX_LENGTH {
        Ok(())
    } else {
        Err(ProofError::TooLong(length))
    }
}

/// Checks that `[start, end)` lies within a feed of `length` entries.
///
/// # Errors
/// [`ProofError::BadRange`].
pub fn check_range(start: u64, end: u64, length: u64) -> Result<(), ProofError> {
    check_length(length)?;
    if start <= end && end <= length {
        Ok(())
    } else {
        Err(ProofError::BadRange { start, end, length })
    }
}

/// The nodes a verifier holding leaves `[start, end)` needs to rebuild the root of a feed of
/// `length` entries: every maximal subtree outside the range, left to right. That is at most
/// two per level, so O(log length). An empty range yields the peaks.
///
/// The range must satisfy [`check_range`]; `node` looks a node's hash up.
pub fn proof_nodes<E>(
    length: u64,
    start: u64,
    end: u64,
    mut node: impl FnMut(Node) -> Result<Hash, E>,
) -> Result<Vec<Hash>, E> {
    fn walk<E>(
        at: Node,
        start: u64,
        end: u64,
        node: &mut impl FnMut(Node) -> Result<Hash, E>,
        out: &mut Vec<Hash>,
    ) -> Result<(), E> {
        if at.end_leaf() <= start || at.first_leaf() >= end {
            out.push(node(at)?);
        } else if at.depth > 0 {
            let (left, right) = at.children();
            walk(left, start, end, node, out)?;
            walk(right, start, end, node, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    for peak in peaks(length) {
        walk(peak, start, end, &mut node, &mut out)?;
    }
    Ok(out)
}

/// Rebuilds the root of a feed of `length` entries from the leaf hashes of `[start, start +
/// leaves.len())` and the proof nodes [`proof_nodes`] gave for that range.
///
/// # Errors
/// [`ProofError::BadRange`] if the range does not fit `length`, [`ProofError::WrongNodeCount`]
/// if `nodes` has too few or too many hashes.
pub fn root_from_range(
    length: u64,
    start: u64,
    leaves: &[Hash],
    nodes: &[Hash],
) -> Result<Hash, ProofError> {
    let end = start
        .checked_add(leaves.len() as u64)
        .ok_or(ProofError::BadRange {
            start,
            end: u64::MAX,
            length,
        })?;
    check_range(start, end, length)?;
    let mut nodes = nodes.iter();
    fn rebuild<'a>(
        at: Node,
        start: u64,
        end: u64,
        leaves: &[Hash],
        nodes: &mut impl Iterator<Item = &'a Hash>,
    ) -> Result<Hash, ProofError> {
        if at.end_leaf() <= start || at.first_leaf() >= end {
            return nodes.next().copied().ok_or(ProofError::WrongNodeCount);
        }
        if at.depth == 0 {
            // In range, so `offset - start` indexes `leaves`.
            return Ok(leaves[(at.offset - start) as usize]);
        }
        let (left, right) = at.children();
        let left = rebuild(left, start, end, leaves, nodes)?;
        let right = rebuild(right, start, end, leaves, nodes)?;
        Ok(parent_hash(&left, &right))
    }
    let peak_hashes = peaks(length)
        .into_iter()
        .map(|peak| rebuild(peak, start, end, leaves, &mut nodes))
        .collect::<Result<Vec<Hash>, ProofError>>()?;
    if nodes.next().is_some() {
        return Err(ProofError::WrongNodeCount);
    }
    Ok(root_hash(length, &peak_hashes))
}

/// The nodes that, together with the peaks of a feed's first `held` entries, fix the root of a
/// feed of `length` entries: the maximal subtrees covering `[held, length)`, left to right.
/// This is how a replica that holds a prefix of a feed proves that prefix against a longer
/// signed head, and how a catch-up batch proves itself to a replica that holds everything
/// before it: at most one node per level, so O(log length).
///
/// # Errors
/// [`ProofError::BadRange`] when `held > length`.
pub fn extension_nodes(held: u64, length: u64) -> Result<Vec<Node>, ProofError> {
    check_length(length)?;
    check_range(held, length, length)?;
    fn walk(at: Node, held: u64, out: &mut Vec<Node>) {
        if at.end_leaf() <= held {
            return;
        }
        if at.first_leaf() >= held {
            out.push(at);
            return;
        }
        let (left, right) = at.children();
        walk(left, held, out);
        walk(right, held, out);
    }
    let mut out = Vec::new();
    for peak in peaks(length) {
        walk(peak, held, &mut out);
    }
    Ok(out)
}

impl Frontier {
    /// The root of a feed of `length` entries that starts with the entries pushed so far, given
    /// the hashes of [`extension_nodes`]`(self.length(), length)`.
    ///
    /// # Errors
    /// [`ProofError::BadRange`] when `length` is shorter than the frontier,
    /// [`ProofError::WrongNodeCount`] when `extension` has too few or too many hashes.
    pub fn extended_root(&self, length: u64, extension: &[Hash]) -> Result<Hash, ProofError> {
        check_range(self.length, length, length)?;
        let mut held = self.peaks.iter().map(|(_, hash)| hash);
        let mut extension = extension.iter();
        fn rebuild<'a>(
            at: Node,
            end: u64,
            held: &mut impl Iterator<Item = &'a Hash>,
            extension: &mut impl Iterator<Item = &'a Hash>,
        ) -> Result<Hash, ProofError> {
            // A node wholly inside the held prefix is one of its peaks: the peaks of a shorter
            // length are exactly the maximal aligned blocks below it.
            if at.end_leaf() <= end {
                return held.next().copied().ok_or(ProofError::WrongNodeCount);
            }
            if at.first_leaf() >= end {
                return extension.next().copied().ok_or(ProofError::WrongNodeCount);
            }
            let (left, right) = at.children();
            let left = rebuild(left, end, held, extension)?;
            let right = rebuild(right, end, held, extension)?;
            Ok(parent_hash(&left, &right))
        }
        let peak_hashes = peaks(length)
            .into_iter()
            .map(|peak| rebuild(peak, self.length, &mut held, &mut extension))
            .collect::<Result<Vec<Hash>, ProofError>>()?;
        if held.next().is_some() || extension.next().is_some() {
            return Err(ProofError::WrongNodeCount);
        }
        Ok(root_hash(length, &peak_hashes))
    }
}

/// Folds the tree of a feed of `length` entries into its root, walking each peak depth-first
/// and left to right: a node for which `split` holds (and that is not a leaf) is hashed from its
/// children, any other node's hash comes from `hash`. `computed` sees every node's hash, given
/// or made, so callers can keep the nodes they will need again.
pub(crate) fn fold_root<E>(
    length: u64,
    split: &mut impl FnMut(Node) -> bool,
    hash: &mut impl FnMut(Node) -> Result<Hash, E>,
    computed: &mut impl FnMut(Node, &Hash),
) -> Result<Hash, E> {
    fn fold<E>(
        at: Node,
        split: &mut impl FnMut(Node) -> bool,
        hash: &mut impl FnMut(Node) -> Result<Hash, E>,
        computed: &mut impl FnMut(Node, &Hash),
    ) -> Result<Hash, E> {
        if at.depth == 0 || !split(at) {
            let own = hash(at)?;
            computed(at, &own);
            return Ok(own);
        }
        let (left, right) = at.children();
        let left = fold(left, split, hash, computed)?;
        let right = fold(right, split, hash, computed)?;
        let parent = parent_hash(&left, &right);
        computed(at, &parent);
        Ok(parent)
    }
    let mut peak_hashes = Vec::new();
    for peak in peaks(length) {
        peak_hashes.push(fold(peak, split, hash, computed)?);
    }
    Ok(root_hash(length, &peak_hashes))
}

/// Whether any of `sorted` lies in the leaves of `node`.
pub(crate) fn holds_any(node: Node, sorted: &[u64]) -> bool {
    let first = sorted.partition_point(|&leaf| leaf < node.first_leaf());
    sorted
        .get(first)
        .is_some_and(|&leaf| leaf < node.end_leaf())
}

/// Whether `boundary` falls strictly inside `node`'s leaves.
fn straddles(node: Node, boundary: u64) -> bool {
    node.first_leaf() < boundary && boundary < node.end_leaf()
}

/// The shape of a sparse proof: the entries `leaves` (strictly increasing, within
/// `[start, end)`) of a feed of `length` entries, sent to a replica that has already checked
/// the part of `[0, start)` it wants and keeps the peaks of `start`.
///
/// Walking the tree of `length`, a node wholly before `start` is one of those peaks (the
/// receiver supplies it); a node holding one of `leaves`, or straddling `start` or `end`, is
/// split; any other node is a proof node, sent by hash. Splitting at `end` leaves the receiver
/// every peak of `end`, ready for the next proof. One hash per maximal subtree free of wanted
/// entries, shared by all the entries of the proof.
#[derive(Clone, Copy, Debug)]
pub struct SparseShape<'a> {
    /// The signed head's length.
    pub length: u64,
    /// Where the receiver's checked prefix ends.
    pub start: u64,
    /// Where this proof's coverage ends.
    pub end: u64,
    /// The entries carried.
    pub leaves: &'a [u64],
}

impl SparseShape<'_> {
    /// Checks the range and that the leaves are strictly increasing inside it.
    ///
    /// # Errors
    /// [`ProofError::BadRange`].
    pub fn check(&self) -> Result<(), ProofError> {
        check_range(self.start, self.end, self.length)?;
        let in_range = self
            .leaves
            .iter()
            .all(|&leaf| self.start <= leaf && leaf < self.end);
        let increasing = self.leaves.windows(2).all(|pair| pair[0] < pair[1]);
        if in_range && increasing {
            Ok(())
        } else {
            Err(ProofError::BadRange {
                start: self.start,
                end: self.end,
                length: self.length,
            })
        }
    }

    fn split(&self, node: Node) -> bool {
        holds_any(node, self.leaves) || straddles(node, self.start) || straddles(node, self.end)
    }

    /// The proof nodes, in the order they are sent. The shape must pass [`SparseShape::check`].
    pub fn proof_nodes(&self) -> Vec<Node> {
        let mut out = Vec::new();
        let _ = fold_root::<()>(
            self.length,
            &mut |node| self.split(node),
            &mut |node| {
                if node.end_leaf() > self.start && !(node.depth == 0 && self.split(node)) {
                    out.push(node);
                }
                Ok([0; 32])
            },
            &mut |_, _| {},
        );
        out
    }

    /// Rebuilds the root from the receiver's peaks of `start` (largest first), the hashes of
    /// the leaves and the proof nodes; `computed` sees every node hash on the way (the leaves'
    /// ancestors, the proof nodes, and so the peaks of `end`).
    ///
    /// # Errors
    /// [`ProofError::BadRange`] for a shape that fails [`SparseShape::check`] or leaf hashes
    /// that do not match the leaves, [`ProofError::WrongNodeCount`] when `known` or `nodes`
    /// has too few or too many hashes.
    pub fn root(
        &self,
        known: &[Hash],
        leaf_hashes: &[Hash],
        nodes: &[Hash],
        mut computed: impl FnMut(Node, &Hash),
    ) -> Result<Hash, ProofError> {
        self.check()?;
        if leaf_hashes.len() != self.leaves.len() {
            return Err(ProofError::BadRange {
                start: self.start,
                end: self.end,
                length: self.length,
            });
        }
        let (mut known, mut leaf_hashes, mut nodes) =
            (known.iter(), leaf_hashes.iter(), nodes.iter());
        let root = fold_root(
            self.length,
            &mut |node| self.split(node),
            &mut |node| {
                let next = if node.end_leaf() <= self.start {
                    known.next()
                } else if node.depth == 0 && self.split(node) {
                    leaf_hashes.next()
                } else {
                    nodes.next()
                };
                next.copied().ok_or(ProofError::WrongNodeCount)
            },
            &mut computed,
        )?;
        if known.next().is_some() || nodes.next().is_some() {
            return Err(ProofError::WrongNodeCount);
        }
        Ok(root)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A whole tree in memory, built leaf by leaf through the frontier.
    fn build(length: u64) -> (Vec<Hash>, HashMap<(u32, u64), Hash>, Hash) {
        let leaves: Vec<Hash> = (0..length).map(|i| leaf_hash(&i.to_le_bytes())).collect();
        let mut nodes = HashMap::new();
        let mut frontier = Frontier::default();
        for (i, leaf) in leaves.iter().enumerate() {
            nodes.insert((0, i as u64), *leaf);
            frontier.push(*leaf, |node, hash| {
                nodes.insert((node.depth, node.offset), hash);
            });
        }
        let root = frontier.root();
        (leaves, nodes, root)
    }

    fn prove(nodes: &HashMap<(u32, u64), Hash>, length: u64, start: u64, end: u64) -> Vec<Hash> {
        proof_nodes::<()>(length, start, end, |n| {
            nodes.get(&(n.depth, n.offset)).copied().ok_or(())
        })
        .expect("every complete node is in the map")
    }

    #[test]
    fn flat_indexes_match_hypercore() {
        assert_eq!(Node::leaf(0).flat_index(), 0);
        assert_eq!(Node::leaf(1).flat_index(), 2);
        assert_eq!(
            Node {
                depth: 1,
                offset: 0
            }
            .flat_index(),
            1
        );
        assert_eq!(
            Node {
                depth: 1,
                offset: 1
            }
            .flat_index(),
            5
        );
        assert_eq!(
            Node {
                depth: 2,
                offset: 0
            }
            .flat_index(),
            3
        );
        assert_eq!(
            Node {
                depth: 3,
                offset: 0
            }
            .flat_index(),
            7
        );
    }

    #[test]
    fn every_range_verifies_against_every_longer_head() {
        let (leaves, nodes, _) = build(37);
        for length in 0..=37u64 {
            let (_, _, root) = build(length);
            for start in 0..=length {
                for end in start..=length {
                    let proof = prove(&nodes, length, start, end);
                    let rebuilt = root_from_range(
                        length,
                        start,
                        &leaves[start as usize..end as usize],
                        &proof,
                    );
                    assert_eq!(rebuilt, Ok(root), "range {start}..{end} of {length}");
                    assert!(proof.len() <= 2 * 64, "proof of {} hashes", proof.len());
                }
            }
        }
    }

    #[test]
    fn proofs_are_logarithmic() {
        let length = 1_000_000u64;
        // Count only: node hashes do not matter for the shape.
        let single =
            proof_nodes::<()>(length, 123_457, 123_458, |_| Ok([0; 32])).expect("infallible");
        let range = proof_nodes::<()>(length, 1000, 301_000, |_| Ok([0; 32])).expect("infallible");
        assert!(
            single.len() <= 20 + 7,
            "{} hashes for one entry",
            single.len()
        );
        assert!(
            range.len() <= 2 * 20 + 7,
            "{} hashes for a range",
            range.len()
        );
    }

    #[test]
    fn any_flipped_bit_or_wrong_length_fails() {
        let (leaves, nodes, root) = build(21);
        let (start, end) = (5u64, 9u64);
        let proof = prove(&nodes, 21, start, end);
        let range = &leaves[5..9];
        for i in 0..proof.len() {
            for bit in 0..256 {
                let mut bad = proof.clone();
                bad[i][bit / 8] ^= 1 << (bit % 8);
                assert_ne!(root_from_range(21, start, range, &bad), Ok(root));
            }
        }
        for i in 0..range.len() {
            let mut bad = range.to_vec();
            bad[i][0] ^= 0x80;
            assert_ne!(root_from_range(21, start, &bad, &proof), Ok(root));
        }
        for length in [9, 20, 22, 32] {
            assert_ne!(
                root_from_range(length, start, range, &proof),
                Ok(root),
                "length {length}"
            );
        }
        assert_ne!(root_from_range(21, start + 1, range, &proof), Ok(root));
        assert_eq!(
            root_from_range(21, start, range, &proof[1..]),
            Err(ProofError::WrongNodeCount)
        );
        let mut longer = proof.clone();
        longer.push([0; 32]);
        assert_eq!(
            root_from_range(21, start, range, &longer),
            Err(ProofError::WrongNodeCount)
        );
        assert!(matches!(
            root_from_range(8, start, range, &proof),
            Err(ProofError::BadRange { .. })
        ));
    }

    #[test]
    fn every_prefix_extends_to_every_longer_head() {
        for length in 0..=40u64 {
            let (leaves, nodes, root) = build(length);
            for held in 0..=length {
                let mut frontier = Frontier::default();
                for leaf in &leaves[..held as usize] {
                    frontier.push(*leaf, |_, _| {});
                }
                let extension: Vec<Hash> = extension_nodes(held, length)
                    .expect("held <= length")
                    .into_iter()
                    .map(|n| nodes[&(n.depth, n.offset)])
                    .collect();
                assert!(extension.len() <= 2 * (64 - length.leading_zeros() as usize));
                assert_eq!(frontier.extended_root(length, &extension), Ok(root));
                for i in 0..extension.len() {
                    let mut bad = extension.clone();
                    bad[i][7] ^= 1;
                    assert_ne!(frontier.extended_root(length, &bad), Ok(root));
                    let mut short = extension.clone();
                    short.remove(i);
                    assert_eq!(
                        frontier.extended_root(length, &short),
                        Err(ProofError::WrongNodeCount)
                    );
                }
                let mut long = extension.clone();
                long.push([0; 32]);
                assert_eq!(
                    frontier.extended_root(length, &long),
                    Err(ProofError::WrongNodeCount)
                );
                if length > held {
                    assert_ne!(
                        frontier.extended_root(length - 1, &extension),
                        Ok(root),
                        "held {held} length {length}"
                    );
                }
            }
        }
    }

    #[test]
    fn sparse_proofs_verify_and_chain_across_boundaries() {
        let (leaves, nodes, _) = build(45);
        let lookup = |n: Node| nodes[&(n.depth, n.offset)];
        for length in [1u64, 7, 16, 33, 45] {
            let (_, _, root) = build(length);
            for start in 0..=length {
                for end in start..=length {
                    // Every third entry of the range, offset so both ends get exercised.
                    let wanted: Vec<u64> = (start..end).filter(|i| (i + start) % 3 == 0).collect();
                    let shape = SparseShape {
                        length,
                        start,
                        end,
                        leaves: &wanted,
                    };
                    let known: Vec<Hash> = peaks(start).into_iter().map(lookup).collect();
                    let hashes: Vec<Hash> = wanted.iter().map(|&i| leaves[i as usize]).collect();
                    let proof: Vec<Hash> = shape.proof_nodes().into_iter().map(lookup).collect();
                    let mut seen = HashMap::new();
                    let rebuilt = shape.root(&known, &hashes, &proof, |n, h| {
                        seen.insert(n, *h);
                    });
                    assert_eq!(rebuilt, Ok(root), "{start}..{end} of {length}");
                    // The receiver learns every peak of `end`, so the next proof can start there.
                    for peak in peaks(end) {
                        assert_eq!(seen.get(&peak), Some(&lookup(peak)), "peak of {end}");
                    }
                    if let Some(first) = proof.first() {
                        let mut bad = proof.clone();
                        bad[0] = [first[0] ^ 1; 32];
                        assert_ne!(shape.root(&known, &hashes, &bad, |_, _| {}), Ok(root));
                        assert_eq!(
                            shape.root(&known, &hashes, &proof[1..], |_, _| {}),
                            Err(ProofError::WrongNodeCount)
                        );
                    }
                    if let Some(first) = hashes.first() {
                        let mut bad = hashes.clone();
                        bad[0] = [first[0] ^ 1; 32];
                        assert_ne!(shape.root(&known, &bad, &proof, |_, _| {}), Ok(root));
                    }
                }
            }
        }
    }

    #[test]
    fn sparse_shapes_refuse_leaves_outside_or_out_of_order() {
        let shape = |leaves: &'static [u64]| SparseShape {
            length: 20,
            start: 4,
            end: 10,
            leaves,
        };
        assert!(shape(&[4, 9]).check().is_ok());
        assert!(shape(&[3]).check().is_err());
        assert!(shape(&[10]).check().is_err());
        assert!(shape(&[6, 5]).check().is_err());
        assert!(shape(&[5, 5]).check().is_err());
        assert!(
            SparseShape {
                length: 8,
                start: 4,
                end: 10,
                leaves: &[]
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn sparse_proofs_share_upper_nodes() {
        // 1,000 entries spread evenly over 100,000: about log2(100) hashes each, not log2(100,000).
        let wanted: Vec<u64> = (0..1000).map(|i| i * 100 + 42).collect();
        let shape = SparseShape {
            length: 100_000,
            start: 0,
            end: 100_000,
            leaves: &wanted,
        };
        let count = shape.proof_nodes().len();
        assert!(count <= 8 * 1000, "{count} proof nodes for 1,000 entries");
    }
}
