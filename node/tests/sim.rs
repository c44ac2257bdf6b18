//! A seeded simulation of the sync protocol: five replicas, each running the node's own sync
//! client and server (`weft_node::sync`), with the wire messages and gossip between them
//! delivered out of order, some lost, some twice, across partitions that come and go, while
//! replicas write, delete, restart from what their stores persisted, and find their store too
//! busy to take a job. After the last heal every seed must converge to one view, and every
//! acknowledged write must be live or superseded by a later one on every replica. No honest
//! replica may ever be cut off.
//!
//! With a hostile replica, one of the five answers every run request with a forged run: the
//! honest four must cut it off for invalid data, store nothing of its forgeries, and still
//! converge.
//!
//! With a hostile reader, one replica of a closed namespace, granted nothing, attacks at once:
//! it floods valid fork proofs of fresh keys (gossiped and in its heads answers), gossips
//! heads of fresh authors and pushes of a member's feed with tampered entries, advertises
//! fresh authors' heads, and answers every run request "busy". The honest four must never
//! cut each other off (gossip is forwarded as gossipsub does, so a relay that vouched for a
//! bad push would be blamed), must converge, and must store nothing of it: no fork proof, no
//! feed of a non-member, no sync state for one.
//!
//! A failure prints its seed; rerun one exactly with
//! `WEFT_SIM_SEED=<seed> cargo test -p weft-node --test sim`, or run many more with
//! `WEFT_SIM_COUNT=<n> cargo test -p weft-node --test sim` (CI runs 6 of each case).

use crate::common::options;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use weft_node::sync::{self, Action, Client, Fault, Holdings, Peer, Pending, Server, Verdict};
use weft_node::wire::{
    self, FORKS_PER_RESPONSE, Gossip, MAX_MESSAGE, MAX_PUSH, Refusal, Request, Response, WireHead,
    WireRun,
};
use weft_storage::{
    Access, AuthorId, Branch, ForkProof, Grant, NamespaceId, Op, SignedHead, Store, VersionId, tree,
};

const REPLICAS: usize = 5;

/// A replica's name on the simulated network.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Sim(usize);

impl Peer for Sim {
    fn id_bytes(&self) -> Vec<u8> {
        format!("sim-peer-{}", self.0).into_bytes()
    }
}

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
    Gossip {
        from: usize,
        to: usize,
        id: u64,
        bytes: Vec<u8>,
    },
}

impl Message {
    fn ends(&self) -> (usize, usize) {
        match self {
            Message::Request { from, to, .. }
            | Message::Response { from, to, .. }
            | Message::Gossip { from, to, .. } => (*from, *to),
        }
    }
}

struct Replica {
    dir: std::path::PathBuf,
    store: Store,
    client: Client<Sim, u64>,
    server: Server,
    /// Requests in flight: id → (peer, what was asked).
    pending: HashMap<u64, (usize, Pending)>,
}

/// What the network and the replicas did, for the checks at the end.
struct World {
    rng: Rng,
    queue: Vec<Message>,
    next_id: u64,
    /// Pairs (a, b) where a cut b off; nothing passes between them any more, and neither
    /// asks the other for heads.
    cut: HashSet<(usize, usize)>,
    /// The replica that misbehaves, if any, and how.
    hostile: Option<usize>,
    attack: Attack,
    /// Every gossip message's bytes by id, for relays to forward.
    gossip: HashMap<u64, Vec<u8>>,
    /// (replica, message id) pairs delivered, as gossipsub remembers what it has seen.
    seen: HashSet<(usize, u64)>,
    /// Fresh keys the hostile reader makes up.
    fresh: u64,
    /// Faults honest replicas found in the hostile one.
    caught: Vec<Fault>,
    /// Simulated time, which servers meter requests by: a step is [`STEP`].
    now: Instant,
}

const STEP: Duration = Duration::from_millis(10);

/// Steps between two head exchange timer periods.
const ROUND_STEPS: u64 = 100;

/// Steps a quiet run waits before it is called done: the longest timer rounds stretch apart
/// while they find nothing new, and one period more.
const QUIET_STEPS: u64 = ((1 << sync::MAX_QUIET_DOUBLINGS) + 1) * ROUND_STEPS;

/// What the hostile replica does.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Attack {
    /// Nothing: every replica is honest.
    None,
    /// Answers run requests with forged runs.
    Forger,
    /// A member of a closed namespace granted nothing, attacking from the side.
    Reader,
}

fn replica(dir: std::path::PathBuf, me: usize, store: Store, rng: &mut Rng) -> Replica {
    let holdings = Holdings::of(&store).expect("holdings");
    let namespaces = holdings.namespaces.clone();
    // Small, varying runs, so that batching and pipelining are exercised.
    let client =
        Client::new(Sim(me).id_bytes(), holdings).with_run_entries(1 + rng.below(40) as u32);
    Replica {
        dir,
        server: Server::new(Sim(me).id_bytes(), namespaces),
        store,
        client,
        pending: HashMap::new(),
    }
}

/// A key with every live version's id and value.
type Versions = (Vec<u8>, Vec<(VersionId, Option<Vec<u8>>)>);

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

/// Carries out what replica `me`'s client asked for, until nothing is left to do.
fn act(world: &mut World, replicas: &mut [Replica], me: usize, actions: Vec<Action<Sim, u64>>) {
    let mut todo = actions;
    while let Some(action) = todo.pop() {
        match action {
            Action::Send {
                peer,
                request,
                pending,
            } => {
                world.next_id += 1;
                let id = world.next_id;
                replicas[me].pending.insert(id, (peer.0, pending));
                world.queue.push(Message::Request {
                    from: me,
                    to: peer.0,
                    id,
                    bytes: wire::encode(&request),
                });
            }
            Action::Store(job) => {
                let replica = &mut replicas[me];
                // Now and then the store thread's queue is full.
                let more = if world.rng.below(30) == 0 {
                    replica.client.on_dropped(job)
                } else {
                    let done = job.run(&replica.store);
                    replica.client.on_done(done)
                };
                todo.extend(more);
            }
            Action::Penalize { peer, fault } => {
                assert!(
                    world.hostile == Some(peer.0),
                    "replica {me} cut off honest replica {}: {fault}",
                    peer.0
                );
                assert!(
                    world.attack != Attack::Forger || matches!(fault, Fault::Invalid(_)),
                    "the forger was cut off for {fault}, not for its forgery"
                );
                world.caught.push(fault);
                // The connection closes: neither side asks the other anything more.
                world.cut.insert((me, peer.0));
                replicas[me].client.disconnected(&peer);
                replicas[peer.0].client.disconnected(&Sim(me));
            }
            Action::Publish { message, .. } => publish(world, me, &message),
            Action::Validate {
                peer,
                message,
                verdict,
            } => {
                assert!(
                    verdict != Verdict::Reject || world.hostile == Some(peer.0),
                    "replica {me} rejected gossip from honest replica {}",
                    peer.0
                );
                // Accepted gossip goes on to every other replica, as gossipsub forwards it.
                if verdict == Verdict::Accept
                    && let Some(bytes) = world.gossip.get(&message).cloned()
                {
                    for to in (0..replicas.len()).filter(|&to| to != me && to != peer.0) {
                        world.queue.push(Message::Gossip {
                            from: me,
                            to,
                            id: message,
                            bytes: bytes.clone(),
                        });
                    }
                }
            }
            Action::Answer { .. } => panic!("no remote reads are made here"),
        }
    }
}

/// Replica `me` publishes `message` to every other replica.
fn publish(world: &mut World, me: usize, message: &Gossip) {
    world.next_id += 1;
    let id = world.next_id;
    let bytes = wire::encode(message);
    world.gossip.insert(id, bytes.clone());
    world.seen.insert((me, id));
    for to in (0..REPLICAS).filter(|&to| to != me) {
        world.queue.push(Message::Gossip {
            from: me,
            to,
            id,
            bytes: bytes.clone(),
        });
    }
}

/// A key no replica has seen before, made up by the hostile reader.
fn fresh_key(world: &mut World) -> SigningKey {
    world.fresh += 1;
    let mut seed = [0x5a; 32];
    seed[..8].copy_from_slice(&world.fresh.to_le_bytes());
    seed[8..16].copy_from_slice(&world.rng.next().to_le_bytes());
    SigningKey::from_bytes(&seed)
}

/// A valid proof that a fresh key signed two histories of one entry each: a fork of a feed
/// nobody holds, as cheap to make as two signatures.
fn fresh_fork(world: &mut World, ns: NamespaceId) -> ForkProof {
    let key = fresh_key(world);
    let branch = |leaf: [u8; 32]| Branch {
        head: SignedHead::sign(&key, ns, 1, tree::root_hash(1, &[leaf])),
        leaf,
        extension: Vec::new(),
    };
    ForkProof {
        agreed: 0,
        common: Vec::new(),
        branches: [branch([1; 32]), branch([2; 32])],
    }
}

/// A validly signed head of a fresh author that claims a long feed.
fn fresh_head(world: &mut World, ns: NamespaceId) -> SignedHead {
    let key = fresh_key(world);
    SignedHead::sign(&key, ns, 1_000_000, [7; 32])
}

/// One round of the hostile reader's side attacks: fork proofs of fresh keys, heads of fresh
/// authors, and pushes of members' feeds whose heads are real and whose entries are not.
fn side_attacks(world: &mut World, replicas: &[Replica], me: usize, ns: NamespaceId) {
    for _ in 0..20 {
        let proof = fresh_fork(world, ns);
        publish(world, me, &Gossip::Fork(Box::new(proof)));
    }
    for _ in 0..10 {
        let head = fresh_head(world, ns);
        let push = WireRun {
            head: WireHead::from_head(&head),
            start: head.length,
            entries: Vec::new(),
            extension: Vec::new(),
        };
        publish(world, me, &Gossip::Push(push));
    }
    // The newest entries it holds of each member's feed, which replicas that hold them need
    // not check and replicas that lag would.
    for feed in replicas[me].store.feeds(&ns).expect("feeds") {
        let start = feed.held.saturating_sub(3);
        let run = replicas[me]
            .store
            .read_run(&ns, &feed.head.author, start, 3, usize::MAX)
            .expect("read_run");
        if let Some(run) = run {
            let mut push = WireRun::from_run(run);
            let entry = &mut push.entries[0];
            let last = entry.len() - 1;
            entry[last] ^= 0x55;
            publish(world, me, &Gossip::Push(push));
        }
    }
}

/// The hostile reader's answer to `request`: its real heads with fresh authors' and fresh
/// fork proofs added, as many as a response may carry; "busy" to every run asked of it.
fn stall(world: &mut World, request: &Request, response: Response, ns: NamespaceId) -> Response {
    match (request, response) {
        (
            _,
            Response::Heads {
                mut heads, more, ..
            },
        ) => {
            for _ in 0..16 {
                let head = fresh_head(world, ns);
                heads.push(WireHead::from_head(&head));
            }
            heads.sort_by_key(|head| head.author);
            let forks = (0..FORKS_PER_RESPONSE)
                .map(|_| fresh_fork(world, ns))
                .collect();
            Response::Heads { heads, more, forks }
        }
        (Request::Run { .. } | Request::Sparse { .. }, _) => Response::Refused(Refusal::Busy),
        (_, other) => other,
    }
}

/// A request or its response was lost: the asker's request times out.
fn fail(world: &mut World, replicas: &mut [Replica], asker: usize, id: u64) {
    if let Some((peer, pending)) = replicas[asker].pending.remove(&id) {
        let actions = replicas[asker].client.on_failure(Sim(peer), pending, None);
        act(world, replicas, asker, actions);
    }
}

/// A forger's answer: the honest one with the first entry of a run changed, so it no longer
/// proves against its head.
fn forge(response: Response) -> Response {
    match response {
        Response::Run(Some(mut run)) if !run.entries.is_empty() => {
            let entry = &mut run.entries[0];
            let last = entry.len() - 1;
            entry[last] ^= 0x55;
            Response::Run(Some(run))
        }
        other => other,
    }
}

fn simulate(seed: u64, hostile: Option<usize>, attack: Attack) {
    let mut rng = Rng(seed | 1);
    let root = tempfile::tempdir().expect("temp dir");
    // The hostile reader attacks a closed namespace, in which it was granted nothing.
    let access = match attack {
        Attack::Reader => Access::Closed,
        Attack::None | Attack::Forger => Access::Open,
    };
    let first = Store::init(&root.path().join("r0"), options(), access).expect("init");
    let ns = first.default_namespace();
    let charter = first.charter(&ns).expect("known").expect("a charter");
    let mut stores = vec![(root.path().join("r0"), first)];
    for i in 1..REPLICAS {
        let dir = root.path().join(format!("r{i}"));
        let store = Store::init_joined(&dir, options(), &charter, None).expect("join");
        stores.push((dir, store));
    }
    if access == Access::Closed {
        // Every honest replica is granted everything and starts from the owner's feed.
        let everything = Grant {
            prefixes: Vec::new(),
            expires: None,
        };
        for i in (1..REPLICAS).filter(|&i| Some(i) != hostile) {
            let author = stores[i].1.author();
            stores[0]
                .1
                .grant(&ns, &author, everything.clone())
                .expect("grant");
        }
        let owner = stores[0].1.author();
        let grants = stores[0]
            .1
            .read_run(&ns, &owner, 0, usize::MAX, usize::MAX)
            .expect("read")
            .expect("the grants");
        for (_, store) in &stores[1..] {
            store.ingest(&grants).expect("the owner's feed ingests");
        }
    }
    let mut replicas = Vec::new();
    for (i, (dir, store)) in stores.into_iter().enumerate() {
        replicas.push(replica(dir, i, store, &mut rng));
    }
    let mut world = World {
        rng,
        queue: Vec::new(),
        next_id: 0,
        cut: HashSet::new(),
        hostile,
        attack,
        gossip: HashMap::new(),
        seen: HashSet::new(),
        fresh: 0,
        caught: Vec::new(),
        now: Instant::now(),
    };
    let writing_steps = 400;
    // Which side of the partition each replica is on; messages across it are lost.
    let mut side = [0u8; REPLICAS];
    let mut acknowledged: Vec<(Vec<u8>, VersionId)> = Vec::new();

    for step in 0..40_000u64 {
        world.now += STEP;
        // Honest runs keep about a thousand messages in flight at most; far more means some
        // replica answers traffic with more traffic, and the run would never go quiet.
        assert!(
            world.queue.len() < 20_000,
            "seed {seed}: {} messages in flight at step {step}: traffic feeds on itself",
            world.queue.len()
        );
        let young = step < writing_steps;
        if let Some(me) = hostile.filter(|_| attack == Attack::Reader && step % 50 == 0 && young) {
            side_attacks(&mut world, &replicas, me, ns);
        }
        if young && world.rng.below(4) == 0 {
            // A hostile reader, granted nothing, cannot write.
            let who = loop {
                let who = world.rng.below(REPLICAS as u64) as usize;
                if attack != Attack::Reader || Some(who) != hostile {
                    break who;
                }
            };
            let keys: Vec<Vec<u8>> = (0..1 + world.rng.below(5))
                .map(|_| format!("k{}", world.rng.below(30)).into_bytes())
                .collect();
            let ops = keys
                .iter()
                .map(|key| {
                    let op = if world.rng.below(8) == 0 {
                        Op::Delete
                    } else {
                        Op::Put(format!("v{}", world.rng.next()).into_bytes())
                    };
                    (key.clone(), op)
                })
                .collect();
            let replica = &mut replicas[who];
            let before = sync::local_length(&replica.store, &ns);
            let ids = replica.store.write(&ns, ops).expect("write");
            if Some(who) != hostile {
                acknowledged.extend(keys.into_iter().zip(ids));
            }
            let push = sync::read_push(&replica.store, &ns, before).expect("push");
            let actions = push
                .map(|run| replica.client.published(run))
                .unwrap_or_default();
            act(&mut world, &mut replicas, who, actions);
        }
        // Partitions come and go while writers write; the last heal is at `writing_steps`.
        if young && world.rng.below(150) == 0 {
            for s in &mut side {
                *s = world.rng.below(2) as u8;
            }
        }
        if step == writing_steps {
            side = [0; REPLICAS];
        }
        // A replica restarts from its store: its requests in flight and its client are gone.
        if young && world.rng.below(200) == 0 {
            let who = world.rng.below(REPLICAS as u64) as usize;
            // What was in flight to or from it is lost; its peers' requests time out.
            for message in std::mem::take(&mut world.queue) {
                match message {
                    Message::Request { from, to, id, .. } if to == who && from != who => {
                        fail(&mut world, &mut replicas, from, id);
                    }
                    Message::Response { from, to, id, .. } if from == who && to != who => {
                        fail(&mut world, &mut replicas, to, id);
                    }
                    message if message.ends().0 == who || message.ends().1 == who => {}
                    kept => world.queue.push(kept),
                }
            }
            let Replica { dir, store, .. } = replicas.remove(who);
            drop(store);
            let store = Store::open(&dir, options()).expect("reopen after a restart");
            replicas.insert(who, replica(dir, who, store, &mut world.rng));
        }
        // Head exchanges now and then.
        if step % ROUND_STEPS == 0 {
            for me in 0..REPLICAS {
                let peers: Vec<Sim> = (0..REPLICAS)
                    .filter(|&p| {
                        p != me && !world.cut.contains(&(me, p)) && !world.cut.contains(&(p, me))
                    })
                    .map(Sim)
                    .collect();
                let actions = replicas[me].client.tick(&peers);
                act(&mut world, &mut replicas, me, actions);
            }
        }
        // Requests the clients want.
        for me in 0..REPLICAS {
            let actions = replicas[me].client.wants();
            act(&mut world, &mut replicas, me, actions);
        }
        if world.queue.is_empty() {
            // Quiet, and the timer has run rounds since the last write and heal for as long
            // as rounds may stretch apart while they find nothing new: done. (One round was
            // not always enough: a replica that asked a peer still catching up the feed
            // itself, and got nothing, asks again only at a later round.)
            if step > writing_steps + QUIET_STEPS {
                break;
            }
            continue;
        }
        deliver_one(&mut world, &mut replicas, &ns, &side);
    }
    assert!(
        world.queue.is_empty(),
        "seed {seed}: still busy after the last step"
    );
    check(&world, &replicas, &ns, &acknowledged, seed);
}

/// Delivers one message, chosen at random; one in twenty is lost, one in twenty is delivered
/// twice, and all that cross the partition or a cut are lost.
fn deliver_one(world: &mut World, replicas: &mut [Replica], ns: &NamespaceId, side: &[u8]) {
    let index = world.rng.below(world.queue.len() as u64) as usize;
    let duplicate = world.rng.below(20) == 0;
    let message = if duplicate {
        world.queue[index].clone()
    } else {
        world.queue.swap_remove(index)
    };
    let (from, to) = message.ends();
    let lost = world.rng.below(20) == 0
        || side[from] != side[to]
        || world.cut.contains(&(from, to))
        || world.cut.contains(&(to, from));
    match message {
        Message::Request {
            from,
            to,
            id,
            bytes,
        } => {
            if lost {
                return fail(world, replicas, from, id);
            }
            let request: Request =
                wire::decode(&bytes, sync::MAX_REQUEST).expect("request decodes");
            let server = &mut replicas[to];
            let asker = Sim(from).id_bytes();
            // The hostile reader ignores digests, so that every heads answer of its carries
            // what it makes up.
            let asked = match request.clone() {
                Request::Heads {
                    topic, cap, after, ..
                } if world.hostile == Some(to) && matches!(world.attack, Attack::Reader) => {
                    Request::Heads {
                        topic,
                        cap,
                        after,
                        digest: None,
                    }
                }
                request => request,
            };
            let response = match server.server.admit(&asker, &request, world.now) {
                Ok(ns) => sync::answer(&server.store, &ns, asked),
                Err(refusal) => panic!("replica {to} refused replica {from}: {refusal:?}"),
            };
            server.server.answered(&asker);
            let response = match world.attack {
                _ if world.hostile != Some(to) => response,
                Attack::Forger => forge(response),
                Attack::Reader => stall(world, &request, response, *ns),
                Attack::None => response,
            };
            world.queue.push(Message::Response {
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
                return fail(world, replicas, to, id);
            }
            let response: Response = wire::decode(&bytes, MAX_MESSAGE).expect("response decodes");
            // A duplicate finds its request already answered, as a node drops it.
            let Some((peer, pending)) = replicas[to].pending.remove(&id) else {
                return;
            };
            assert_eq!(peer, from);
            let actions = replicas[to]
                .client
                .on_response(Sim(from), pending, response);
            act(world, replicas, to, actions);
        }
        Message::Gossip {
            from,
            to,
            id,
            bytes,
        } => {
            if lost || !world.seen.insert((to, id)) {
                return;
            }
            let gossip: Gossip = wire::decode(&bytes, MAX_PUSH).expect("gossip decodes");
            let actions = replicas[to].client.on_gossip(Sim(from), id, *ns, gossip);
            act(world, replicas, to, actions);
        }
    }
}

fn check(
    world: &World,
    replicas: &[Replica],
    ns: &NamespaceId,
    acknowledged: &[(Vec<u8>, VersionId)],
    seed: u64,
) {
    let honest: Vec<&Replica> = replicas
        .iter()
        .enumerate()
        .filter(|(i, _)| world.hostile != Some(*i))
        .map(|(_, r)| r)
        .collect();
    if world.attack == Attack::Forger {
        assert!(
            !world.caught.is_empty(),
            "seed {seed}: the forger was never caught"
        );
    }
    if world.attack == Attack::Reader {
        // What the reader made up costs the honest replicas nothing that lasts: no proof,
        // no feed and no sync state of anyone outside the namespace's members.
        let members: HashSet<AuthorId> = honest.iter().map(|r| r.store.author()).collect();
        for replica in &honest {
            assert_eq!(
                replica.store.forks(ns).expect("forks").len(),
                0,
                "seed {seed}: fork proofs of fresh keys were kept"
            );
            for feed in replica.store.feeds(ns).expect("feeds") {
                assert!(
                    members.contains(&feed.head.author),
                    "seed {seed}: a non-member's feed was stored"
                );
            }
            let tracked = replica.client.progress().count();
            assert!(
                tracked <= members.len(),
                "seed {seed}: sync state for {tracked} feeds, with {} members",
                members.len()
            );
        }
    }
    let views: Vec<_> = honest.iter().map(|r| digest(&r.store, ns)).collect();
    assert!(
        views.windows(2).all(|w| w[0] == w[1]),
        "seed {seed}: replicas did not converge"
    );
    for replica in &honest {
        assert!(
            !replica.client.busy(),
            "seed {seed}: requests left outstanding"
        );
        assert!(
            replica.store.verify().expect("verify").is_clean(),
            "seed {seed}"
        );
        for (key, id) in acknowledged {
            let live = replica.store.get_all(ns, key).expect("get_all");
            if live.iter().any(|v| v.id == *id) {
                continue;
            }
            let history = replica.store.history(ns, key).expect("history");
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

fn seeds() -> Vec<u64> {
    let count: u64 = std::env::var("WEFT_SIM_COUNT")
        .map(|n| n.parse().expect("WEFT_SIM_COUNT is a number"))
        .unwrap_or(6);
    match std::env::var("WEFT_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("WEFT_SIM_SEED is a number")],
        Err(_) => (1..=count).map(|i| i * 0x9e37_79b9).collect(),
    }
}

#[test]
fn replicas_converge_whatever_the_order_and_losses() {
    for seed in seeds() {
        eprintln!("simulating seed {seed}");
        simulate(seed, None, Attack::None);
    }
}

#[test]
fn a_replica_that_forges_runs_is_cut_off_and_the_rest_converge() {
    for seed in seeds() {
        eprintln!("simulating seed {seed} with a forger");
        simulate(
            seed,
            Some((seed % REPLICAS as u64) as usize),
            Attack::Forger,
        );
    }
}

#[test]
fn a_hostile_reader_cannot_split_fill_or_stall_a_closed_namespace() {
    for seed in seeds() {
        eprintln!("simulating seed {seed} with a hostile reader");
        // Any replica but the owner, which alone could grant itself.
        let hostile = 1 + (seed % (REPLICAS as u64 - 1)) as usize;
        simulate(seed, Some(hostile), Attack::Reader);
    }
}
