//! A seeded simulation of catch-up: three replicas, their `Syncer`s and the wire messages
//! between them, delivered out of order, some lost, while the replicas keep writing. Every
//! seed must converge to one view. A failure prints its seed; rerun one with
//! `WEFT_SIM_SEED=<seed> cargo test -p weft-node --test sim`.

use std::collections::HashMap;

use weft_node::sync::Syncer;
use weft_node::wire::{self, MAX_MESSAGE, Refusal, Request, Response, Topic, WireHead, WireRun};
use weft_storage::{IngestError, Ingested, NamespaceId, Op, Options, Store};

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
    store: Store,
    syncer: Syncer<usize>,
    /// Requests in flight: id → (peer, request).
    pending: HashMap<u64, (usize, Request)>,
}

fn serve(store: &Store, ns: &NamespaceId, request: &Request, rng: &mut Rng) -> Response {
    match request {
        Request::Heads { .. } => Response::Heads {
            heads: store
                .feeds(ns)
                .expect("feeds")
                .iter()
                .map(|f| WireHead::from_head(&f.head))
                .collect(),
            more: false,
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

fn simulate(seed: u64) {
    let mut rng = Rng(seed | 1);
    let root = tempfile::tempdir().expect("temp dir");
    let options = || Options {
        durable: false,
        ..Options::default()
    };
    let first = Store::init(&root.path().join("r0"), options()).expect("init");
    let ns = first.default_namespace();
    let topic = Topic::of(&ns);
    let mut replicas = vec![first];
    for i in 1..3 {
        replicas.push(
            Store::init_joined(&root.path().join(format!("r{i}")), options(), ns).expect("join"),
        );
    }
    let mut replicas: Vec<Replica> = replicas
        .into_iter()
        .map(|store| Replica {
            store,
            syncer: Syncer::default(),
            pending: HashMap::new(),
        })
        .collect();
    let mut queue: Vec<Message> = Vec::new();
    let mut next_id = 0u64;
    let writing_steps = 300;

    for step in 0..20_000u64 {
        // Writes while the simulation is young.
        if step < writing_steps && rng.below(4) == 0 {
            let who = rng.below(3) as usize;
            let ops = (0..1 + rng.below(5))
                .map(|_| {
                    let key = format!("k{}", rng.below(30)).into_bytes();
                    let op = if rng.below(10) == 0 {
                        Op::Delete
                    } else {
                        Op::Put(format!("v{}", rng.next()).into_bytes())
                    };
                    (key, op)
                })
                .collect();
            let replica = &mut replicas[who];
            replica.store.write(&ns, ops).expect("write");
            let author = replica.store.author();
            let held = replica
                .store
                .head(&ns, &author)
                .expect("head")
                .map_or(0, |h| h.length);
            replica.syncer.set_held((ns, author), held);
        }
        // Head exchanges now and then.
        if step % 25 == 0 {
            for (from, replica) in replicas.iter_mut().enumerate() {
                for to in 0..3 {
                    if from != to {
                        let request = Request::Heads { topic, after: None };
                        next_id += 1;
                        replica.pending.insert(next_id, (to, request.clone()));
                        queue.push(Message::Request {
                            from,
                            to,
                            id: next_id,
                            bytes: wire::encode(&request),
                        });
                    }
                }
            }
        }
        // Requests the state machines want.
        for (from, replica) in replicas.iter_mut().enumerate() {
            for want in replica.syncer.wants() {
                let request = Request::Run {
                    topic,
                    author: want.feed.1,
                    start: want.start,
                    max_entries: wire::RUN_ENTRIES,
                };
                next_id += 1;
                replica
                    .pending
                    .insert(next_id, (want.peer, request.clone()));
                queue.push(Message::Request {
                    from,
                    to: want.peer,
                    id: next_id,
                    bytes: wire::encode(&request),
                });
            }
        }
        if queue.is_empty() {
            // Quiet, and head exchanges have run since the last write: done.
            if step > writing_steps + 60 {
                break;
            }
            continue;
        }
        // Deliver one message, chosen at random; one in twenty is lost.
        let message = queue.swap_remove(rng.below(queue.len() as u64) as usize);
        let lost = rng.below(20) == 0;
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
                let response = serve(&replicas[to].store, &ns, &request, &mut rng);
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
                let (peer, request) = replica
                    .pending
                    .remove(&id)
                    .expect("a response to a request");
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
    let seeds: Vec<u64> = match std::env::var("WEFT_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("WEFT_SIM_SEED is a number")],
        Err(_) => (1..=12).map(|i| i * 0x9e37_79b9).collect(),
    };
    for seed in seeds {
        eprintln!("simulating seed {seed}");
        simulate(seed);
    }
}
