//! Proof verification with arbitrary inputs. Half the runs feed it garbage (it must refuse
//! without panicking, whatever the lengths); the other half build a real tree, check that the
//! honest proof rebuilds its root, then change one hash and check that it no longer does.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use weft_storage::tree::{
    self, Frontier, Hash, Node, SparseShape, extension_nodes, proof_nodes, root_from_range,
};

const MAX_LEAVES: u64 = 300;

fn hashes(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<Hash>> {
    let count = u.int_in_range(0..=max)?;
    (0..count).map(|_| u.arbitrary()).collect()
}

fn garbage(u: &mut Unstructured<'_>) -> Result<()> {
    let (length, start, end): (u64, u64, u64) = (u.arbitrary()?, u.arbitrary()?, u.arbitrary()?);
    match u.int_in_range(0..=2u8)? {
        0 => {
            let leaves = hashes(u, 64)?;
            let _ = root_from_range(length, start, &leaves, &hashes(u, 130)?);
        }
        1 => {
            if let Ok(frontier) = Frontier::new(start, hashes(u, 64)?) {
                let _ = frontier.extended_root(length, &hashes(u, 70)?);
            }
        }
        _ => {
            let leaves: Vec<u64> = u.arbitrary()?;
            let shape = SparseShape {
                length,
                start,
                end,
                leaves: &leaves,
            };
            let known = hashes(u, 64)?;
            let leaf_hashes = hashes(u, leaves.len())?;
            let _ = shape.root(&known, &leaf_hashes, &hashes(u, 130)?, |_, _| {});
            if shape.check().is_ok() {
                let _ = shape.proof_nodes();
            }
        }
    }
    Ok(())
}

struct Tree {
    nodes: HashMap<Node, Hash>,
    root: Hash,
}

impl Tree {
    fn build(length: u64) -> Tree {
        let mut nodes = HashMap::new();
        let mut frontier = Frontier::default();
        for i in 0..length {
            let leaf = tree::leaf_hash(&i.to_le_bytes());
            nodes.insert(Node::leaf(i), leaf);
            frontier.push(leaf, |node, hash| {
                nodes.insert(node, hash);
            });
        }
        let root = frontier.root();
        Tree { nodes, root }
    }

    fn hash(&self, node: Node) -> Hash {
        self.nodes[&node]
    }

    fn leaves(&self, start: u64, end: u64) -> Vec<Hash> {
        (start..end).map(|i| self.hash(Node::leaf(i))).collect()
    }

    fn frontier(&self, length: u64) -> Frontier {
        let peaks = tree::peaks(length)
            .into_iter()
            .map(|n| self.hash(n))
            .collect();
        Frontier::new(length, peaks).expect("one hash per peak")
    }
}

/// Flips one bit of one of `lists`' hashes, chosen by the fuzzer; false when all are empty.
fn tamper(u: &mut Unstructured<'_>, lists: &mut [&mut Vec<Hash>]) -> Result<bool> {
    let total: usize = lists.iter().map(|l| l.len()).sum();
    if total == 0 {
        return Ok(false);
    }
    let mut pick = u.choose_index(total)?;
    let bit = u.int_in_range(0..=255u8)?;
    for list in lists.iter_mut() {
        if pick < list.len() {
            list[pick][usize::from(bit / 8)] ^= 1 << (bit % 8);
            return Ok(true);
        }
        pick -= list.len();
    }
    unreachable!("pick is below the total")
}

fn honest(u: &mut Unstructured<'_>) -> Result<()> {
    let length = u.int_in_range(0..=MAX_LEAVES)?;
    let whole = Tree::build(length);
    let start = u.int_in_range(0..=length)?;
    let end = u.int_in_range(start..=length)?;
    match u.int_in_range(0..=2u8)? {
        0 => {
            let mut leaves = whole.leaves(start, end);
            let mut nodes =
                proof_nodes::<()>(length, start, end, |n| Ok(whole.hash(n))).expect("proof");
            assert_eq!(
                root_from_range(length, start, &leaves, &nodes),
                Ok(whole.root)
            );
            if tamper(u, &mut [&mut leaves, &mut nodes])? {
                assert_ne!(
                    root_from_range(length, start, &leaves, &nodes),
                    Ok(whole.root),
                    "a changed hash still proves {start}..{end} of {length}"
                );
            }
        }
        1 => {
            let held = start;
            let mut extension: Vec<Hash> = extension_nodes(held, length)
                .expect("held <= length")
                .into_iter()
                .map(|n| whole.hash(n))
                .collect();
            let frontier = whole.frontier(held);
            assert_eq!(frontier.extended_root(length, &extension), Ok(whole.root));
            if tamper(u, &mut [&mut extension])? {
                assert_ne!(
                    frontier.extended_root(length, &extension),
                    Ok(whole.root),
                    "a changed extension still proves {held}..{length}"
                );
            }
        }
        _ => {
            let mut leaves = Vec::new();
            for leaf in start..end {
                if u.arbitrary::<bool>()? {
                    leaves.push(leaf);
                }
            }
            let shape = SparseShape {
                length,
                start,
                end,
                leaves: &leaves,
            };
            let mut known: Vec<Hash> = tree::peaks(start)
                .into_iter()
                .map(|n| whole.hash(n))
                .collect();
            let mut leaf_hashes: Vec<Hash> =
                leaves.iter().map(|&i| whole.hash(Node::leaf(i))).collect();
            let mut nodes: Vec<Hash> = shape
                .proof_nodes()
                .into_iter()
                .map(|n| whole.hash(n))
                .collect();
            assert_eq!(
                shape.root(&known, &leaf_hashes, &nodes, |_, _| {}),
                Ok(whole.root)
            );
            if tamper(u, &mut [&mut known, &mut leaf_hashes, &mut nodes])? {
                assert_ne!(
                    shape.root(&known, &leaf_hashes, &nodes, |_, _| {}),
                    Ok(whole.root),
                    "a changed hash still proves a sparse run of {length}"
                );
            }
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let _ = match u.arbitrary::<bool>() {
        Ok(true) => honest(&mut u),
        Ok(false) => garbage(&mut u),
        Err(_) => Ok(()),
    };
});
