//! The merge laws: replicas that receive the same writes, in any order, any number of times,
//! agree on every key; and a write supersedes every version its writer saw.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use weft_crdt::{AuthorId, Link, Op, Replica, Timestamp, VersionHash, VersionId, Write};

const AUTHORS: usize = 3;
const KEYS: &[&[u8]] = &[b"a", b"b", b"c"];

#[derive(Clone, Debug)]
enum Step {
    /// An author writes a key on its own replica.
    Write {
        author: usize,
        key: usize,
        delete: bool,
        value: u8,
        clock: u8,
    },
    /// An author receives some of what another author knows.
    Sync { from: usize, to: usize, mask: u64 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..AUTHORS, 0..KEYS.len(), any::<bool>(), any::<u8>(), any::<u8>()).prop_map(
            |(author, key, delete, value, clock)| Step::Write { author, key, delete, value, clock }
        ),
        1 => (0..AUTHORS, 0..AUTHORS, any::<u64>())
            .prop_map(|(from, to, mask)| Step::Sync { from, to, mask }),
    ]
}

type Log = Vec<(&'static [u8], Write<u8>)>;

/// Plays the steps: each author writes against its own partial knowledge, so writes are
/// concurrent, causal or both. Returns every write made.
fn history(steps: &[Step]) -> Log {
    let mut replicas: Vec<Replica<u8>> = vec![Replica::new(); AUTHORS];
    let mut known: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); AUTHORS];
    let mut seqs = [0u64; AUTHORS];
    let mut log: Log = Vec::new();
    for step in steps {
        match *step {
            Step::Write {
                author,
                key,
                delete,
                value,
                clock,
            } => {
                let id = VersionId {
                    author: AuthorId([author as u8; 32]),
                    seq: seqs[author],
                };
                seqs[author] += 1;
                let op = if delete { Op::Delete } else { Op::Put(value) };
                // Small clock values make equal timestamps common, so tie-breaks get exercised.
                let write = replicas[author].write(
                    KEYS[key],
                    id,
                    Timestamp(u64::from(clock % 8)),
                    op,
                    hash_of(id),
                );
                known[author].insert(log.len());
                log.push((KEYS[key], write));
            }
            Step::Sync { from, to, mask } => {
                let sent: Vec<usize> = known[from]
                    .iter()
                    .copied()
                    .filter(|i| mask & (1 << (i % 64)) != 0)
                    .collect();
                for i in sent {
                    let (key, write) = &log[i];
                    replicas[to].apply(key, write.clone());
                    known[to].insert(i);
                }
            }
        }
    }
    log
}

/// A hash unique to each version, as an entry's hash is.
fn hash_of(id: VersionId) -> VersionHash {
    let mut hash = [0x5a; 32];
    hash[0] = id.author.0[0];
    hash[1..9].copy_from_slice(&id.seq.to_be_bytes());
    VersionHash(hash)
}

/// Delivers the log in the order given by `keys` (a random sort key per delivery), with the
/// deliveries that `dups` names repeated at the end.
fn deliver(log: &Log, order: &[u32], dups: &[usize]) -> Replica<u8> {
    let mut indexes: Vec<usize> = (0..log.len()).collect();
    indexes.sort_by_key(|&i| order.get(i).copied().unwrap_or(0));
    if !log.is_empty() {
        indexes.extend(dups.iter().map(|&d| d % log.len()));
    }
    let mut replica = Replica::new();
    for i in indexes {
        let (key, write) = &log[i];
        replica.apply(key, write.clone());
    }
    replica
}

/// The definition, computed directly: a key's live versions are its known versions that no
/// known version's link replaces.
fn expected_live(log: &Log) -> BTreeMap<Vec<u8>, BTreeSet<VersionId>> {
    let links: Vec<(&[u8], Link, Timestamp, VersionId)> = log
        .iter()
        .flat_map(|(key, w)| {
            w.supersedes
                .iter()
                .map(move |link| (*key, *link, w.version.timestamp, w.version.id))
        })
        .collect();
    let mut live: BTreeMap<Vec<u8>, BTreeSet<VersionId>> = BTreeMap::new();
    for (key, write) in log {
        let replaced = links.iter().any(|(k, link, by, from)| {
            k == key && *from != write.version.id && link.replaces(&write.version, *by)
        });
        if !replaced {
            live.entry(key.to_vec())
                .or_default()
                .insert(write.version.id);
        }
    }
    live
}

/// The laws above hold trivially for histories without links; this checks the histories they
/// are tested on do supersede, often and across authors, so they test what they claim to.
#[test]
fn the_generated_histories_supersede_across_authors() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = prop::collection::vec(step(), 0..60);
    let (mut linked, mut across) = (0, 0);
    const CASES: usize = 400;
    for _ in 0..CASES {
        let steps = strategy.new_tree(&mut runner).expect("a history").current();
        let log = history(&steps);
        let links = log
            .iter()
            .flat_map(|(_, w)| w.supersedes.iter().map(move |link| (w.version.id, link.id)));
        let (mut any, mut other) = (false, false);
        for (by, of) in links {
            any = true;
            other |= by.author != of.author;
        }
        linked += usize::from(any);
        across += usize::from(other);
    }
    assert!(
        linked * 5 > CASES * 4,
        "{linked} of {CASES} histories have a link"
    );
    assert!(
        across * 2 > CASES,
        "{across} of {CASES} histories link another author's write"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn any_delivery_order_converges(
        steps in prop::collection::vec(step(), 0..60),
        orders in prop::collection::vec(prop::collection::vec(any::<u32>(), 60), 3),
        dups in prop::collection::vec(any::<usize>(), 0..20),
    ) {
        let log = history(&steps);
        let replicas: Vec<Replica<u8>> = orders
            .iter()
            .enumerate()
            .map(|(n, order)| deliver(&log, order, if n == 0 { &[] } else { &dups }))
            .collect();
        for replica in &replicas[1..] {
            prop_assert_eq!(replica.snapshot(), replicas[0].snapshot());
        }

        let live: BTreeMap<Vec<u8>, BTreeSet<VersionId>> = replicas[0]
            .registers()
            .map(|(key, reg)| (key.to_vec(), reg.live().iter().map(|v| v.id).collect()))
            .collect();
        prop_assert_eq!(live, expected_live(&log));
    }

    #[test]
    fn a_write_supersedes_what_its_writer_saw(steps in prop::collection::vec(step(), 0..60)) {
        let log = history(&steps);
        let replica = deliver(&log, &[], &[]);
        for (key, write) in &log {
            let live: Vec<VersionId> = replica
                .register(key)
                .map(|reg| reg.live().iter().map(|v| v.id).collect())
                .unwrap_or_default();
            for link in &write.supersedes {
                prop_assert!(
                    !live.contains(&link.id),
                    "{:?} is still live after being superseded",
                    link.id
                );
            }
        }
    }

    #[test]
    fn lww_read_is_the_greatest_live_version(steps in prop::collection::vec(step(), 0..60)) {
        let log = history(&steps);
        let replica = deliver(&log, &[], &[]);
        for (_, register) in replica.registers() {
            let best = register
                .live()
                .iter()
                .max_by_key(|v| (v.timestamp, v.id.author, v.id.seq))
                .expect("registers() lists only keys with a live version");
            prop_assert_eq!(register.winner(), Some(best));
            let expected = match &best.op { Op::Put(v) => Some(v), Op::Delete => None };
            prop_assert_eq!(register.value(), expected);
        }
    }
}

#[test]
fn a_late_superseded_version_stays_dead() {
    let author = |b| AuthorId([b; 32]);
    let v1 = VersionId {
        author: author(1),
        seq: 0,
    };
    let v2 = VersionId {
        author: author(2),
        seq: 0,
    };
    let old = Write {
        version: weft_crdt::Version {
            id: v1,
            timestamp: Timestamp(9),
            op: Op::Put(1u8),
            hash: hash_of(v1),
        },
        supersedes: vec![],
    };
    let new = Write {
        version: weft_crdt::Version {
            id: v2,
            timestamp: Timestamp(1),
            op: Op::Put(2u8),
            hash: hash_of(v2),
        },
        supersedes: vec![Link {
            id: v1,
            hash: Some(hash_of(v1)),
        }],
    };
    let mut replica = Replica::new();
    replica.apply(b"k", new);
    let applied = replica.apply(b"k", old);
    assert!(
        !applied.added,
        "a version that arrives already superseded must not become live"
    );
    // The newer write wins although its timestamp is smaller: it saw the old one.
    assert_eq!(replica.get(b"k"), Some(&2));
}

#[test]
fn a_tombstone_winner_reads_as_absent_but_keeps_concurrent_siblings() {
    let mut replica = Replica::new();
    let put = VersionId {
        author: AuthorId([1; 32]),
        seq: 0,
    };
    let del = VersionId {
        author: AuthorId([2; 32]),
        seq: 0,
    };
    replica.apply(
        b"k",
        Write {
            version: weft_crdt::Version {
                id: put,
                timestamp: Timestamp(1),
                op: Op::Put(7u8),
                hash: hash_of(put),
            },
            supersedes: vec![],
        },
    );
    replica.apply(
        b"k",
        Write {
            version: weft_crdt::Version {
                id: del,
                timestamp: Timestamp(2),
                op: Op::Delete,
                hash: hash_of(del),
            },
            supersedes: vec![],
        },
    );
    assert_eq!(replica.get(b"k"), None);
    assert_eq!(replica.register(b"k").map(|r| r.live().len()), Some(2));
}

/// Finding 5 of the hostile-members review: a member must not be able to kill another
/// author's future write of a key by linking to its id before it exists.
#[test]
fn a_link_cannot_supersede_a_version_its_writer_never_held() {
    let owner_next = VersionId {
        author: AuthorId([1; 32]),
        seq: 5,
    };
    let member = VersionId {
        author: AuthorId([2; 32]),
        seq: 0,
    };
    let guess = Link {
        id: owner_next,
        hash: Some(VersionHash([0; 32])),
    };
    let write = |id, timestamp, value, supersedes| Write {
        version: weft_crdt::Version {
            id,
            timestamp: Timestamp(timestamp),
            op: Op::Put(value),
            hash: hash_of(id),
        },
        supersedes,
    };
    let attack = write(member, 10, 1u8, vec![guess]);
    let later = write(owner_next, 20, 2u8, vec![]);
    for order in [[&attack, &later], [&later, &attack]] {
        let mut replica = Replica::new();
        for w in order {
            replica.apply(b"k", w.clone());
        }
        assert_eq!(
            replica.get(b"k"),
            Some(&2),
            "the owner's later write was killed"
        );
        assert_eq!(replica.register(b"k").map(|r| r.live().len()), Some(2));
    }

    // A link without a hash (an entry of the format before hashes) replaces only what is
    // stamped before its writer, in either order.
    let unhashed = |id| Link { id, hash: None };
    let old = write(owner_next, 5, 3u8, vec![]);
    let legacy = write(member, 10, 1u8, vec![unhashed(owner_next)]);
    for (target, survives) in [(&old, false), (&later, true)] {
        for order in [[&legacy, target], [target, &legacy]] {
            let mut replica = Replica::new();
            for w in order {
                replica.apply(b"k", w.clone());
            }
            let live = replica.register(b"k").map_or(0, |r| r.live().len());
            assert_eq!(live, if survives { 2 } else { 1 }, "{:?}", target.version);
        }
    }
}
