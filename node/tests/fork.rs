//! An equivocating author: two replicas hold two branches of its feed, and each serves its own
//! honestly. The replica on the shorter branch is sent entries that do not fit what it holds;
//! it must ask the sender for the fork proof and freeze the feed, never cut the honest sender
//! off, whether the entries came in a catch-up run or in gossip. A sender whose entries do not
//! fit and who proves no fork is still cut off.
//!
//! The replicas run the node's own sync client and server (`weft_node::sync`) with the wire
//! encoding between them and every message delivered in order.

use crate::common::{Id, options};
use std::collections::VecDeque;
use std::path::Path;
use std::time::Instant;

use weft_node::sync::{self, Action, Client, Fault, Holdings, Peer, Server, Verdict};
use weft_node::wire::{self, ForkProbe, Gossip, MAX_MESSAGE, Request, Response, WireRun};
use weft_storage::{Access, Charter, Ingested, Interest, NamespaceId, Run, Served, Store};

struct Replica {
    store: Store,
    client: Client<Id, u64>,
    server: Server,
}

/// What the two replicas did, for the assertions.
#[derive(Default)]
struct Log {
    penalized: Vec<(usize, usize, Fault)>,
    verdicts: Vec<(usize, Verdict)>,
    /// Fork search steps asked, and of them the asks for a branch where two histories part.
    fork_searches: usize,
    branches_asked: usize,
}

/// Replicas 0 and 1 of one open namespace; replica 0 holds `short` (a branch of the writer's
/// feed) and replica 1 holds `long`, another branch.
fn replicas(root: &Path, writer: &Writer, short: &Run, long: &Run) -> (NamespaceId, Vec<Replica>) {
    let ns = short.head.namespace;
    let charter = &writer.charter;
    let mut out = Vec::new();
    for (i, run) in [short, long].into_iter().enumerate() {
        let store = Store::init_joined(&root.join(format!("r{i}")), options(), charter, None)
            .expect("join");
        assert!(matches!(
            store.ingest(run).expect("a branch ingests"),
            Ingested::Appended { .. }
        ));
        let holdings = Holdings::of(&store).expect("holdings");
        let server = Server::new(Id(i).id_bytes(), holdings.namespaces.clone());
        out.push(Replica {
            client: Client::new(Id(i).id_bytes(), holdings),
            server,
            store,
        });
    }
    (ns, out)
}

/// A temp dir with the writer's two branches, and replica 0 holding the short one, replica 1
/// the long one.
fn two_branches() -> (tempfile::TempDir, Writer, NamespaceId, Vec<Replica>) {
    let root = tempfile::tempdir().expect("temp dir");
    let writer = branches(root.path());
    let (ns, replicas) = replicas(root.path(), &writer, &writer.short, &writer.long);
    (root, writer, ns, replicas)
}

/// The writer's feed: 3 common entries, then 1 on the short branch and 2 on the long one, as
/// when one key is used on two devices (or a backup restored and written to offline).
struct Writer {
    charter: Charter,
    common: Run,
    short: Run,
    long: Run,
}

fn branches(root: &Path) -> Writer {
    let (live, copy) = (root.join("writer"), root.join("copy"));
    let put = |store: &Store, key: &str| {
        store
            .put(&store.default_namespace(), key.as_bytes(), b"v")
            .expect("put");
    };
    let read = |store: &Store| {
        store
            .read_run(
                &store.default_namespace(),
                &store.author(),
                0,
                100,
                usize::MAX,
            )
            .expect("read")
            .expect("held")
    };
    let (charter, common) = {
        let store = Store::init(&live, options(), Access::Open).expect("init");
        for key in ["a", "b", "c"] {
            put(&store, key);
        }
        let charter = store
            .charter(&store.default_namespace())
            .expect("charter")
            .expect("charter");
        (charter, read(&store))
    };
    weft_storage::copy_data_dir(&live, &copy).expect("copy");
    let short = Store::open(&copy, options()).expect("open copy");
    put(&short, "d on the short branch");
    let long = Store::open(&live, options()).expect("reopen");
    put(&long, "d on the long branch");
    put(&long, "e");
    Writer {
        charter,
        common,
        short: read(&short),
        long: read(&long),
    }
}

/// Carries out `actions` of replica `me` and everything they lead to, in order.
fn drive(replicas: &mut [Replica], log: &mut Log, me: usize, actions: Vec<Action<Id, u64>>) {
    let mut todo: VecDeque<(usize, Action<Id, u64>)> =
        actions.into_iter().map(|action| (me, action)).collect();
    while let Some((me, action)) = todo.pop_front() {
        let (who, more) = match action {
            Action::Send {
                peer,
                request,
                pending,
            } => {
                if let Request::Fork { probe, .. } = &request {
                    log.fork_searches += 1;
                    if matches!(probe, ForkProbe::Branch(_)) {
                        log.branches_asked += 1;
                    }
                }
                let request: Request =
                    wire::decode(&wire::encode(&request), sync::MAX_REQUEST).expect("decodes");
                let server = &mut replicas[peer.0];
                let asker = Id(me).id_bytes();
                let ns = server
                    .server
                    .admit(&asker, &request, Instant::now())
                    .expect("admitted");
                let response = sync::answer(&server.store, &ns, request);
                server.server.answered(&asker);
                let response: Response =
                    wire::decode(&wire::encode(&response), MAX_MESSAGE).expect("decodes");
                (me, replicas[me].client.on_response(peer, pending, response))
            }
            Action::Store(job) => {
                let done = job.run(&replicas[me].store);
                (me, replicas[me].client.on_done(done))
            }
            Action::Penalize { peer, fault } => {
                log.penalized.push((me, peer.0, fault));
                (me, Vec::new())
            }
            Action::Publish { ns, message } => {
                let message: Gossip =
                    wire::decode(&wire::encode(&message), MAX_MESSAGE).expect("decodes");
                for other in (0..replicas.len()).filter(|&other| other != me) {
                    let more = replicas[other]
                        .client
                        .on_gossip(Id(me), 0, ns, message.clone());
                    todo.extend(more.into_iter().map(|action| (other, action)));
                }
                (me, Vec::new())
            }
            Action::Validate { verdict, .. } => {
                log.verdicts.push((me, verdict));
                (me, Vec::new())
            }
            Action::Answer { .. } => panic!("no remote reads are made here"),
        };
        todo.extend(more.into_iter().map(|action| (who, action)));
        for (i, replica) in replicas.iter_mut().enumerate() {
            todo.extend(replica.client.wants().into_iter().map(|action| (i, action)));
        }
    }
}

/// Replaces replica `i` with a sparse replica of every key that holds what replica `i` held.
fn make_sparse(root: &Path, charter: &Charter, replicas: &mut [Replica], i: usize) {
    let full = &replicas[i].store;
    let ns = full.default_namespace();
    let store = Store::init_joined(&root.join(format!("sparse{i}")), options(), charter, None)
        .expect("join");
    let every_key = Interest::new(
        [b"a", b"b", b"c", b"d", b"e"].map(|p| p.to_vec()),
        Vec::new(),
    );
    store.set_interest(&ns, every_key.clone()).expect("sparse");
    let writer = full
        .feeds(&ns)
        .expect("feeds")
        .into_iter()
        .find(|feed| feed.held > 0)
        .expect("a branch held")
        .head
        .author;
    let Served::Run(run) = full
        .read_sparse(&ns, &writer, 0, &every_key, 100, usize::MAX)
        .expect("read")
    else {
        panic!("the branch is served");
    };
    store.ingest_sparse(&run).expect("ingest");
    let holdings = Holdings::of(&store).expect("holdings");
    replicas[i] = Replica {
        server: Server::new(Id(i).id_bytes(), holdings.namespaces.clone()),
        client: Client::new(Id(i).id_bytes(), holdings),
        store,
    };
}

fn assert_nobody_cut_off(log: &Log) {
    assert!(
        log.penalized.is_empty(),
        "an honest peer was cut off: {:?}",
        log.penalized
    );
}

fn forks(replica: &Replica, ns: &NamespaceId) -> usize {
    replica.store.forks(ns).expect("forks").len()
}

/// The keys `replica` counts in `ns`.
fn keys(replica: &Replica, ns: &NamespaceId) -> Vec<Vec<u8>> {
    replica
        .store
        .scan(ns, b"", false)
        .expect("scan")
        .map(|item| item.expect("a key").0)
        .collect()
}

#[test]
fn a_run_from_another_branch_freezes_the_feed_and_blames_nobody() {
    let (_root, writer, ns, mut replicas) = two_branches();
    let short = &writer.short;
    let mut log = Log::default();

    // Only the replica on the short branch asks: the longer head is all it learns, so the
    // branch shows only when the entries after its own do not fit.
    let actions = replicas[0].client.connected(&Id(1));
    drive(&mut replicas, &mut log, 0, actions);

    assert_nobody_cut_off(&log);
    // Each side finds the other's head or entries do not fit, and asks for its branch.
    assert!(
        log.branches_asked >= 1,
        "the sender was asked for its branch"
    );
    assert_eq!(forks(&replicas[0], &ns), 1, "the asker froze the feed");
    assert_eq!(
        forks(&replicas[1], &ns),
        1,
        "the fork was gossiped to the sender"
    );
    // Both froze it where the branches part, so both count the same entries.
    for replica in &replicas {
        assert_eq!(replica.store.forks(&ns).expect("forks")[0].frozen_at, 3);
        assert_eq!(
            keys(replica, &ns),
            [&b"a"[..], b"b", b"c"],
            "only what both branches hold"
        );
    }
    let held = replicas[0]
        .store
        .head(&ns, &short.head.author)
        .expect("head");
    assert_eq!(
        held.map(|head| head.length),
        Some(4),
        "nothing of the other branch kept"
    );
}

/// A replica that held less than both branches share when the proof reached it fetches the
/// rest of the shared part, from a replica on either branch, and nothing past it: it ends
/// counting what the others count.
#[test]
fn a_replica_behind_catches_up_to_where_the_branches_part() {
    let (root, writer, ns, mut replicas) = two_branches();
    let long = &writer.long;
    let store = Store::init_joined(&root.path().join("late"), options(), &writer.charter, None)
        .expect("join");
    let first_two = replicas[1]
        .store
        .read_run(&ns, &long.head.author, 0, 2, usize::MAX)
        .expect("read")
        .expect("held");
    store.ingest(&first_two).expect("ingest");
    let holdings = Holdings::of(&store).expect("holdings");
    replicas.push(Replica {
        server: Server::new(Id(2).id_bytes(), holdings.namespaces.clone()),
        client: Client::new(Id(2).id_bytes(), holdings),
        store,
    });
    let mut log = Log::default();

    let actions = replicas[0].client.connected(&Id(1));
    drive(&mut replicas, &mut log, 0, actions);
    assert_eq!(
        forks(&replicas[2], &ns),
        1,
        "the proof was gossiped to the late replica"
    );
    let actions = replicas[2].client.connected(&Id(1));
    drive(&mut replicas, &mut log, 2, actions);

    assert_nobody_cut_off(&log);
    let held = |replica: &Replica| {
        replica
            .store
            .feeds(&ns)
            .expect("feeds")
            .into_iter()
            .find(|feed| feed.head.author == long.head.author)
            .map(|feed| feed.held)
    };
    assert_eq!(
        held(&replicas[2]),
        Some(3),
        "caught up to the fork, not past it"
    );
    assert_eq!(keys(&replicas[2], &ns), keys(&replicas[0], &ns));
    assert_eq!(keys(&replicas[2], &ns), [&b"a"[..], b"b", b"c"]);
}

#[test]
fn gossip_from_another_branch_is_dropped_unforwarded_and_freezes_the_feed() {
    let (_root, writer, ns, mut replicas) = two_branches();
    let long = &writer.long;
    let mut log = Log::default();

    // Replica 1 relays a push of the long branch's last two entries.
    let push = replicas[1]
        .store
        .read_run(&ns, &long.head.author, 3, 2, usize::MAX)
        .expect("read")
        .expect("held");
    let actions = replicas[0]
        .client
        .on_gossip(Id(1), 7, ns, Gossip::Push(WireRun::from_run(push)));
    drive(&mut replicas, &mut log, 0, actions);

    assert_nobody_cut_off(&log);
    assert_eq!(
        log.verdicts.first(),
        Some(&(0, Verdict::Ignore)),
        "a push that does not fit is neither forwarded nor blamed on its relay"
    );
    assert!(log.branches_asked >= 1);
    assert_eq!(forks(&replicas[0], &ns), 1);
}

/// A sparse replica verifies and relays pushes of feeds it does not hold in full, so it
/// cannot show its copy when searched: relaying a push of another branch must not get it cut
/// off, though the push is neither kept nor forwarded.
#[test]
fn a_sparse_relay_of_another_branch_is_not_blamed() {
    let (root, writer, ns, mut replicas) = two_branches();
    let long = &writer.long;
    // Replica 1 becomes a sparse replica of every key, holding the long branch so.
    make_sparse(root.path(), &writer.charter, &mut replicas, 1);
    let mut log = Log::default();

    let push = WireRun {
        head: wire::WireHead::from_head(&long.head),
        start: 3,
        entries: long.entries[3..].to_vec(),
        extension: Vec::new(),
    };
    let actions = replicas[0]
        .client
        .on_gossip(Id(1), 7, ns, Gossip::Push(push));
    drive(&mut replicas, &mut log, 0, actions);

    assert_nobody_cut_off(&log);
    assert!(log.fork_searches >= 1, "the relay was searched");
    assert_eq!(log.verdicts.first(), Some(&(0, Verdict::Ignore)));
    assert_eq!(
        replicas[0]
            .store
            .head(&ns, &long.head.author)
            .expect("head")
            .map(|head| head.length),
        Some(4),
        "nothing of the other branch kept"
    );
}

/// A sparse replica keeps only the peaks of where it has scanned to, so it can see that a
/// full replica's copy parts from its own but not where, nor which is wrong: it must blame
/// nobody and stop fetching the feed from that peer, not cut an honest sender off.
#[test]
fn a_sparse_replica_served_another_branch_blames_nobody() {
    let (root, writer, ns, mut replicas) = two_branches();
    // Replica 0 becomes a sparse replica of every key, holding the short branch so.
    make_sparse(root.path(), &writer.charter, &mut replicas, 0);
    let mut log = Log::default();

    let actions = replicas[0].client.connected(&Id(1));
    drive(&mut replicas, &mut log, 0, actions);

    assert_nobody_cut_off(&log);
    let searches = log.fork_searches;
    assert!(searches >= 1, "the sender's copy was probed");
    assert_eq!(
        keys(&replicas[0], &ns),
        [&b"a"[..], b"b", b"c", b"d on the short branch"],
        "nothing of the other branch kept"
    );
    // Asked again later, it does not fetch the other branch once more.
    let actions = replicas[0].client.connected(&Id(1));
    drive(&mut replicas, &mut log, 0, actions);
    assert_eq!(log.fork_searches, searches, "the feed is left");
    assert_nobody_cut_off(&log);
}

#[test]
fn entries_that_do_not_fit_and_prove_no_fork_are_still_blamed() {
    let root = tempfile::tempdir().expect("temp dir");
    let writer = branches(root.path());
    // Replica 0 holds the common entries, replica 1 the short branch: no fork between them.
    let (ns, mut replicas) = replicas(root.path(), &writer, &writer.common, &writer.short);
    let mut log = Log::default();

    // The short branch's next entry, tampered with in transit by replica 1.
    let mut forged = writer.short.clone();
    forged.start = 3;
    forged.entries = vec![forged.entries[3].clone()];
    forged.entries[0][5] ^= 1;
    forged.extension.clear();
    let actions =
        replicas[0]
            .client
            .on_gossip(Id(1), 8, ns, Gossip::Push(WireRun::from_run(forged)));
    drive(&mut replicas, &mut log, 0, actions);
    assert!(
        log.fork_searches >= 1,
        "the relay's tree was searched first"
    );
    assert_eq!(
        log.branches_asked, 0,
        "and agreed everywhere with what is held"
    );
    assert_eq!(forks(&replicas[0], &ns), 0);
    assert!(
        matches!(log.penalized.as_slice(), [(0, 1, Fault::Invalid(_))]),
        "{:?}",
        log.penalized
    );
}
