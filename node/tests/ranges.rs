//! Heads reconciliation between two replicas of a namespace of many authors (issue 18, item 1).
//! A replica that missed a few feeds' appends learns them by ranges of feeds, for bytes that
//! grow with the number of feeds changed times the log of the number of authors; one that
//! differs in most feeds is sent every head, page by page, as before.
//!
//! The two replicas run the node's own sync client and server (`weft_node::sync`) with the
//! wire encoding between them and every message delivered in order.

use crate::common::{Id, options};
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use weft_node::sync::{self, Action, Client, Fault, Holdings, Peer, Server};
use weft_node::wire::{self, MAX_MESSAGE, Request, Response};
use weft_storage::tree::{self, Frontier};
use weft_storage::{Access, Entry, NamespaceId, Op, Run, SignedHead, Store, Timestamp};

struct Replica {
    store: Store,
    client: Client<Id, u64>,
    server: Server,
}

impl Replica {
    fn of(store: Store, id: usize) -> Replica {
        let holdings = Holdings::of(&store).expect("holdings");
        Replica {
            server: Server::new(Id(id).id_bytes(), holdings.namespaces.clone()),
            client: Client::new(Id(id).id_bytes(), holdings),
            store,
        }
    }
}

/// The feed of author number `author` in `ns`, `length` entries long, signed with a key made
/// from the number.
fn feed(ns: NamespaceId, author: u64, length: u64) -> Run {
    let key = SigningKey::from_bytes(
        blake3::Hasher::new_derive_key("weft test ranges author v1")
            .update(&author.to_le_bytes())
            .finalize()
            .as_bytes(),
    );
    let entries: Vec<Vec<u8>> = (0..length)
        .map(|i| {
            let key = format!("author {author} entry {i}");
            Entry {
                timestamp: Timestamp((1 << 40) + i),
                key: key.as_bytes(),
                op: Op::Put(&b"v"[..]),
                supersedes: Vec::new(),
            }
            .encode()
        })
        .collect();
    let mut frontier = Frontier::default();
    for entry in &entries {
        frontier.push(tree::leaf_hash(entry), |_, _| {});
    }
    Run {
        head: SignedHead::sign(&key, ns, length, frontier.root()),
        start: 0,
        entries,
        extension: Vec::new(),
    }
}

/// Two replicas of one open namespace, each holding the same `authors` feeds of one entry.
fn pair(root: &Path, authors: u64) -> (NamespaceId, Vec<Replica>) {
    let first = Store::init(&root.join("r0"), options(), Access::Open).expect("init");
    let ns = first.default_namespace();
    let charter = first.charter(&ns).expect("charter").expect("charter");
    let second = Store::init_joined(&root.join("r1"), options(), &charter, None).expect("join");
    for author in 0..authors {
        let run = feed(ns, author, 1);
        first.ingest(&run).expect("ingest");
        second.ingest(&run).expect("ingest");
    }
    (ns, vec![Replica::of(first, 0), Replica::of(second, 1)])
}

/// What replica 1 sent and got while it exchanged heads with replica 0 and fetched what it
/// lacked: bytes and requests by kind.
#[derive(Default, Debug)]
struct Traffic {
    bytes: BTreeMap<&'static str, usize>,
    requests: BTreeMap<&'static str, usize>,
    penalized: Vec<Fault>,
}

impl Traffic {
    /// The bytes of the heads exchange: every request and answer about heads or ranges.
    fn heads_bytes(&self) -> usize {
        ["heads", "ranges"]
            .iter()
            .filter_map(|kind| self.bytes.get(kind))
            .sum()
    }
}

/// Replica 1 connects to replica 0: carries out what follows, in order, to the end.
fn connect(replicas: &mut [Replica]) -> Traffic {
    let mut traffic = Traffic::default();
    // Time passes as fast as the server's rate allows: the test is not about its limits.
    let mut now = Instant::now();
    let mut todo: VecDeque<Action<Id, u64>> = replicas[1].client.connected(&Id(0)).into();
    while let Some(action) = todo.pop_front() {
        match action {
            Action::Send {
                peer,
                request,
                pending,
            } => {
                assert_eq!(peer, Id(0));
                let kind = request.kind();
                let bytes = wire::encode(&request);
                let request: Request = wire::decode(&bytes, sync::MAX_REQUEST).expect("decodes");
                let asker = Id(1).id_bytes();
                let server = &mut replicas[0];
                now += Duration::from_millis(2);
                let ns = server
                    .server
                    .admit(&asker, &request, now)
                    .expect("admitted");
                let response = sync::answer(&server.store, &ns, request);
                server.server.answered(&asker);
                let answer = wire::encode(&response);
                *traffic.bytes.entry(kind).or_default() += bytes.len() + answer.len();
                *traffic.requests.entry(kind).or_default() += 1;
                let response: Response = wire::decode(&answer, MAX_MESSAGE).expect("decodes");
                todo.extend(replicas[1].client.on_response(peer, pending, response));
            }
            Action::Store(job) => {
                let done = job.run(&replicas[1].store);
                todo.extend(replicas[1].client.on_done(done));
            }
            Action::Penalize { fault, .. } => traffic.penalized.push(fault),
            Action::Publish { .. } | Action::Validate { .. } | Action::Answer { .. } => {}
        }
        todo.extend(replicas[1].client.wants());
    }
    traffic
}

/// Replica 0 gets `changed` of its feeds one entry longer (spread over the author order);
/// replica 1 then connects. Returns what that cost, after checking it fetched each change.
fn missed_appends(authors: u64, changed: u64) -> Traffic {
    let root = tempfile::tempdir().expect("temp dir");
    let (ns, mut replicas) = pair(root.path(), authors);
    let changed: Vec<u64> = (0..changed).map(|i| i * authors / changed).collect();
    for &author in &changed {
        replicas[0]
            .store
            .ingest(&feed(ns, author, 2))
            .expect("ingest");
    }
    let traffic = connect(&mut replicas);
    assert!(traffic.penalized.is_empty(), "{:?}", traffic.penalized);
    for &author in &changed {
        let head = feed(ns, author, 2).head;
        let held = replicas[1].store.head(&ns, &head.author).expect("head");
        assert_eq!(held.map(|head| head.length), Some(2), "author {author}");
    }
    traffic
}

#[test]
fn a_few_changed_feeds_among_many_cost_what_changed_times_log_authors() {
    let small = missed_appends(500, 3);
    let large = missed_appends(4000, 3);
    let every_head = missed_appends(4000, 4000);
    println!(
        "heads exchange bytes, 3 of 500 authors changed: {} ({:?}); 3 of 4,000: {} ({:?}); \
         all 4,000: {} ({:?})",
        small.heads_bytes(),
        small.requests,
        large.heads_bytes(),
        large.requests,
        every_head.heads_bytes(),
        every_head.requests,
    );
    // Sending every head costs about 130 bytes per author: eight times the authors would
    // cost eight times as much; by ranges it grows by one level of splits.
    assert!(
        large.heads_bytes() < small.heads_bytes() * 2,
        "{} bytes at 4,000 authors against {} at 500",
        large.heads_bytes(),
        small.heads_bytes()
    );
    assert!(
        large.heads_bytes() * 20 < every_head.heads_bytes(),
        "{} bytes for 3 changes against {} for every head",
        large.heads_bytes(),
        every_head.heads_bytes()
    );
}

#[test]
fn replicas_that_differ_in_most_feeds_exchange_every_head_page_by_page() {
    let traffic = missed_appends(300, 300);
    // The digest differs, the first split shows most parts differ, and one page of every
    // head follows: no descent into each part.
    assert_eq!(traffic.requests.get("heads"), Some(&2), "{traffic:?}");
    assert_eq!(traffic.requests.get("ranges"), None, "{traffic:?}");
}

#[test]
fn a_feed_only_the_asker_holds_ends_the_exchange() {
    let root = tempfile::tempdir().expect("temp dir");
    let (ns, mut replicas) = pair(root.path(), 200);
    replicas[1]
        .store
        .ingest(&feed(ns, 1000, 1))
        .expect("ingest");
    let traffic = connect(&mut replicas);
    assert!(traffic.penalized.is_empty(), "{:?}", traffic.penalized);
    assert_eq!(replicas[1].client.head_exchanges(), 1, "{traffic:?}");
    assert!(!traffic.bytes.contains_key("run"), "nothing to fetch");
}
