//! The checks the fuzz targets in `fuzz/` run, one function per target, kept here so that
//! `cargo test` replays every seed of `fuzz/corpus/` through the same code on stable Rust,
//! and the nightly fuzzer explores from there. Each takes the raw input bytes and panics only
//! on a real bug: a decoder that panics, a value that does not round-trip, a forgery that
//! verifies, a tampered proof that still rebuilds its root.

use std::collections::HashMap;

use arbitrary::{Result, Unstructured};
use weft_node::access;
use weft_node::api::{ApiRequest, MAX_FRAME};
use weft_node::ticket::Ticket;
use weft_node::wire::{self, Gossip, MAX_MESSAGE, MAX_PUSH, Request, Response, WireHead};
use weft_storage::tree::{
    self, Frontier, Hash, Node, SparseShape, extension_nodes, proof_nodes, root_from_range,
};
use weft_storage::{Charter, Entry, ForkProof, Membership, NamespaceId, SignedHead, ids, tables};

fn round_trip<T>(bytes: &[u8], max: usize)
where
    T: serde::Serialize + for<'de> serde::Deserialize<'de> + PartialEq + std::fmt::Debug,
{
    if let Ok(message) = wire::decode::<T>(bytes, max) {
        let again: T = wire::decode(&wire::encode(&message), max).expect("re-encoded message");
        assert_eq!(again, message);
    }
}

/// Every message a peer can send: sync requests and responses, and sealed gossip. Decoding
/// must refuse or accept without panicking, and whatever it accepts must encode back to a
/// message that decodes to itself. The local API's frames are here too: a local process is
/// less trusted than the code reading them.
pub fn wire(bytes: &[u8]) {
    round_trip::<Request>(bytes, MAX_MESSAGE);
    round_trip::<Response>(bytes, MAX_MESSAGE);
    round_trip::<Gossip>(bytes, MAX_PUSH);
    // A fixed namespace: the fuzzer cannot forge the MAC, so this mostly checks that
    // unsealing refuses every length and layout without panicking.
    if let Ok(opened) = access::unseal(&NamespaceId([3; 32]), bytes) {
        round_trip::<Gossip>(&opened, MAX_PUSH);
    }
    let _ = wire::decode::<ApiRequest>(bytes, MAX_FRAME);
}

/// Bytes read back from disk: entries, entry rows and membership records. A damaged file must
/// give an error, never a panic, and whatever decodes re-encodes to the same value.
pub fn disk(bytes: &[u8]) {
    if let Ok(entry) = Entry::decode(bytes) {
        let again = entry.encode();
        assert_eq!(Entry::decode(&again), Ok(entry));
        assert!(again.len() <= bytes.len(), "re-encoding grew an entry");
    }
    if let Ok(membership) = Membership::decode(bytes) {
        assert_eq!(Membership::decode(&membership.encode()), Ok(membership));
    }
    if let Some((seq, row)) = bytes.split_first_chunk::<8>()
        && let Some(split) = tables::split_row(u64::from_le_bytes(*seq), row)
    {
        let _ = Entry::decode(split.entry);
    }
}

/// Signed statements a peer can hand us: heads, charters and fork proofs. Verification of
/// arbitrary values must refuse without panicking, and the fuzzer must never find a value
/// that verifies (it holds no key), which would mean a check is missing.
pub fn signed(bytes: &[u8]) {
    let Some((&kind, body)) = bytes.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            if let Ok(head) = postcard::from_bytes::<SignedHead>(body) {
                assert!(head.verify().is_err(), "forged head verified: {head:?}");
            }
        }
        1 => {
            if let Ok(charter) = postcard::from_bytes::<Charter>(body) {
                assert!(charter.verify().is_err(), "forged charter verified");
            }
        }
        2 => {
            if let Ok(proof) = postcard::from_bytes::<ForkProof>(body) {
                assert!(proof.verify().is_err(), "forged fork proof verified");
            }
        }
        _ => {
            if let Ok(head) = wire::decode::<WireHead>(body, 1024) {
                let head = head.into_head(NamespaceId([5; 32]));
                assert!(head.verify().is_err(), "forged wire head verified");
            }
        }
    }
}

/// What a user pastes: tickets and ids. Whatever parses prints back as itself; the seeds are
/// real tickets, so the fuzzer reaches the address parsing behind the charter check.
pub fn ticket(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(ticket) = text.parse::<Ticket>() {
        assert_eq!(ticket.to_string().parse::<Ticket>(), Ok(ticket));
    }
    if let Ok(ns) = text.parse::<NamespaceId>() {
        assert_eq!(ns.to_string().parse::<NamespaceId>(), Ok(ns));
    }
    if let Ok(author) = ids::parse_author(text) {
        assert_eq!(ids::parse_author(&author.to_string()), Ok(author));
    }
}

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

/// Proof verification with arbitrary inputs. Half the runs feed it garbage (it must refuse
/// without panicking, whatever the lengths); the other half build a real tree, check that the
/// honest proof rebuilds its root, then change one hash and check that it no longer does.
pub fn proofs(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = match u.arbitrary::<bool>() {
        Ok(true) => honest(&mut u),
        Ok(false) => garbage(&mut u),
        Err(_) => Ok(()),
    };
}
