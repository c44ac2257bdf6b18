//! Hand-built hostile peers: each sends one kind of bad data to a real node, which must refuse
//! it, disconnect the peer, keep it away, and store nothing.

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageId};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, Swarm, noise, tcp, yamux};
use weft_node::access::{self, Cap};
use weft_node::wire::{
    self, Gossip, MAX_MESSAGE, Refusal, Request, Response, Topic, WireHead, WireRun, WireSparse,
};
use weft_storage::{Interest, NamespaceId, Op, Served, Store};

use super::TestNode;

const LIMIT: Duration = Duration::from_secs(30);
/// How long an honest control stays connected and served after its entries are stored.
const KEPT_FOR: Duration = Duration::from_secs(5);

/// Requests decoded as weft's, responses sent as whatever bytes the scenario chooses.
#[derive(Clone, Default)]
struct RawCodec;

impl request_response::Codec for RawCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Request>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(wire::read_message(io, 1024).await?)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Vec<u8>>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        let mut bytes = Vec::new();
        io.read_to_end(&mut bytes).await?;
        Ok(bytes)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Request,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        Ok(wire::write_message(io, &request).await?)
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        bytes: Vec<u8>,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        io.write_all(&bytes).await?;
        io.close().await
    }
}

#[derive(NetworkBehaviour)]
struct Hostile {
    sync: request_response::Behaviour<RawCodec>,
    gossipsub: gossipsub::Behaviour,
}

fn hostile_swarm() -> Swarm<Hostile> {
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|_| {
            let config = gossipsub::ConfigBuilder::default()
                .validation_mode(gossipsub::ValidationMode::Anonymous)
                .message_id_fn(|m| MessageId::from(blake3::hash(&m.data).as_bytes().to_vec()))
                .build()
                .expect("gossip config");
            Hostile {
                sync: request_response::Behaviour::new(
                    [(
                        StreamProtocol::new(wire::SYNC_PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default(),
                ),
                gossipsub: gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Anonymous,
                    config,
                )
                .expect("gossipsub"),
            }
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build()
}

/// Chooses the bytes the hostile peer answers a request with.
type Answer = Box<dyn FnMut(&Request) -> Vec<u8> + Send>;

/// What the hostile peer does.
struct Scenario {
    /// The bytes it answers a request with.
    answer: Answer,
    /// Bytes it publishes on the namespace's topic once the victim subscribes.
    gossip: Option<Vec<u8>>,
    /// The victim replicates only keys under this prefix: a sparse replica.
    sparse: Option<&'static str>,
    /// What the victim must give as its reason for cutting the peer off (part of it).
    fault: &'static str,
}

/// A store holding 20 entries of a namespace, as an honest author would.
fn origin(root: &std::path::Path, name: &str) -> Store {
    let store = super::create(&root.join(name), weft_storage::Access::Open);
    let ns = store.default_namespace();
    for batch in 0..4 {
        let ops = (0..5)
            .map(|i| {
                (
                    format!("k{batch}{i}").into_bytes(),
                    Op::Put(vec![batch; 10]),
                )
            })
            .collect();
        store.write(&ns, ops).expect("write");
    }
    store
}

/// A fresh victim replica of `ns` (sparse when `sparse` names a prefix), and a hostile swarm
/// listening on loopback, with its address.
async fn set_up(
    root: &std::path::Path,
    ns: NamespaceId,
    sparse: Option<&str>,
) -> (std::path::PathBuf, Swarm<Hostile>, Multiaddr) {
    let victim_dir = root.join("victim");
    let victim = super::join(&victim_dir, ns);
    if let Some(prefix) = sparse {
        let interest = Interest::new([prefix.as_bytes().to_vec()], Vec::new());
        victim.set_interest(&ns, interest).expect("sparse");
    }
    drop(victim);
    let mut hostile = hostile_swarm();
    hostile
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
        .expect("listen");
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = hostile.select_next_some().await {
            break address.with(libp2p::multiaddr::Protocol::P2p(*hostile.local_peer_id()));
        }
    };
    (victim_dir, hostile, addr)
}

/// Runs the scenario against a fresh node replicating `ns`, and checks that the node cuts the
/// hostile peer off, refuses it when it comes back, and stored nothing.
async fn expect_cut_off(root: &std::path::Path, ns: NamespaceId, mut scenario: Scenario) {
    let (victim_dir, mut hostile, hostile_addr) = set_up(root, ns, scenario.sparse).await;
    let topic = IdentTopic::new(Topic::of(&ns).gossip_name());
    hostile
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .expect("subscribe");
    let victim = TestNode::start(&victim_dir, vec![hostile_addr]).await;
    let victim_peer = victim.handle.peer_id();

    let cut_off = tokio::time::timeout(LIMIT, async {
        let mut connections = 0;
        loop {
            match hostile.select_next_some().await {
                SwarmEvent::ConnectionEstablished { .. } => connections += 1,
                SwarmEvent::ConnectionClosed {
                    num_established: 0, ..
                } => return connections,
                SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                    message:
                        request_response::Message::Request {
                            request, channel, ..
                        },
                    ..
                })) => {
                    let bytes = (scenario.answer)(&request);
                    let _ = hostile.behaviour_mut().sync.send_response(channel, bytes);
                }
                SwarmEvent::Behaviour(HostileEvent::Gossipsub(gossipsub::Event::Subscribed {
                    ..
                })) => {
                    if let Some(bytes) = scenario.gossip.take() {
                        hostile
                            .behaviour_mut()
                            .gossipsub
                            .publish(topic.clone(), bytes)
                            .expect("publish to the subscribed victim");
                    }
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        matches!(cut_off, Ok(n) if n >= 1),
        "the node did not disconnect the hostile peer within {LIMIT:?}"
    );

    // Coming back does not help: the node drops the connection at once.
    let back = tokio::time::timeout(LIMIT, async {
        hostile.dial(victim.addr()).expect("dial the victim");
        loop {
            // Dropped once up, or refused while the connection is still being set up.
            match hostile.select_next_some().await {
                SwarmEvent::ConnectionClosed { peer_id, .. }
                | SwarmEvent::OutgoingConnectionError {
                    peer_id: Some(peer_id),
                    ..
                } if peer_id == victim_peer => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(back.is_ok(), "the node let a banned peer back in");

    let status = victim.status().await;
    let hostile_id = hostile.local_peer_id().to_string();
    let reasons: Vec<_> = status
        .bans
        .iter()
        .filter(|ban| ban.peer == hostile_id)
        .map(|ban| ban.reason.as_str())
        .collect();
    assert!(
        matches!(reasons[..], [reason] if reason.contains(scenario.fault)),
        "the node must cut the peer off for {:?}, and did for {reasons:?}",
        scenario.fault
    );
    assert!(
        status.feeds.iter().all(|f| f.held == 0),
        "the node stored bad data: {:?}",
        status.feeds
    );
    let feeds = victim
        .handle
        .worker()
        .run(move |store| store.feeds(&ns))
        .await
        .expect("store")
        .expect("feeds");
    assert!(feeds.is_empty(), "a feed record was written: {feeds:?}");
    victim.stop().await;
}

fn heads_of(store: &Store) -> Vec<u8> {
    let heads = store
        .feeds(&store.default_namespace())
        .expect("feeds")
        .iter()
        .map(|f| WireHead::from_head(&f.head))
        .collect();
    wire::encode(&Response::Heads {
        heads,
        more: false,
        forks: Vec::new(),
    })
}

fn run_of(store: &Store, start: u64) -> WireRun {
    let run = store
        .read_run(
            &store.default_namespace(),
            &store.author(),
            start,
            100,
            usize::MAX,
        )
        .expect("read")
        .expect("held");
    WireRun::from_run(run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_cut_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let ns = origin(root.path(), "origin").default_namespace();
    let scenario = Scenario {
        answer: Box::new(|_| b"\xff\xfe\x00 this is not postcard".to_vec()),
        gossip: None,
        sparse: None,
        fault: "unreadable: sync response: malformed message",
    };
    expect_cut_off(root.path(), ns, scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_head_signature_cuts_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    let mut head =
        WireHead::from_head(&origin.feeds(&origin.default_namespace()).expect("feeds")[0].head);
    head.length += 100;
    let forged = wire::encode(&Response::Heads {
        heads: vec![head],
        more: false,
        forks: Vec::new(),
    });
    let scenario = Scenario {
        answer: Box::new(move |_| forged.clone()),
        gossip: None,
        sparse: None,
        fault: "head signature does not verify",
    };
    expect_cut_off(root.path(), origin.default_namespace(), scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_proof_cuts_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    let heads = heads_of(&origin);
    let mut run = run_of(&origin, 0);
    run.entries[3][4] ^= 1;
    let bad = wire::encode(&Response::Run(Some(run)));
    let scenario = Scenario {
        answer: Box::new(move |request| match request {
            Request::Heads { .. } => heads.clone(),
            _ => bad.clone(),
        }),
        gossip: None,
        sparse: None,
        fault: "proof does not match the signed root",
    };
    expect_cut_off(root.path(), origin.default_namespace(), scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_namespace_the_node_does_not_hold_cut_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let ns = origin(root.path(), "origin").default_namespace();
    // Validly signed, but for another namespace, pushed on this one's topic.
    let foreign = origin(root.path(), "foreign");
    let push = weft_node::access::seal(&ns, &wire::encode(&Gossip::Push(run_of(&foreign, 0))));
    let empty = wire::encode(&Response::Heads {
        heads: vec![],
        more: false,
        forks: Vec::new(),
    });
    let scenario = Scenario {
        answer: Box::new(move |_| empty.clone()),
        gossip: Some(push),
        sparse: None,
        fault: "head signature does not verify",
    };
    expect_cut_off(root.path(), ns, scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_cuts_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let ns = origin(root.path(), "origin").default_namespace();
    let scenario = Scenario {
        answer: Box::new(|_| vec![0u8; MAX_MESSAGE + 1]),
        gossip: None,
        sparse: None,
        fault: "unreadable: sync response: message over",
    };
    expect_cut_off(root.path(), ns, scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_never_asked_for_cuts_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    let heads = heads_of(&origin);
    // A valid run, but from entry 5 when the node asks from 0.
    let unasked = wire::encode(&Response::Run(Some(run_of(&origin, 5))));
    let scenario = Scenario {
        answer: Box::new(move |request| match request {
            Request::Heads { .. } => heads.clone(),
            _ => unasked.clone(),
        }),
        gossip: None,
        sparse: None,
        fault: "sent a run it was not asked for (asked from 0, got 15 from 5)",
    };
    expect_cut_off(root.path(), origin.default_namespace(), scenario).await;
}

/// What `origin` honestly serves of its own feed from 0 to a replica wanting `prefix`.
fn sparse_of(origin: &Store, prefix: &str) -> WireSparse {
    let want = Interest::new([prefix.as_bytes().to_vec()], Vec::new());
    let served = origin
        .read_sparse(
            &origin.default_namespace(),
            &origin.author(),
            0,
            &want,
            100,
            usize::MAX,
        )
        .expect("read_sparse");
    match served {
        Served::Run(run) => WireSparse::from_run(*run),
        other => panic!("{other:?}"),
    }
}

/// A sparse victim wanting `k1` that gets `answer` to its sparse request.
fn sparse_scenario(origin: &Store, answer: WireSparse) -> Scenario {
    let heads = heads_of(origin);
    let answer = wire::encode(&Response::Sparse(Some(answer)));
    Scenario {
        answer: Box::new(move |request| match request {
            Request::Heads { .. } => heads.clone(),
            _ => answer.clone(),
        }),
        gossip: None,
        sparse: Some("k1"),
        fault: "(none: it answers honestly)",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_outside_the_area_asked_for_cut_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    // Honestly proven, but the victim asked for `k1` and gets every key.
    let scenario = Scenario {
        fault: "entry 0 lies outside the area asked for",
        ..sparse_scenario(&origin, sparse_of(&origin, "k"))
    };
    expect_cut_off(root.path(), origin.default_namespace(), scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_entry_that_does_not_match_its_proof_cuts_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    let mut answer = sparse_of(&origin, "k1");
    let last = answer.entries[0].1.len() - 1;
    answer.entries[0].1[last] ^= 1;
    let scenario = Scenario {
        fault: "entry 5: malformed entry",
        ..sparse_scenario(&origin, answer)
    };
    expect_cut_off(root.path(), origin.default_namespace(), scenario).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sparse_run_under_a_head_signed_by_another_key_cuts_a_peer_off() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    let other = origin_like(root.path(), "other", origin.default_namespace());
    let mut answer = sparse_of(&origin, "k1");
    answer.head.signature = WireHead::from_head(&other).signature;
    let scenario = Scenario {
        fault: "head signature does not verify",
        ..sparse_scenario(&origin, answer)
    };
    expect_cut_off(root.path(), origin.default_namespace(), scenario).await;
}

/// The head of another author's feed in `ns`.
fn origin_like(root: &std::path::Path, name: &str, ns: NamespaceId) -> weft_storage::SignedHead {
    let store = super::join(&root.join(name), ns);
    store.put(&ns, b"k10", b"x").expect("put");
    store
        .head(&ns, &store.author())
        .expect("head")
        .expect("a head")
}

/// The control: the same hand-built peer answering honestly is served, kept, and its entries
/// stored, so the cases above fail for their bad data and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_hand_built_peer_is_kept_and_replicated() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    let heads = heads_of(&origin);
    let run = wire::encode(&Response::Run(Some(run_of(&origin, 0))));
    let scenario = Scenario {
        answer: Box::new(move |request| match request {
            Request::Heads { .. } => heads.clone(),
            _ => run.clone(),
        }),
        gossip: None,
        sparse: None,
        fault: "(none: it answers honestly)",
    };
    expect_kept(root.path(), origin.default_namespace(), scenario, 20).await;
}

/// The sparse control: an honest sparse answer is kept, and only the wanted entries stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_honest_sparse_peer_is_kept_and_replicated() {
    let root = tempfile::tempdir().expect("temp dir");
    let origin = origin(root.path(), "origin");
    let scenario = sparse_scenario(&origin, sparse_of(&origin, "k1"));
    expect_kept(root.path(), origin.default_namespace(), scenario, 5).await;
}

async fn expect_kept(root: &std::path::Path, ns: NamespaceId, mut scenario: Scenario, rows: u64) {
    let (victim_dir, mut hostile, addr) = set_up(root, ns, scenario.sparse).await;
    let victim = TestNode::start(&victim_dir, vec![addr]).await;
    // Served for as long as a hostile case may take to be cut off after its data arrived, so a
    // node that dropped every peer after a while would fail here.
    let mut stored_at = None;
    let held = tokio::time::timeout(LIMIT, async {
        loop {
            tokio::select! {
                event = hostile.select_next_some() => match event {
                    SwarmEvent::ConnectionClosed { num_established: 0, cause, .. } => {
                        panic!("an honest peer was disconnected: {cause:?}")
                    }
                    SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                        message: request_response::Message::Request { request, channel, .. },
                        ..
                    })) => {
                        let bytes = (scenario.answer)(&request);
                        let _ = hostile.behaviour_mut().sync.send_response(channel, bytes);
                    }
                    _ => {}
                },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    let held = victim.rows().await;
                    let at = *stored_at.get_or_insert_with(std::time::Instant::now);
                    if held < rows {
                        stored_at = None;
                    } else if at.elapsed() >= KEPT_FOR {
                        return held;
                    }
                }
            }
        }
    })
    .await;
    assert_eq!(
        held.ok(),
        Some(rows),
        "the honest peer's entries were not stored, or it was not kept {KEPT_FOR:?} after"
    );
    let status = victim.status().await;
    assert_eq!(status.peers.len(), 1, "still connected");
    assert!(status.bans.is_empty(), "{:?}", status.bans);
    victim.assert_verifies("the victim").await;
    victim.stop().await;
}

/// A peer without the ticket learns nothing. A real node of another namespace, dialing the
/// holder, ends up holding nothing of it (`cli/tests/lan.rs` has the same over mDNS, inside
/// network namespaces, so no test here multicasts onto the machine's own network). A hand-built
/// peer that even knows the topic (a hash of the namespace id, which it may have overheard)
/// but not the id is refused every request exactly as for a namespace the node does not hold,
/// and the gossip it receives is sealed: no key or value in the clear, nothing it can open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_without_the_ticket_gets_nothing() {
    let root = tempfile::tempdir().expect("temp dir");
    let ns = origin(root.path(), "holder").default_namespace();
    let holder = TestNode::start(&root.path().join("holder"), Vec::new()).await;
    let stranger_dir = root.path().join("stranger");
    drop(super::create(&stranger_dir, weft_storage::Access::Open));
    let stranger = TestNode::start(&stranger_dir, vec![holder.addr()]).await;

    let mut hostile = hostile_swarm();
    let me = *hostile.local_peer_id();
    let holder_peer = holder.handle.peer_id();
    let topic = Topic::of(&ns);
    hostile
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(topic.gossip_name()))
        .expect("subscribe");
    hostile.dial(holder.addr()).expect("dial the holder");
    let guess = NamespaceId([9; 32]);
    let unknown = NamespaceId([8; 32]);
    let requests = [
        // The topic, with a capability made from a wrong guess at the id.
        Request::Heads {
            topic,
            cap: Cap::new(&guess, &me.to_bytes(), &holder_peer.to_bytes()),
            after: None,
            digest: None,
        },
        Request::Run {
            topic,
            cap: Cap::new(&guess, &me.to_bytes(), &holder_peer.to_bytes()),
            author: weft_storage::AuthorId(ns.0),
            start: 0,
            max_entries: 100,
        },
        // A namespace the holder does not have, asked for correctly: the refusal to match.
        Request::Heads {
            topic: Topic::of(&unknown),
            cap: Cap::new(&unknown, &me.to_bytes(), &holder_peer.to_bytes()),
            after: None,
            digest: None,
        },
    ];
    let (mut responses, mut gossip, mut subscribed) = (Vec::new(), Vec::new(), false);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let seen = tokio::time::timeout(LIMIT, async {
        while responses.len() < requests.len() || gossip.is_empty() {
            let event = tokio::select! {
                event = hostile.select_next_some() => event,
                _ = tick.tick() => {
                    // Until a push gets through: the holder may not have seen our
                    // subscription yet when it first publishes.
                    if subscribed {
                        holder.put("secret-key", "secret-value").await;
                    }
                    continue;
                }
            };
            match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == holder_peer => {
                    for request in &requests {
                        hostile
                            .behaviour_mut()
                            .sync
                            .send_request(&holder_peer, request.clone());
                    }
                }
                // What a node without the namespace answers the holder's own requests.
                SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. },
                    ..
                })) => {
                    let refused = wire::encode(&Response::Refused(Refusal::NotShared));
                    let _ = hostile.behaviour_mut().sync.send_response(channel, refused);
                }
                SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                })) => responses.push(response),
                SwarmEvent::Behaviour(HostileEvent::Gossipsub(gossipsub::Event::Subscribed {
                    peer_id,
                    ..
                })) if peer_id == holder_peer => subscribed = true,
                SwarmEvent::Behaviour(HostileEvent::Gossipsub(gossipsub::Event::Message {
                    message,
                    ..
                })) => gossip.push(message.data),
                SwarmEvent::ConnectionClosed { peer_id, cause, .. } if peer_id == holder_peer => {
                    panic!("the holder disconnected: {cause:?}")
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(
        seen.is_ok(),
        "within {LIMIT:?}: {} of {} responses, {} gossip messages",
        responses.len(),
        requests.len(),
        gossip.len()
    );
    let refused = wire::encode(&Response::Refused(Refusal::NotShared));
    for response in &responses {
        assert_eq!(
            response, &refused,
            "a request without the namespace id was not refused as an unknown namespace"
        );
    }
    for data in &gossip {
        let clear = |needle: &[u8]| data.windows(needle.len()).any(|w| w == needle);
        assert!(
            !clear(b"secret-key") && !clear(b"secret-value"),
            "gossip in the clear"
        );
        assert!(wire::decode::<Gossip>(data, wire::MAX_PUSH).is_err());
        assert!(access::unseal(&guess, data).is_err(), "opened by a guess");
        // Control: this is the holder's push, which the id opens.
        let opened = access::unseal(&ns, data).expect("sealed for the namespace");
        assert!(matches!(
            wire::decode::<Gossip>(&opened, wire::MAX_PUSH),
            Ok(Gossip::Push(_))
        ));
    }

    let namespaces = stranger
        .handle
        .worker()
        .run(|store| store.namespaces())
        .await
        .expect("store running");
    assert!(
        !namespaces.contains(&ns),
        "the stranger holds the namespace"
    );
    let reached = tokio::time::timeout(LIMIT, async {
        while !stranger
            .status()
            .await
            .peers
            .iter()
            .any(|p| p.id == holder_peer.to_string())
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "the stranger never reached the holder, so the test proved nothing"
    );
    assert!(
        stranger
            .status()
            .await
            .feeds
            .iter()
            .all(|f| f.namespace != ns),
        "the stranger knows a feed of the namespace"
    );
    stranger.stop().await;
    holder.stop().await;
}

/// An empty answer (a stream closed with no byte) is what an honest peer sends when it drops a
/// request it cannot serve, shutting down say: no answer, not bad data, so nobody is blamed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_blames_nobody() {
    let root = tempfile::tempdir().expect("temp dir");
    let ns = origin(root.path(), "origin").default_namespace();
    let (victim_dir, mut hostile, addr) = set_up(root.path(), ns, None).await;
    let victim = TestNode::start(&victim_dir, vec![addr]).await;
    let mut asked = 0;
    let kept = tokio::time::timeout(KEPT_FOR, async {
        loop {
            match hostile.select_next_some().await {
                SwarmEvent::ConnectionClosed {
                    num_established: 0,
                    cause,
                    ..
                } => return cause,
                SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. },
                    ..
                })) => {
                    asked += 1;
                    let _ = hostile
                        .behaviour_mut()
                        .sync
                        .send_response(channel, Vec::new());
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(kept.is_err(), "the peer was cut off: {kept:?}");
    assert!(
        asked > 0,
        "the node never asked, so the test proved nothing"
    );
    let status = victim.status().await;
    assert!(status.bans.is_empty(), "{:?}", status.bans);
    assert_eq!(status.peers.len(), 1);
    victim.stop().await;
}

/// A peer that connects and asks while a node is still starting (as one that found it by
/// mDNS does, within milliseconds) gets its answer: the node keeps what arrived while it
/// waited for its listeners instead of dropping it unanswered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_made_while_a_node_starts_is_answered() {
    let root = tempfile::tempdir().expect("temp dir");
    let ns = origin(root.path(), "origin").default_namespace();
    let victim_dir = root.path().join("victim");
    drop(super::join(&victim_dir, ns));
    let victim_peer = weft_node::config::load_identity(&victim_dir)
        .expect("identity")
        .public()
        .to_peer_id();
    // The port must be known before the node listens, so the peer can be dialing already. It
    // is free a moment before the node binds it, as nothing else here binds ports.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a port")
        .port();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr");
    let config = weft_node::config::NodeConfig {
        listen: vec![addr.clone()],
        ..super::loopback_config(Vec::new())
    };
    let mut hostile = hostile_swarm();
    let me = *hostile.local_peer_id();
    let starting = tokio::spawn(async move { TestNode::start_with(&victim_dir, config).await });
    let request = Request::Heads {
        topic: Topic::of(&ns),
        cap: Cap::new(&ns, &me.to_bytes(), &victim_peer.to_bytes()),
        after: None,
        digest: None,
    };
    let answer = tokio::time::timeout(LIMIT, async {
        let _ = hostile.dial(addr.clone());
        loop {
            match hostile.select_next_some().await {
                SwarmEvent::OutgoingConnectionError { .. } => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    let _ = hostile.dial(addr.clone());
                }
                SwarmEvent::ConnectionEstablished { .. } => {
                    let _ = hostile
                        .behaviour_mut()
                        .sync
                        .send_request(&victim_peer, request.clone());
                }
                SwarmEvent::Behaviour(HostileEvent::Sync(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. },
                    ..
                })) => return Ok(response),
                SwarmEvent::Behaviour(HostileEvent::Sync(
                    request_response::Event::OutboundFailure { error, .. },
                )) => return Err(error.to_string()),
                _ => {}
            }
        }
    })
    .await
    .expect("an answer or a failure within the limit");
    let victim = starting.await.expect("the node starts");
    let answer = answer.expect("the request made while the node started was dropped");
    assert!(
        matches!(
            wire::decode(&answer, MAX_MESSAGE),
            Ok(Response::Heads { .. })
        ),
        "{answer:?}"
    );
    victim.stop().await;
}
