//! The running node: one task owns the swarm; callers hold a cloneable [`NodeHandle`].
//!
//! The task never waits on the store: every store call is queued on the store thread with
//! [`StoreWorker::try_run`], and its result comes back as a [`Done`] the task then acts on.
//! When the queue is full, inbound requests are refused as busy and runs are dropped to be
//! asked again, so a slow disk slows sync down instead of growing memory.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{
    self, OutboundFailure, OutboundRequestId, ProtocolSupport, ResponseChannel,
};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, mdns, ping};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use weft_storage::{
    AuthorId, ForkProof, IngestError, Ingested, Interest, Invalid, NamespaceId, Run, Served,
    SignedHead, SparseRun, Store, VersionInfo,
};

use crate::access::{self, Cap};
use crate::config::NodeConfig;
use crate::handle::{Command, NodeHandle};
use crate::status::{FeedStatus, PeerStatus, Status};
use crate::sync::{FeedId, Scheduler};
use crate::transport::{self, WireCounters};
use crate::wire::{
    self, Gossip, HEADS_PER_RESPONSE, MAX_MESSAGE, MAX_PUSH, RUN_BYTES, RUN_ENTRIES, Refusal,
    Request, Response, Topic, WireHead, WireRun, WireSparse,
};
use crate::worker::{Closed, StoreWorker};

/// How long a peer that sent bad data is kept away.
const BAN: Duration = Duration::from_secs(300);

/// The largest sync request read: a sparse request's prefixes are at most
/// [`weft_storage::MAX_INTEREST_BYTES`], plus framing.
const MAX_REQUEST: usize = weft_storage::MAX_INTEREST_BYTES + 4096;

/// Commands from handles to the swarm task.
const COMMAND_QUEUE: usize = 256;

/// Why a node could not start or a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] weft_storage::Error),
    /// The node has shut down.
    #[error("the node has shut down")]
    Closed,
    /// A listen address could not be used.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The transport could not be built.
    #[error("cannot set up the transport: {0}")]
    Transport(String),
    /// A remote read found no connected peer to ask.
    #[error("no peers are connected to ask")]
    NoPeers,
    /// The request needs a running node (peers, status), and none runs on this replica.
    #[error("this needs a running node")]
    NotRunning,
}

impl From<Closed> for NodeError {
    fn from(_: Closed) -> Self {
        NodeError::Closed
    }
}

impl From<crate::watch::WatchError> for NodeError {
    fn from(error: crate::watch::WatchError) -> Self {
        match error {
            crate::watch::WatchError::Store(e) => NodeError::Store(e),
            crate::watch::WatchError::Closed(_) => NodeError::Closed,
        }
    }
}

/// A running node. Dropping it without [`Node::shutdown`] leaves the task running.
pub struct Node {
    handle: NodeHandle,
    listen: Vec<Multiaddr>,
    task: tokio::task::JoinHandle<()>,
    /// The store's thread when the node started it, joined at shutdown.
    store_thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Starts a node on `store`: listens, dials the configured peers and starts syncing.
    /// Returns once every listener has its first address.
    ///
    /// # Errors
    /// [`NodeError::Listen`] when an address cannot be listened on (a taken
    /// [`crate::config::DEFAULT_PORT`] falls back to any port), [`NodeError::Transport`].
    pub async fn start(
        store: Store,
        keypair: Keypair,
        config: NodeConfig,
    ) -> Result<Node, NodeError> {
        let (worker, store_thread) = StoreWorker::spawn(store);
        let mut node = Node::attach(worker, keypair, config).await?;
        node.store_thread = Some(store_thread);
        Ok(node)
    }

    /// As [`Node::start`], on a store already running on `worker`'s thread, which
    /// [`Node::shutdown`] leaves running: how a program that embeds weft starts and stops
    /// networking while it keeps the replica open.
    ///
    /// # Errors
    /// As [`Node::start`]; [`NodeError::Closed`] when the store thread has stopped.
    pub async fn attach(
        worker: StoreWorker,
        keypair: Keypair,
        config: NodeConfig,
    ) -> Result<Node, NodeError> {
        let (namespaces, interests, local_feeds) = worker
            .run(|store| {
                let namespaces = store.namespaces();
                let mut interests = HashMap::new();
                let mut local_feeds = Vec::new();
                for ns in &namespaces {
                    if let Some(interest) = store.interest(ns)? {
                        interests.insert(*ns, interest);
                    }
                    for feed in store.feeds(ns)? {
                        local_feeds.push(((*ns, feed.head.author), feed.held));
                    }
                }
                Ok::<_, weft_storage::Error>((namespaces, interests, local_feeds))
            })
            .await??;
        let counters = Arc::new(WireCounters::default());
        let mut swarm = build_swarm(&keypair, &config, Arc::clone(&counters))?;
        let mut topics = HashMap::new();
        for ns in &namespaces {
            let topic = Topic::of(ns);
            let gossip = IdentTopic::new(topic.gossip_name());
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(&gossip)
                .map_err(|e| NodeError::Transport(e.to_string()))?;
            swarm
                .behaviour_mut()
                .gossipsub
                .set_topic_params(gossip.clone(), topic_score_params())
                .map_err(|e| NodeError::Transport(e.to_string()))?;
            topics.insert(gossip.hash(), *ns);
        }
        let listen = listen_all(&mut swarm, &config.listen).await?;
        for addr in &listen {
            info!(%addr, "listening");
        }
        let mut scheduler = Scheduler::default();
        for (feed, held) in local_feeds {
            scheduler.set_held(feed, held);
        }
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let handle = NodeHandle {
            commands,
            worker: worker.clone(),
            peer_id: *swarm.local_peer_id(),
            counters: Arc::clone(&counters),
        };
        let mut task = Task {
            counters,
            by_topic: topics.values().map(|ns| (Topic::of(ns), *ns)).collect(),
            topics,
            swarm,
            worker,
            scheduler,
            interests,
            remote_gets: HashMap::new(),
            next_remote_get: 0,
            pending: HashMap::new(),
            jobs: FuturesUnordered::new(),
            banned: HashMap::new(),
            bootstrap: config.peers.clone(),
            head_exchanges: 0,
        };
        task.dial_bootstrap();
        let task = tokio::spawn(task.run(receiver, config.sync_interval));
        Ok(Node {
            handle,
            listen,
            task,
            store_thread: None,
        })
    }

    /// A handle for calls into the node.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// The addresses the node listened on at start.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// Stops the swarm. A node made by [`Node::start`] then lets the store finish every queued
    /// job and closes it; every [`NodeHandle`] must be dropped first, or this waits for them.
    pub async fn shutdown(self) {
        let _ = self.handle.commands.send(Command::Shutdown).await;
        let _ = self.task.await;
        drop(self.handle);
        if let Some(thread) = self.store_thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gossipsub: gossipsub::Behaviour,
    sync: request_response::Behaviour<SyncCodec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    mdns: Toggle<mdns::tokio::Behaviour>,
}

fn build_swarm(
    key: &Keypair,
    config: &NodeConfig,
    counters: Arc<WireCounters>,
) -> Result<Swarm<Behaviour>, NodeError> {
    let transport_error = |e: &dyn std::fmt::Display| NodeError::Transport(e.to_string());
    let transport = transport::build(key, counters).map_err(|e| transport_error(&e))?;
    let peer_id = key.public().to_peer_id();
    let gossip_config = gossipsub::ConfigBuilder::default()
        // Entries carry their authors' signatures: libp2p's own signing would be wasted work,
        // and anonymous messages need an id from their content to be told apart.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .message_id_fn(|message| MessageId::from(blake3::hash(&message.data).as_bytes().to_vec()))
        .validate_messages()
        .max_transmit_size(MAX_PUSH)
        .heartbeat_interval(Duration::from_millis(500))
        .build()
        .map_err(|e| transport_error(&e))?;
    let mut gossipsub =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, gossip_config)
            .map_err(|e| transport_error(&e))?;
    gossipsub
        .with_peer_score(
            gossipsub::PeerScoreParams::default(),
            gossipsub::PeerScoreThresholds::default(),
        )
        .map_err(|e| transport_error(&e))?;
    let sync = request_response::Behaviour::new(
        [(
            StreamProtocol::new(wire::SYNC_PROTOCOL),
            ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
    );
    let mdns = if config.mdns {
        match mdns::tokio::Behaviour::new(mdns::Config::default(), peer_id) {
            Ok(mdns) => Some(mdns),
            Err(e) => {
                warn!(error = %e, "mDNS is unavailable; peers must be given with --peer");
                None
            }
        }
    } else {
        None
    };
    let behaviour = Behaviour {
        gossipsub,
        sync,
        identify: identify::Behaviour::new(identify::Config::new("/weft/1".into(), key.public())),
        ping: ping::Behaviour::new(ping::Config::new()),
        mdns: Toggle::from(mdns),
    };
    Ok(Swarm::new(
        transport,
        behaviour,
        peer_id,
        libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::from_secs(120)),
    ))
}

/// Gossip scoring per namespace topic: invalid messages (bad signature or proof, garbage)
/// weigh heavily. Delivery-rate penalties are off: a quiet namespace is normal, and the
/// defaults would graylist honest peers of one for not sending enough.
fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.5,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        ..gossipsub::TopicScoreParams::default()
    }
}

/// Listens on every address, falling back to an OS-picked port when the default port is taken,
/// and waits for each listener's first address.
async fn listen_all(
    swarm: &mut Swarm<Behaviour>,
    addrs: &[Multiaddr],
) -> Result<Vec<Multiaddr>, NodeError> {
    let mut listeners = HashSet::new();
    for addr in addrs {
        let id = match swarm.listen_on(addr.clone()) {
            Ok(id) => id,
            Err(e) if uses_default_port(addr) => {
                warn!(%addr, error = %e, "default port taken; listening on any free port");
                let any = with_port_zero(addr);
                swarm
                    .listen_on(any.clone())
                    .map_err(|e| NodeError::Listen {
                        addr: any,
                        reason: e.to_string(),
                    })?
            }
            Err(e) => {
                return Err(NodeError::Listen {
                    addr: addr.clone(),
                    reason: e.to_string(),
                });
            }
        };
        listeners.insert(id);
    }
    let mut found = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(10));
    tokio::pin!(deadline);
    while !listeners.is_empty() {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { listener_id, address } => {
                    listeners.remove(&listener_id);
                    found.push(address);
                }
                SwarmEvent::ListenerClosed { listener_id, reason, .. } if listeners.contains(&listener_id) => {
                    return Err(NodeError::Listen {
                        addr: addrs.first().cloned().unwrap_or_else(Multiaddr::empty),
                        reason: format!("{reason:?}"),
                    });
                }
                SwarmEvent::ListenerError { error, .. } => {
                    return Err(NodeError::Listen {
                        addr: addrs.first().cloned().unwrap_or_else(Multiaddr::empty),
                        reason: error.to_string(),
                    });
                }
                _ => {}
            },
            _ = &mut deadline => break,
        }
    }
    Ok(found)
}

fn uses_default_port(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| {
        matches!(p, Protocol::Tcp(port) | Protocol::Udp(port) if port == crate::config::DEFAULT_PORT)
    })
}

fn with_port_zero(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(0),
            Protocol::Udp(_) => Protocol::Udp(0),
            other => other,
        })
        .collect()
}

/// The sync protocol's codec: one capped postcard message per stream direction.
#[derive(Clone, Default)]
struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Request>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(wire::read_message(io, MAX_REQUEST).await?)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Response>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(wire::read_message(io, MAX_MESSAGE).await?)
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
        response: Response,
    ) -> std::io::Result<()>
    where
        T: futures::AsyncWrite + Unpin + Send,
    {
        Ok(wire::write_message(io, &response).await?)
    }
}

/// What an outbound request was for.
enum Pending {
    Heads { ns: NamespaceId },
    Run { feed: FeedId, start: u64 },
    Key { query: u64 },
}

/// A remote read waiting for its peers' answers.
struct RemoteGet {
    ns: NamespaceId,
    key: Vec<u8>,
    waiting: usize,
    runs: Vec<SparseRun>,
    reply: oneshot::Sender<Result<Vec<VersionInfo>, NodeError>>,
}

/// A run to ingest: contiguous (catch-up of a full replica, or any gossip push) or sparse.
enum Incoming {
    Run(Run),
    Sparse(SparseRun),
}

/// Store work finished, for the swarm task to act on.
enum Done {
    Serve {
        channel: ResponseChannel<Response>,
        response: Response,
    },
    Ingested {
        feed: FeedId,
        from: Source,
        result: Result<Ingested, IngestError>,
        held: u64,
        /// A fork the run's head proved against what is held, just recorded.
        fork: Option<Box<ForkProof>>,
    },
    /// A peer's heads, checked against the store for forks.
    HeadsChecked {
        peer: PeerId,
        ns: NamespaceId,
        /// The heads of feeds that are not frozen, to sync.
        live: Vec<(AuthorId, u64)>,
        /// Forks found or learnt that were not known before.
        new_forks: Vec<ForkProof>,
        /// A fork proof from the peer that proves nothing.
        bad: Option<String>,
        /// Whether the peer has more heads after these.
        more: Option<AuthorId>,
    },
    /// A fork proof from gossip, checked and recorded.
    ForkRecorded {
        peer: PeerId,
        id: MessageId,
        result: Result<bool, IngestError>,
        feed: FeedId,
    },
    /// The store thread dropped a job (it is shutting down).
    Lost,
}

/// Where a run came from: a catch-up response, or gossip that must be validated.
enum Source {
    Sync(PeerId),
    Gossip {
        peer: PeerId,
        id: MessageId,
        head_length: u64,
    },
}

impl Source {
    fn peer(&self) -> PeerId {
        match self {
            Source::Sync(peer) | Source::Gossip { peer, .. } => *peer,
        }
    }
}

struct Task {
    swarm: Swarm<Behaviour>,
    worker: StoreWorker,
    scheduler: Scheduler<PeerId>,
    /// The interest of each namespace held sparsely.
    interests: HashMap<NamespaceId, Interest>,
    remote_gets: HashMap<u64, RemoteGet>,
    next_remote_get: u64,
    topics: HashMap<TopicHash, NamespaceId>,
    by_topic: HashMap<Topic, NamespaceId>,
    pending: HashMap<OutboundRequestId, Pending>,
    jobs: FuturesUnordered<BoxFuture<'static, Done>>,
    banned: HashMap<PeerId, Instant>,
    bootstrap: Vec<Multiaddr>,
    head_exchanges: u64,
    counters: Arc<WireCounters>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Finish local work (ingests, served reads) before taking new remote work.
            tokio::select! {
                biased;
                Some(done) = self.jobs.next(), if !self.jobs.is_empty() => self.on_done(done),
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm(event),
                _ = tick.tick() => {
                    self.admit_due();
                    self.dial_bootstrap();
                    let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                    for peer in peers {
                        self.ask_heads(peer);
                    }
                }
            }
            self.send_wants();
        }
        info!("node stopped");
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Published { run } => {
                let feed = (run.head.namespace, run.head.author);
                self.scheduler.set_held(feed, run.head.length);
                let ns = run.head.namespace;
                self.publish(&ns, &Gossip::Push(WireRun::from_run(run)));
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::Dial(addr) => {
                if !self.bootstrap.contains(&addr) {
                    self.bootstrap.push(addr);
                }
                self.dial_bootstrap();
            }
            Command::Interest { ns, interest, held } => {
                self.interests.insert(ns, interest);
                for (author, held) in held {
                    self.scheduler.restart((ns, author), held);
                }
            }
            Command::RemoteGet { ns, key, reply } => self.remote_get(ns, key, reply),
            Command::Shutdown => {}
        }
    }

    /// Seals and gossips `message` to the peers of `ns`. Peers that miss it catch up by head
    /// exchange.
    fn publish(&mut self, ns: &NamespaceId, message: &Gossip) {
        let sealed = match access::seal(ns, &wire::encode(message)) {
            Ok(sealed) => sealed,
            Err(e) => {
                warn!(error = %e, "no randomness to seal gossip; peers will catch up");
                return;
            }
        };
        let topic = IdentTopic::new(Topic::of(ns).gossip_name());
        match self.swarm.behaviour_mut().gossipsub.publish(topic, sealed) {
            Ok(_) | Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {}
            Err(e) => debug!(error = %e, "gossip publish failed; peers will catch up"),
        }
    }

    /// The capability this node presents to `peer` for `ns`.
    fn cap(&self, ns: &NamespaceId, peer: &PeerId) -> Cap {
        Cap::new(ns, self.swarm.local_peer_id(), peer)
    }

    /// Lets entries that waited for the clock count, when there are any; a busy store just
    /// gets to it on a later tick.
    fn admit_due(&mut self) {
        let job = self.worker.try_run(|store| match store.admit_due() {
            Ok(0) => {}
            Ok(admitted) => info!(admitted, "entries stamped ahead of the clock now count"),
            Err(e) => warn!(error = %e, "admitting entries whose time has come"),
        });
        if let Ok(done) = job {
            self.jobs
                .push(async move { done.await.map_or(Done::Lost, |()| Done::Lost) }.boxed());
        }
    }

    fn remote_get(
        &mut self,
        ns: NamespaceId,
        key: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<VersionInfo>, NodeError>>,
    ) {
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        if peers.is_empty() {
            let _ = reply.send(Err(NodeError::NoPeers));
            return;
        }
        let query = self.next_remote_get;
        self.next_remote_get += 1;
        for peer in &peers {
            let request = Request::Key {
                topic: Topic::of(&ns),
                cap: self.cap(&ns, peer),
                key: key.clone(),
            };
            let id = self.swarm.behaviour_mut().sync.send_request(peer, request);
            self.pending.insert(id, Pending::Key { query });
        }
        self.remote_gets.insert(
            query,
            RemoteGet {
                ns,
                key,
                waiting: peers.len(),
                runs: Vec::new(),
                reply,
            },
        );
    }

    /// One peer's answer to a remote read: its runs when they verify.
    fn remote_answered(&mut self, query: u64, peer: PeerId, runs: Vec<WireSparse>) {
        let Some(get) = self.remote_gets.get_mut(&query) else {
            return;
        };
        let runs: Vec<SparseRun> = runs.into_iter().map(|r| r.into_run(get.ns)).collect();
        match weft_storage::verify_remote_key(&get.ns, &get.key, &runs) {
            Ok(_) => get.runs.extend(runs),
            Err(e) => self.penalize(peer, &format!("remote read: {e}")),
        }
        self.remote_done(query);
    }

    fn remote_done(&mut self, query: u64) {
        let Some(get) = self.remote_gets.get_mut(&query) else {
            return;
        };
        get.waiting -= 1;
        if get.waiting > 0 {
            return;
        }
        if let Some(get) = self.remote_gets.remove(&query) {
            // Each peer's runs verified alone, so together they verify too.
            let merged =
                weft_storage::verify_remote_key(&get.ns, &get.key, &get.runs).unwrap_or_default();
            let _ = get.reply.send(Ok(merged));
        }
    }

    fn status(&self) -> Status {
        Status {
            peer_id: self.swarm.local_peer_id().to_string(),
            listen: self.swarm.listeners().map(ToString::to_string).collect(),
            peers: self
                .swarm
                .connected_peers()
                .map(|peer| PeerStatus {
                    id: peer.to_string(),
                })
                .collect(),
            feeds: self
                .scheduler
                .progress()
                .map(|((namespace, author), progress)| FeedStatus {
                    namespace: *namespace,
                    author: *author,
                    held: progress.held,
                    best_remote: progress.best_remote,
                })
                .collect(),
            wire_sent: self.counters.sent.load(Ordering::Relaxed),
            wire_received: self.counters.received.load(Ordering::Relaxed),
            head_exchanges: self.head_exchanges,
            syncing: self.scheduler.busy(),
        }
    }

    fn dial_bootstrap(&mut self) {
        for addr in self.bootstrap.clone() {
            let peer = addr.iter().find_map(|p| match p {
                Protocol::P2p(peer) => Some(peer),
                _ => None,
            });
            if let Some(peer) = peer
                && (self.swarm.is_connected(&peer) || self.is_banned(&peer))
            {
                continue;
            }
            if let Err(e) = self.swarm.dial(addr.clone()) {
                debug!(%addr, error = %e, "dial failed");
            }
        }
    }

    fn is_banned(&mut self, peer: &PeerId) -> bool {
        match self.banned.get(peer) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                self.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Drops a peer that sent bad data: logged with its id, disconnected, kept away for
    /// [`BAN`], and its requests forgotten.
    fn penalize(&mut self, peer: PeerId, reason: &dyn std::fmt::Display) {
        warn!(%peer, %reason, "rejecting bad data from peer; disconnecting it");
        self.banned.insert(peer, Instant::now() + BAN);
        self.scheduler.peer_gone(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn ask_heads(&mut self, peer: PeerId) {
        let namespaces: Vec<NamespaceId> = self.by_topic.values().copied().collect();
        for ns in namespaces {
            self.ask_heads_page(peer, ns, None);
        }
    }

    fn ask_heads_page(&mut self, peer: PeerId, ns: NamespaceId, after: Option<AuthorId>) {
        let request = Request::Heads {
            topic: Topic::of(&ns),
            cap: self.cap(&ns, &peer),
            after,
        };
        let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
        self.pending.insert(id, Pending::Heads { ns });
    }

    fn send_wants(&mut self) {
        for want in self.scheduler.wants() {
            let (ns, author) = want.feed;
            let cap = self.cap(&ns, &want.peer);
            let request = match self.interests.get(&ns) {
                Some(interest) => Request::Sparse {
                    topic: Topic::of(&ns),
                    cap,
                    author,
                    start: want.start,
                    prefixes: interest.wire_prefixes(),
                    max_entries: RUN_ENTRIES,
                },
                None => Request::Run {
                    topic: Topic::of(&ns),
                    cap,
                    author,
                    start: want.start,
                    max_entries: RUN_ENTRIES,
                },
            };
            let id = self
                .swarm
                .behaviour_mut()
                .sync
                .send_request(&want.peer, request);
            self.pending.insert(
                id,
                Pending::Run {
                    feed: want.feed,
                    start: want.start,
                },
            );
        }
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if !self.swarm.is_connected(&peer) && !self.is_banned(&peer) {
                        debug!(%peer, %addr, "found by mDNS");
                        let _ = self.swarm.dial(addr);
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                if self.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 {
                    info!(peer = %peer_id, addr = %endpoint.get_remote_address(), "peer connected");
                    self.ask_heads(peer_id);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                info!(peer = %peer_id, "peer disconnected");
                self.scheduler.peer_gone(&peer_id);
            }
            SwarmEvent::NewListenAddr { address, .. } => info!(addr = %address, "listening"),
            _ => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.serve(peer, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => self.on_response(peer, request_id, response),
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let pending = self.pending.remove(&request_id);
                match &pending {
                    Some(Pending::Run { feed, .. }) => self.scheduler.failed(&peer, *feed),
                    Some(Pending::Key { query }) => self.remote_done(*query),
                    _ => {}
                }
                match error {
                    OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        self.penalize(peer, &format!("unreadable sync response: {e}"));
                    }
                    OutboundFailure::UnsupportedProtocols => {
                        debug!(%peer, "peer does not speak weft sync");
                    }
                    other => debug!(%peer, error = %other, "sync request failed"),
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e)
                    if e.kind() == std::io::ErrorKind::InvalidData =>
                {
                    self.penalize(peer, &format!("unreadable sync request: {e}"));
                }
                other => debug!(%peer, error = %other, "serving a sync request failed"),
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn serve(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        let (topic, cap) = request.credentials();
        let ns = self.by_topic.get(&topic).copied();
        // A wrong capability gets the answer an unknown namespace gets: the asker learns
        // nothing, not even that this node holds it.
        let Some(ns) = ns.filter(|ns| cap.admits(ns, &peer, self.swarm.local_peer_id())) else {
            debug!(%peer, "refusing a request for a namespace it did not prove it knows");
            self.respond(channel, Response::Refused(Refusal::NotShared));
            return;
        };
        let job = self.worker.try_run(move |store| match request {
            Request::Heads { after, .. } => match store.feeds(&ns).and_then(|feeds| {
                let forks = if after.is_none() {
                    store.forks(&ns)?
                } else {
                    Vec::new()
                };
                Ok((feeds, forks))
            }) {
                Ok((feeds, forks)) => {
                    let mut heads: Vec<WireHead> = feeds
                        .iter()
                        .filter(|f| after.is_none_or(|after| f.head.author > after))
                        .map(|f| WireHead::from_head(&f.head))
                        .collect();
                    let more = heads.len() > HEADS_PER_RESPONSE;
                    heads.truncate(HEADS_PER_RESPONSE);
                    let forks = forks.into_iter().map(|fork| fork.proof).collect();
                    Response::Heads { heads, more, forks }
                }
                Err(e) => {
                    warn!(error = %e, "reading heads to serve");
                    Response::Refused(Refusal::Internal)
                }
            },
            Request::Run {
                author,
                start,
                max_entries,
                ..
            } => {
                let max = max_entries.min(RUN_ENTRIES) as usize;
                match store.read_run(&ns, &author, start, max, RUN_BYTES) {
                    Ok(run) => Response::Run(run.map(WireRun::from_run)),
                    Err(e) => {
                        warn!(error = %e, "reading a run to serve");
                        Response::Refused(Refusal::Internal)
                    }
                }
            }
            Request::Sparse {
                author,
                start,
                prefixes,
                max_entries,
                ..
            } => {
                let max = max_entries.min(RUN_ENTRIES) as usize;
                let want = Interest::new(prefixes, Vec::new());
                match store.read_sparse(&ns, &author, start, &want, max, RUN_BYTES) {
                    Ok(Served::Run(run)) => Response::Sparse(Some(WireSparse::from_run(*run))),
                    Ok(Served::Nothing) => Response::Sparse(None),
                    Ok(Served::NotCovered) => Response::Refused(Refusal::NotShared),
                    Err(e) => {
                        warn!(error = %e, "reading a sparse run to serve");
                        Response::Refused(Refusal::Internal)
                    }
                }
            }
            Request::Key { key, .. } => {
                if !store.covers(&ns, &key).unwrap_or(false) {
                    return Response::Refused(Refusal::NotShared);
                }
                match store.read_key(&ns, &key) {
                    Ok(runs) => Response::Key(runs.into_iter().map(WireSparse::from_run).collect()),
                    Err(e) => {
                        warn!(error = %e, "reading a key to serve");
                        Response::Refused(Refusal::Internal)
                    }
                }
            }
        });
        match job {
            Ok(result) => self.jobs.push(
                async move {
                    match result.await {
                        Ok(response) => Done::Serve { channel, response },
                        Err(_) => Done::Lost,
                    }
                }
                .boxed(),
            ),
            Err(_) => {
                debug!(%peer, "store busy; refusing a sync request");
                self.respond(channel, Response::Refused(Refusal::Busy));
            }
        }
    }

    fn respond(&mut self, channel: ResponseChannel<Response>, response: Response) {
        // Fails only when the peer has gone or the request timed out.
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    fn on_response(&mut self, peer: PeerId, id: OutboundRequestId, response: Response) {
        let Some(pending) = self.pending.remove(&id) else {
            return;
        };
        match (pending, response) {
            (Pending::Heads { ns, .. }, Response::Heads { heads, more, forks }) => {
                if heads.len() > HEADS_PER_RESPONSE || forks.len() > HEADS_PER_RESPONSE {
                    self.penalize(peer, &"more heads than a response may carry");
                    return;
                }
                let more = heads.last().map(|h| h.author).filter(|_| more);
                let mut checked = Vec::with_capacity(heads.len());
                for head in heads {
                    let head = head.into_head(ns);
                    if head.author == self.worker.facts().author {
                        continue;
                    }
                    if let Err(e) = head.verify() {
                        self.penalize(peer, &format!("head of {}: {e}", head.author));
                        return;
                    }
                    let wanted = self
                        .interests
                        .get(&ns)
                        .is_none_or(|interest| interest.covers_author(&head.author));
                    if wanted {
                        checked.push(head);
                    }
                }
                self.check_heads(peer, ns, checked, forks, more);
            }
            (Pending::Run { feed, start, .. }, Response::Run(run)) => {
                let Some(run) = run else {
                    self.scheduler.received(&peer, feed, start, 0);
                    return;
                };
                let entries = run.entries.len() as u64;
                let fits = run.start == start
                    && run.head.author == feed.1
                    && entries <= u64::from(RUN_ENTRIES);
                if !fits || !self.scheduler.received(&peer, feed, start, entries) {
                    self.scheduler.failed(&peer, feed);
                    self.penalize(
                        peer,
                        &format!(
                            "sent a run it was not asked for (asked from {start}, got {} from {})",
                            entries, run.start
                        ),
                    );
                    return;
                }
                self.ingest(
                    feed,
                    Incoming::Run(run.into_run(feed.0)),
                    Source::Sync(peer),
                );
            }
            (Pending::Run { feed, start }, Response::Sparse(run)) => {
                let Some(run) = run else {
                    self.scheduler.received(&peer, feed, start, 0);
                    return;
                };
                let fits = self.interests.contains_key(&feed.0)
                    && run.start == start
                    && run.head.author == feed.1
                    && run.entries.len() <= RUN_ENTRIES as usize;
                if !fits || !self.scheduler.received_to(&peer, feed, start, run.end) {
                    self.scheduler.failed(&peer, feed);
                    self.penalize(
                        peer,
                        &format!(
                            "sent a sparse run it was not asked for (asked from {start}, got {} from {})",
                            run.entries.len(),
                            run.start
                        ),
                    );
                    return;
                }
                self.ingest(
                    feed,
                    Incoming::Sparse(run.into_run(feed.0)),
                    Source::Sync(peer),
                );
            }
            (Pending::Key { query }, Response::Key(runs)) => {
                self.remote_answered(query, peer, runs);
            }
            (Pending::Key { query }, Response::Refused(reason)) => {
                debug!(%peer, ?reason, "remote read refused");
                self.remote_done(query);
            }
            (Pending::Run { feed, start }, Response::Refused(reason)) => {
                debug!(%peer, ?reason, "run refused");
                if reason == Refusal::NotShared {
                    // A sparse peer that does not hold what was asked: asking again at once
                    // would loop, so stop asking it until it advertises the feed again.
                    self.scheduler.received(&peer, feed, start, 0);
                } else {
                    self.scheduler.failed(&peer, feed);
                }
            }
            (Pending::Heads { .. }, Response::Refused(reason)) => {
                debug!(%peer, ?reason, "heads refused");
            }
            (pending, _) => {
                match pending {
                    Pending::Run { feed, .. } => self.scheduler.failed(&peer, feed),
                    Pending::Key { query } => self.remote_done(query),
                    Pending::Heads { .. } => {}
                }
                self.penalize(peer, &"answered with the wrong kind of response");
            }
        }
    }

    fn ingest(&mut self, feed: FeedId, run: Incoming, from: Source) {
        let job = self.worker.try_run(move |store| {
            let (result, head) = match &run {
                Incoming::Run(run) => (store.ingest(run), &run.head),
                Incoming::Sparse(run) => (store.ingest_sparse(run), &run.head),
            };
            let mut fork = None;
            if let Ok(Ingested::Gap { .. } | Ingested::AlreadyHeld { .. }) = &result {
                // Nothing was verified: check the head before believing or forwarding it.
                if let Err(e) = head.verify() {
                    return (Err(IngestError::Invalid(Invalid::Proof(e))), 0, None);
                }
                // A head at or below what is held must fit the held tree.
                fork = record_new_fork(store, head).map(Box::new);
            }
            // A failed ingest changed nothing; the scheduler keeps the larger of what it knew.
            let held = result.as_ref().map_or(0, Ingested::held);
            (result, held, fork)
        });
        match job {
            Ok(result) => self.jobs.push(
                async move {
                    match result.await {
                        Ok((result, held, fork)) => Done::Ingested {
                            feed,
                            from,
                            result,
                            held,
                            fork,
                        },
                        Err(_) => Done::Lost,
                    }
                }
                .boxed(),
            ),
            Err(_) => {
                debug!("store busy; dropping a run to ask for it again");
                if let Source::Sync(_) = from {
                    self.scheduler.ingested(feed, 0, false);
                } else if let Source::Gossip { peer, id, .. } = from {
                    self.report(&id, &peer, MessageAcceptance::Ignore);
                }
            }
        }
    }

    fn on_done(&mut self, done: Done) {
        match done {
            Done::Serve { channel, response } => self.respond(channel, response),
            Done::HeadsChecked {
                peer,
                ns,
                live,
                new_forks,
                bad,
                more,
            } => {
                if let Some(bad) = bad {
                    self.penalize(peer, &bad);
                    return;
                }
                for proof in new_forks {
                    let feed = (ns, proof.longer.author);
                    self.scheduler.freeze(feed);
                    self.publish(&ns, &Gossip::Fork(proof));
                }
                for (author, length) in live {
                    self.scheduler.advertised(peer, (ns, author), length);
                }
                match more {
                    Some(last) => self.ask_heads_page(peer, ns, Some(last)),
                    None => self.head_exchanges += 1,
                }
            }
            Done::ForkRecorded {
                peer,
                id,
                result,
                feed,
            } => match result {
                Ok(_) => {
                    self.scheduler.freeze(feed);
                    self.report(&id, &peer, MessageAcceptance::Accept);
                }
                Err(IngestError::Invalid(invalid)) => {
                    self.report(&id, &peer, MessageAcceptance::Reject);
                    self.penalize(peer, &invalid);
                }
                Err(e) => {
                    warn!(error = %e, "recording a fork");
                    self.report(&id, &peer, MessageAcceptance::Ignore);
                }
            },
            Done::Ingested {
                feed,
                from,
                result,
                held,
                fork,
            } => {
                if let Some(proof) = fork {
                    self.scheduler.freeze(feed);
                    self.publish(&feed.0, &Gossip::Fork(*proof));
                }
                if let Ok(Ingested::Frozen { .. }) = result {
                    self.scheduler.freeze(feed);
                }
                let ok = matches!(
                    result,
                    Ok(Ingested::Appended { .. }
                        | Ingested::AlreadyHeld { .. }
                        | Ingested::Frozen { .. })
                );
                if let Source::Sync(_) = from {
                    self.scheduler.ingested(feed, held, ok);
                } else {
                    self.scheduler.set_held(feed, held);
                }
                let peer = from.peer();
                match (&result, &from) {
                    (Err(IngestError::Invalid(invalid)), _) => {
                        if let Source::Gossip { id, peer, .. } = &from {
                            self.report(id, peer, MessageAcceptance::Reject);
                        }
                        self.penalize(peer, invalid);
                    }
                    (Err(e), _) => {
                        warn!(error = %e, "ingest failed");
                        if let Source::Gossip { id, peer, .. } = &from {
                            self.report(id, peer, MessageAcceptance::Ignore);
                        }
                    }
                    (
                        Ok(_),
                        Source::Gossip {
                            id,
                            peer,
                            head_length,
                        },
                    ) => {
                        self.report(id, peer, MessageAcceptance::Accept);
                        // The head verified (by ingest, or before a gap was believed): the
                        // peer holds that much, and a gap is fetched by catch-up.
                        self.scheduler.advertised(*peer, feed, *head_length);
                    }
                    (Ok(Ingested::Appended { added, held }), Source::Sync(_)) => {
                        debug!(%peer, added, held, "caught up a run");
                    }
                    (Ok(_), Source::Sync(_)) => {}
                }
            }
            Done::Lost => {}
        }
    }

    fn report(&mut self, id: &MessageId, peer: &PeerId, acceptance: MessageAcceptance) {
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(id, peer, acceptance);
    }

    fn on_gossip(&mut self, peer: PeerId, id: MessageId, message: gossipsub::Message) {
        let Some(ns) = self.topics.get(&message.topic).copied() else {
            self.report(&id, &peer, MessageAcceptance::Reject);
            self.penalize(peer, &"gossip on a namespace this node does not hold");
            return;
        };
        let gossip: Gossip = match access::unseal(&ns, &message.data)
            .map_err(|e| e.to_string())
            .and_then(|opened| wire::decode(&opened, MAX_PUSH).map_err(|e| e.to_string()))
        {
            Ok(gossip) => gossip,
            Err(e) => {
                self.report(&id, &peer, MessageAcceptance::Reject);
                self.penalize(peer, &format!("unreadable gossip: {e}"));
                return;
            }
        };
        let push = match gossip {
            Gossip::Push(push) => push,
            Gossip::Fork(proof) => {
                self.on_fork_gossip(peer, id, ns, proof);
                return;
            }
        };
        let run = push.into_run(ns);
        let feed = (ns, run.head.author);
        if run.head.author == self.worker.facts().author {
            self.report(&id, &peer, MessageAcceptance::Ignore);
            return;
        }
        let head_length = run.head.length;
        self.ingest(
            feed,
            Incoming::Run(run),
            Source::Gossip {
                peer,
                id,
                head_length,
            },
        );
    }

    /// Checks a peer's heads and fork proofs against the store off the swarm task, then syncs
    /// the feeds that are not frozen ([`Done::HeadsChecked`]).
    fn check_heads(
        &mut self,
        peer: PeerId,
        ns: NamespaceId,
        heads: Vec<SignedHead>,
        forks: Vec<ForkProof>,
        more: Option<AuthorId>,
    ) {
        let job = self.worker.try_run(move |store| {
            let mut new_forks = Vec::new();
            for proof in forks {
                if proof.longer.namespace != ns {
                    return (
                        Vec::new(),
                        Vec::new(),
                        Some("a fork proof of another namespace".to_string()),
                    );
                }
                match store.record_fork(&proof) {
                    Ok(true) => new_forks.push(proof),
                    Ok(false) => {}
                    Err(IngestError::Invalid(e)) => {
                        return (Vec::new(), Vec::new(), Some(e.to_string()));
                    }
                    Err(e) => warn!(error = %e, "recording a fork"),
                }
            }
            for head in &heads {
                new_forks.extend(record_new_fork(store, head));
            }
            let frozen: HashSet<AuthorId> = store
                .forks(&ns)
                .unwrap_or_default()
                .into_iter()
                .map(|fork| fork.proof.longer.author)
                .collect();
            let live = heads
                .iter()
                .filter(|head| !frozen.contains(&head.author))
                .map(|head| (head.author, head.length))
                .collect();
            (live, new_forks, None)
        });
        match job {
            Ok(result) => self.jobs.push(
                async move {
                    match result.await {
                        Ok((live, new_forks, bad)) => Done::HeadsChecked {
                            peer,
                            ns,
                            live,
                            new_forks,
                            bad,
                            more,
                        },
                        Err(_) => Done::Lost,
                    }
                }
                .boxed(),
            ),
            // The next tick asks for heads again.
            Err(_) => debug!("store busy; dropping a peer's heads"),
        }
    }

    fn on_fork_gossip(&mut self, peer: PeerId, id: MessageId, ns: NamespaceId, proof: ForkProof) {
        if proof.longer.namespace != ns {
            self.report(&id, &peer, MessageAcceptance::Reject);
            self.penalize(peer, &"a fork proof of another namespace");
            return;
        }
        let feed = (ns, proof.longer.author);
        match self.worker.try_run(move |store| store.record_fork(&proof)) {
            Ok(result) => self.jobs.push(
                async move {
                    match result.await {
                        Ok(result) => Done::ForkRecorded {
                            peer,
                            id,
                            result,
                            feed,
                        },
                        Err(_) => Done::Lost,
                    }
                }
                .boxed(),
            ),
            Err(_) => self.report(&id, &peer, MessageAcceptance::Ignore),
        }
    }
}

/// Checks `head` against the held tree; a fork it proves is recorded (freezing the feed) and
/// returned if it was not known before.
fn record_new_fork(store: &Store, head: &SignedHead) -> Option<ForkProof> {
    let proof = match store.check_head(head) {
        Ok(proof) => proof?,
        Err(e) => {
            warn!(error = %e, "checking a head for forks");
            return None;
        }
    };
    match store.record_fork(&proof) {
        Ok(true) => Some(proof),
        Ok(false) => None,
        Err(e) => {
            warn!(error = %e, "recording a fork");
            None
        }
    }
}
