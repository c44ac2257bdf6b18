//! Writes the seed corpus of the cargo-fuzz targets in `fuzz/`: one real instance of every
//! message and record they decode, so fuzzing starts from valid layouts.
//!
//! `cargo run -p weft-node --example fuzz_seeds -- fuzz/corpus`

use std::path::{Path, PathBuf};

use ed25519_dalek::{Signer, SigningKey};
use weft_node::access::{self, Cap};
use weft_node::api::ApiRequest;
use weft_node::ticket::Ticket;
use weft_node::wire::{
    self, AuthorRange, ForkAnswer, ForkProbe, Gossip, RangeAnswer, RangePart, Refusal, Request,
    Response, Topic, WireHead, WireRun,
};
use weft_node::{Multiaddr, PeerId};
use weft_storage::tree::{self, Frontier, Hash, Node};
use weft_storage::{
    AuthorId, Branch, Charter, Entry, ForkProof, Grant, Link, Membership, Mode, NamespaceId, Op,
    SignedHead, Timestamp, VersionHash, VersionId,
};

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/corpus".into()),
    );
    let owner = SigningKey::from_bytes(&[1; 32]);
    let author = SigningKey::from_bytes(&[2; 32]);
    let ns = NamespaceId(owner.verifying_key().to_bytes());
    let entries: Vec<Vec<u8>> = (0..5u64)
        .map(|i| {
            Entry {
                timestamp: Timestamp(7_386_690_599_959_157_260 + i),
                key: format!("key/{i}").as_bytes(),
                op: if i == 3 {
                    Op::Delete
                } else {
                    Op::Put(b"value")
                },
                // The last entry is of the format before links carried hashes.
                supersedes: vec![Link {
                    id: VersionId {
                        author: AuthorId(author.verifying_key().to_bytes()),
                        seq: i,
                    },
                    hash: (i < 4).then_some(VersionHash([i as u8; 32])),
                }],
            }
            .encode()
        })
        .collect();
    let (nodes, head) = feed(&author, ns, &entries);
    let charter = Charter::sign(
        &owner,
        Mode::Closed {
            owner: AuthorId(owner.verifying_key().to_bytes()),
        },
    );

    let (a, b) = (PeerId::random(), PeerId::random());
    let topic = Topic::of(&ns);
    let cap = Cap::new(&ns, &a.to_bytes(), &b.to_bytes());
    let run = WireRun {
        head: WireHead::from_head(&head),
        start: 2,
        entries: entries[2..].to_vec(),
        extension: Vec::new(),
    };
    let fork = fork_proof(&author, ns, &nodes, &head);
    write(
        &root,
        "wire",
        "request-heads",
        wire::encode(&Request::Heads {
            topic,
            cap,
            after: None,
            digest: Some([5; 32]),
        }),
    )?;
    write(
        &root,
        "wire",
        "request-run",
        wire::encode(&Request::Run {
            topic,
            cap,
            author: head.author,
            start: 2,
            max_entries: 100,
        }),
    )?;
    write(
        &root,
        "wire",
        "request-sparse",
        wire::encode(&Request::Sparse {
            topic,
            cap,
            author: head.author,
            start: 0,
            prefixes: vec![b"key/".to_vec()],
            max_entries: 100,
        }),
    )?;
    write(
        &root,
        "wire",
        "request-key",
        wire::encode(&Request::Key {
            topic,
            cap,
            key: b"key/1".to_vec(),
        }),
    )?;
    write(
        &root,
        "wire",
        "request-fork",
        wire::encode(&Request::Fork {
            topic,
            cap,
            author: head.author,
            probe: ForkProbe::Nodes(vec![(2, 0), (0, 4)]),
        }),
    )?;
    write(
        &root,
        "wire",
        "response-fork",
        wire::encode(&Response::Fork(ForkAnswer::Branch(Box::new(
            fork.branches[0].clone(),
        )))),
    )?;
    write(
        &root,
        "wire",
        "response-heads",
        wire::encode(&Response::Heads {
            heads: vec![WireHead::from_head(&head)],
            more: false,
            forks: vec![fork.clone()],
        }),
    )?;
    write(
        &root,
        "wire",
        "request-ranges",
        wire::encode(&Request::Ranges {
            topic,
            cap,
            ranges: vec![AuthorRange {
                after: None,
                until: Some(head.author),
            }],
        }),
    )?;
    write(
        &root,
        "wire",
        "response-ranges",
        wire::encode(&Response::Ranges {
            answers: vec![
                RangeAnswer::Heads(vec![WireHead::from_head(&head)]),
                RangeAnswer::Split(vec![
                    RangePart {
                        until: Some(head.author),
                        digest: [6; 16],
                    },
                    RangePart {
                        until: None,
                        digest: [7; 16],
                    },
                ]),
            ],
            forks: Vec::new(),
        }),
    )?;
    write(
        &root,
        "wire",
        "response-run",
        wire::encode(&Response::Run(Some(run.clone()))),
    )?;
    write(
        &root,
        "wire",
        "response-refused",
        wire::encode(&Response::Refused(Refusal::NotShared)),
    )?;
    write(
        &root,
        "wire",
        "gossip-push",
        wire::encode(&Gossip::Push(run)),
    )?;
    write(
        &root,
        "wire",
        "gossip-fork",
        wire::encode(&Gossip::Fork(Box::new(fork.clone()))),
    )?;
    write(
        &root,
        "wire",
        "api-put",
        wire::encode(&ApiRequest::Write {
            ns,
            ops: vec![(b"key/1".to_vec(), Op::Put(b"value".to_vec()))],
        }),
    )?;
    let sealed_ns = NamespaceId([3; 32]);
    let sealed = access::seal(
        &sealed_ns,
        &wire::encode(&Gossip::Fork(Box::new(fork.clone()))),
    );
    write(&root, "wire", "sealed-fork", sealed)?;

    for (i, entry) in entries.iter().enumerate() {
        write(&root, "disk", &format!("entry-{i}"), entry.clone())?;
    }
    let grant = Grant {
        prefixes: vec![b"notes/".to_vec()],
        expires: Some(Timestamp(7_386_690_599_959_157_260)),
    };
    write(
        &root,
        "disk",
        "granted",
        Membership::Granted(grant.clone()).encode(),
    )?;
    write(
        &root,
        "disk",
        "revoked",
        Membership::Revoked {
            grant: Some(grant),
            until: 4,
        }
        .encode(),
    )?;
    let mut row = 4u64.to_le_bytes().to_vec();
    row.extend_from_slice(&tree::leaf_hash(&entries[4]));
    row.extend_from_slice(&entries[4]);
    write(&root, "disk", "row-4", row)?;

    // The signed target asserts that nothing it decodes verifies: seed it with real layouts
    // whose signatures are over other bytes, so no small mutation repairs them.
    let unrelated = SigningKey::from_bytes(&[4; 32])
        .sign(b"not a head")
        .to_bytes();
    let mut bad_head = head.clone();
    bad_head.signature = unrelated;
    write(&root, "signed", "head", tagged(0, postcard(&bad_head)))?;
    let mut bad_charter = charter.clone();
    bad_charter.signature = unrelated;
    write(
        &root,
        "signed",
        "charter",
        tagged(1, postcard(&bad_charter)),
    )?;
    let mut bad_fork = fork;
    for branch in &mut bad_fork.branches {
        branch.head.signature = unrelated;
    }
    write(&root, "signed", "fork", tagged(2, postcard(&bad_fork)))?;
    write(
        &root,
        "signed",
        "wire-head",
        tagged(3, wire::encode(&WireHead::from_head(&bad_head))),
    )?;

    let address: Multiaddr = format!("/ip4/127.0.0.1/tcp/4919/p2p/{a}")
        .parse()
        .map_err(std::io::Error::other)?;
    let ticket = Ticket {
        charter,
        peers: vec![address.clone()],
        author_key: Some([9; 32]),
        bootstrap: vec![address],
    };
    write(
        &root,
        "ticket",
        "write-ticket",
        ticket.to_string().into_bytes(),
    )?;
    write(&root, "ticket", "namespace", ns.to_string().into_bytes())?;

    // proofs: the first byte picks honest (odd) or garbage (even), the rest drive the shape.
    write(
        &root,
        "proofs",
        "honest",
        vec![1, 40, 0, 3, 0, 30, 0, 1, 7, 9, 200, 3],
    )?;
    write(&root, "proofs", "garbage", vec![0; 64])?;
    Ok(())
}

/// A feed of `entries` signed by `key`: every node hash, and the head.
fn feed(key: &SigningKey, ns: NamespaceId, entries: &[Vec<u8>]) -> (Vec<(Node, Hash)>, SignedHead) {
    let mut nodes = Vec::new();
    let mut frontier = Frontier::default();
    for (i, entry) in entries.iter().enumerate() {
        let leaf = tree::leaf_hash(entry);
        nodes.push((Node::leaf(i as u64), leaf));
        frontier.push(leaf, |node, hash| nodes.push((node, hash)));
    }
    let head = SignedHead::sign(key, ns, entries.len() as u64, frontier.root());
    (nodes, head)
}

/// A proof that `key` also signed a 2-entry history that parts from `head`'s after its first
/// entry.
fn fork_proof(
    key: &SigningKey,
    ns: NamespaceId,
    nodes: &[(Node, Hash)],
    head: &SignedHead,
) -> ForkProof {
    let hash = |wanted: Node| {
        nodes
            .iter()
            .find(|(node, _)| *node == wanted)
            .map(|(_, hash)| *hash)
            .expect("a complete node")
    };
    let first = hash(Node::leaf(0));
    let other = b"another second entry".to_vec();
    let mut frontier = Frontier::new(1, vec![first]).expect("one peak");
    frontier.push(tree::leaf_hash(&other), |_, _| {});
    ForkProof {
        agreed: 1,
        common: vec![first],
        branches: [
            Branch {
                head: head.clone(),
                leaf: hash(Node::leaf(1)),
                extension: tree::extension_nodes(2, head.length)
                    .expect("2 <= length")
                    .into_iter()
                    .map(hash)
                    .collect(),
            },
            Branch {
                head: SignedHead::sign(key, ns, 2, frontier.root()),
                leaf: tree::leaf_hash(&other),
                extension: Vec::new(),
            },
        ],
    }
}

fn postcard<T: serde::Serialize>(value: &T) -> Vec<u8> {
    wire::encode(value)
}

fn tagged(tag: u8, mut body: Vec<u8>) -> Vec<u8> {
    body.insert(0, tag);
    body
}

fn write(root: &Path, target: &str, name: &str, bytes: Vec<u8>) -> std::io::Result<()> {
    let dir = root.join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}
