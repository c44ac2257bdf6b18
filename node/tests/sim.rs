//! A seeded simulation of catch-up: five replicas, their `Scheduler`s and the wire messages
//! between them, delivered out of order, some lost, some twice, across partitions that come
//! and go, while replicas write, delete, and restart from what their stores persisted. After
//! the last heal every seed must converge to one view, and every acknowledged write must be
//! live or superseded by a later one on every replica.
//!
//! A failure prints its seed; rerun one exactly with
//! `WEFT_SIM_SEED=<seed> cargo test -p weft-node --test sim`, or run many more with
//! `WEFT_SIM_COUNT=<n> cargo test -p weft-node --test sim` (CI runs 6).

use std::collections::HashMap;

use weft_node::PeerId;
use weft_node::sync::Scheduler;
use weft_node::wire::{
    self, Cap, MAX_MESSAGE, Refusal, Request, Response, Topic, WireHead, WireRun,
};
use weft_storage::{Access, IngestError, Ingested, NamespaceId, Op, Options, Store, VersionId};

const REPLICAS: usize = 5;

/// xorshift64*: enough randomness for scheduling, and no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone)]
enum Message {
    Request {
        from: usize,
        to: usize,
        id: u64,
        bytes: Vec<u8>,
    },
    Response {
        from: usize,
        to: usize,
        id: u64,
        bytes: Vec<u8>,
    },
}

struct Replica {
    dir: std::path::PathBuf,
    peer: PeerId,
    store: Store,
    syncer: Scheduler<usize>,
    /// Requests in flight: id → (peer, request).
    pending: HashMap<u64, (usize, Request)>,
}

fn serve(
    store: &Store,
    ns: &NamespaceId,
    (asker, server): (&PeerId, &PeerId),
    request: &Request,
    rng: &mut Rng,
) -> Response {
    if !request.credentials().1.admits(ns, asker, server) {
        return Response::Refused(Refusal::NotShared);
    }
    match request {
        Request::Heads { .. } => Response::Heads {
            heads: store
                .feeds(ns)
                .expect("feeds")
                .iter()
                .map(|f| WireHead::from_head(&f.head))
                .collect(),
            more: false,
            forks: Vec::new(),
        },
        Request::Run { author, start, .. } => {
            // Small, varying runs, so that batching and pipelining are exercised.
            let max = 1 + rng.below(40) as usize;
            let run = store
                .read_run(ns, author, *start, max, usize::MAX)
                .expect("read_run");
            Response::Run(run.map(WireRun::from_run))
        }
        // Every replica here is full; sparse replicas have their own tests.
        Request::Sparse { .. } | Request::Key { .. } => Response::Refused(Refusal::NotShared),
    }
}

/// A key with every live version's id and value.
type Versions = (Vec<u8>, Vec<(weft_storage::VersionId, Option<Vec<u8>>)>);

fn digest(store: &Store, ns: &NamespaceId) -> Vec<Versions> {
    store
        .scan(ns, b"", false)
        .expect("scan")
        .map(|row| {
            let (key, _) = row.expect("row");
            let versions = store
                .get_all(ns, &key)
                .expect("get_all")
                .into_iter()
                .map(|v| (v.id, v.value))
                .collect();
            (key, versions)
        })
        .collect()
}

fn options() -> Options {
    Options {
        durable: false,
        ..Options::default()
    }
}

fn replica(dir: std::path::PathBuf, peer: PeerId, store: Store) -> Replica {
    let mut syncer = Scheduler::default();
    let ns = store.default_namespace();
    for feed in store.feeds(&ns).expect("feeds") {
        syncer.set_held((ns, feed.head.author), feed.held);
    }
    Replica {
        dir,
        peer,
        store,
        syncer,
        pending: HashMap::new(),
    }
}

/// A request from `from` to `to`, queued, with `from` waiting for its answer.
fn ask(
    queue: &mut Vec<Message>,
    replicas: &mut [Replica],
    from: usize,
    to: usize,
    request: Request,
    id: u64,
) {
    replicas[from].pending.insert(id, (to, request.clone()));
    queue.push(Message::Request {
        from,
        to,
        id,
        bytes: wire::encode(&request),
    });
}

fn simulate(seed: u64) {
    let mut rng = Rng(seed | 1);
    let root = tempfile::tempdir().expect("temp dir");
    let first = Store::init(&root.path().join("r0"), options(), Access::Open).expect("init");
    let ns = first.default_namespace();
    let charter = first.charter(&ns).expect("known").expect("a charter");
    let topic = Topic::of(&ns);
    let mut replicas = vec![replica(root.path().join("r0"), PeerId::random(), first)];
    for i in 1..REPLICAS {
        let dir = root.path().join(format!("r{i}"));
        let store = Store::init_joined(&dir, options(), &charter, None).expect("join");
        replicas.push(replica(dir, PeerId::random(), store));
    }
    let mut queue: Vec<Message> = Vec::new();
    let mut next_id = 0u64;
    let writing_steps = 400;
    // Which side of the partition each replica is on; messages across it are lost.
    let mut side = [0u8; REPLICAS];
    let mut acknowledged: Vec<(Vec<u8>, VersionId)> = Vec::new();

    for step in 0..40_000u64 {
        let young = step < writing_steps;
        if young && rng.below(4) == 0 {
            let who = rng.below(REPLICAS as u64) as usize;
            let keys: Vec<Vec<u8>> = (0..1 + rng.below(5))
                .map(|_| format!("k{}", rng.below(30)).into_bytes())
                .collect();
            let ops = keys
                .iter()
                .map(|key| {
                    let op = if rng.below(8) == 0 {
                        Op::Delete
                    } else {
                        Op::Put(format!("v{}", rng.next()).into_bytes())
                    };
                    (key.clone(), op)
                })
                .collect();
            let replica = &mut replicas[who];
            let ids = replica.store.write(&ns, ops).expect("write");
            acknowledged.extend(keys.into_iter().zip(ids));
            let author = replica.store.author();
            let held = replica
                .store
                .head(&ns, &author)
                .expect("head")
                .map_or(0, |h| h.length);
            replica.syncer.set_held((ns, author), held);
        }
        // Partitions come and go while writers write; the last heal is at `writing_steps`.
        if young && rng.below(150) == 0 {
            for s in &mut side {
                *s = rng.below(2) as u8;
            }
        }
        if step == writing_steps {
            side = [0; REPLICAS];
        }
        // A replica restarts from its store: its requests in flight and its syncer are gone.
        if young && rng.below(200) == 0 {
            let who = rng.below(REPLICAS as u64) as usize;
            // What was in flight to or from it is lost; its peers' requests time out.
            for message in std::mem::take(&mut queue) {
                match message {
                    Message::Request { from, to, id, .. } if to == who && from != who => {
                        fail(&mut replicas[from], id);
                    }
                    Message::Response { from, to, id, .. } if from == who && to != who => {
                        fail(&mut replicas[to], id);
                    }
                    Message::Request { from, to, .. } | Message::Response { from, to, .. }
                        if from == who || to == who => {}
                    kept => queue.push(kept),
                }
            }
            let Replica {
                dir, peer, store, ..
            } = replicas.remove(who);
            drop(store);
            let store = Store::open(&dir, options()).expect("reopen after a restart");
            replicas.insert(who, replica(dir, peer, store));
        }
        // Head exchanges now and then.
        if step % 100 == 0 {
            for from in 0..REPLICAS {
                for to in 0..REPLICAS {
                    if from != to {
                        next_id += 1;
                        let cap = Cap::new(&ns, &replicas[from].peer, &replicas[to].peer);
                        let request = Request::Heads {
                            topic,
                            cap,
                            after: None,
                        };
                        ask(&mut queue, &mut replicas, from, to, request, next_id);
                    }
                }
            }
        }
        // Requests the state machines want.
        for from in 0..REPLICAS {
            for want in replicas[from].syncer.wants() {
                next_id += 1;
                let cap = Cap::new(&ns, &replicas[from].peer, &replicas[want.peer].peer);
                let request = Request::Run {
                    topic,
                    cap,
                    author: want.feed.1,
                    start: want.start,
                    max_entries: wire::RUN_ENTRIES,
                };
                ask(&mut queue, &mut replicas, from, want.peer, request, next_id);
            }
        }
        if queue.is_empty() {
            // Quiet, and head exchanges have run since the last write and heal: done.
            if step > writing_steps + 200 {
                break;
            }
            continue;
        }
        // Deliver one message, chosen at random; one in twenty is lost, one in twenty is
        // delivered twice, and all that cross the partition are lost.
        let index = rng.below(queue.len() as u64) as usize;
        let duplicate = rng.below(20) == 0;
        let message = if duplicate {
            queue[index].clone()
        } else {
            queue.swap_remove(index)
        };
        let (from, to) = match &message {
            Message::Request { from, to, .. } | Message::Response { from, to, .. } => (*from, *to),
        };
        let lost = rng.below(20) == 0 || side[from] != side[to];
        match message {
            Message::Request {
                from,
                to,
                id,
                bytes,
            } => {
                if lost {
                    fail(&mut replicas[from], id);
                    continue;
                }
                let request: Request = wire::decode(&bytes, 1024).expect("request decodes");
                let peers = (&replicas[from].peer, &replicas[to].peer);
                let response = serve(&replicas[to].store, &ns, peers, &request, &mut rng);
                queue.push(Message::Response {
                    from: to,
                    to: from,
                    id,
                    bytes: wire::encode(&response),
                });
            }
            Message::Response {
                from,
                to,
                id,
                bytes,
            } => {
                if lost {
                    fail(&mut replicas[to], id);
                    continue;
                }
                let response: Response =
                    wire::decode(&bytes, MAX_MESSAGE).expect("response decodes");
                let replica = &mut replicas[to];
                // A duplicate finds its request already answered, as a node drops it.
                let Some((peer, request)) = replica.pending.remove(&id) else {
                    continue;
                };
                assert_eq!(peer, from);
                on_response(replica, &ns, peer, request, response);
            }
        }
    }
    let views: Vec<_> = replicas.iter().map(|r| digest(&r.store, &ns)).collect();
    assert!(
        views.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: replicas did not converge"
    );
    for replica in &replicas {
        assert!(
            !replica.syncer.busy(),
            "seed {seed}: requests left outstanding"
        );
        assert!(
            replica.store.verify().expect("verify").is_clean(),
            "seed {seed}"
        );
        for (key, id) in &acknowledged {
            let live = replica.store.get_all(&ns, key).expect("get_all");
            if live.iter().any(|v| v.id == *id) {
                continue;
            }
            let history = replica.store.history(&ns, key).expect("history");
            let superseded = history
                .iter()
                .any(|item| item.version.id == *id && !item.live);
            assert!(
                superseded,
                "seed {seed}: acknowledged write {id:?} of {:?} is neither live nor superseded",
                String::from_utf8_lossy(key)
            );
            // Superseded means a live version descends from it: its timestamp is later.
            let newest = live.iter().map(|v| v.timestamp).max();
            let written = history
                .iter()
                .find(|i| i.version.id == *id)
                .map(|i| i.version.timestamp);
            assert!(
                newest.is_none() || newest >= written,
                "seed {seed}: {id:?} superseded by an older write"
            );
        }
    }
}

/// A request or its response was lost: the node's request times out.
fn fail(replica: &mut Replica, id: u64) {
    if let Some((peer, request)) = replica.pending.remove(&id)
        && let Request::Run { author, .. } = request
    {
        replica
            .syncer
            .failed(&peer, (replica.store.default_namespace(), author));
    }
}

fn on_response(
    replica: &mut Replica,
    ns: &NamespaceId,
    peer: usize,
    request: Request,
    response: Response,
) {
    match (request, response) {
        (Request::Heads { .. }, Response::Heads { heads, .. }) => {
            for head in heads {
                let head = head.into_head(*ns);
                if head.author == replica.store.author() {
                    continue;
                }
                head.verify().expect("honest heads verify");
                replica
                    .syncer
                    .advertised(peer, (*ns, head.author), head.length);
            }
        }
        (Request::Run { author, start, .. }, Response::Run(run)) => {
            let feed = (*ns, author);
            let Some(run) = run else {
                replica.syncer.received(&peer, feed, start, 0);
                return;
            };
            let entries = run.entries.len() as u64;
            assert!(
                replica.syncer.received(&peer, feed, start, entries),
                "an honest run was refused as unasked"
            );
            let outcome = replica.store.ingest(&run.into_run(*ns));
            let held = replica
                .store
                .feeds(ns)
                .expect("feeds")
                .iter()
                .find(|f| f.head.author == author)
                .map_or(0, |f| f.held);
            let ok = match outcome {
                Ok(Ingested::Appended { .. } | Ingested::AlreadyHeld { .. }) => true,
                Ok(Ingested::Frozen { .. }) => panic!("an honest feed was frozen"),
                Ok(Ingested::Gap { .. }) => false,
                Err(IngestError::Invalid(e)) => panic!("an honest run was invalid: {e}"),
                Err(e) => panic!("store failed: {e}"),
            };
            replica.syncer.ingested(feed, held, ok);
        }
        (request, response) => panic!("{request:?} answered with {response:?}"),
    }
}

#[test]
fn replicas_converge_whatever_the_order_and_losses() {
    let count: u64 = std::env::var("WEFT_SIM_COUNT")
        .map(|n| n.parse().expect("WEFT_SIM_COUNT is a number"))
        .unwrap_or(6);
    let seeds: Vec<u64> = match std::env::var("WEFT_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("WEFT_SIM_SEED is a number")],
        Err(_) => (1..=count).map(|i| i * 0x9e37_79b9).collect(),
    };
    for seed in seeds {
        eprintln!("simulating seed {seed}");
        simulate(seed);
    }
}
