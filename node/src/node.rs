//! The running node: one task owns the swarm and moves bytes and store jobs between libp2p
//! and the sync protocol ([`crate::sync`]); callers hold a cloneable [`NodeHandle`].
//!
//! The task never waits on the store: every store call is queued on the store thread with
//! [`StoreWorker::reserve`], and its result comes back as a [`Finished`] the task then acts
//! on. When the queue is full, inbound requests are refused as busy and the client is told
//! a job was dropped, so a slow disk slows sync down instead of growing memory.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use libp2p::gossipsub::{self, MessageId, TopicHash};
use libp2p::identity::Keypair;
use libp2p::request_response::{self, OutboundFailure, OutboundRequestId, ResponseChannel};
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{Multiaddr, PeerId, Swarm, identify, mdns};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};
use weft_storage::{NamespaceId, VersionInfo};

use crate::book::AddressBook;
use crate::config::NodeConfig;
use crate::gossip;
use crate::handle::{Command, NodeHandle};
use crate::metrics::{Kind, Metrics};
use crate::reach::Reach;
use crate::status::{BanStatus, FeedStatus, PeerStatus, Status};
use crate::swarm::{Behaviour, BehaviourEvent, Listening, build_swarm, listen_all};
use crate::sync::{self, Action, Client, Done, Fault, FeedId, Holdings, Pending, Server};
use crate::transport::WireCounters;
use crate::wire::{Refusal, Request, Response};
use crate::worker::{Closed, StoreThread, StoreWorker};

/// How long a peer that sent bad data is kept away.
const BAN: Duration = Duration::from_secs(300);

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
    /// Part of the node panicked; what it was doing when it did is lost, but every commit it
    /// acknowledged is on disk.
    #[error("the node's {part} panicked: {message}")]
    Panicked {
        /// Which part: the swarm task or the store thread.
        part: &'static str,
        /// The panic's message.
        message: String,
    },
    /// A remote read found no connected peer to ask.
    #[error("no peers are connected to ask")]
    NoPeers,
    /// The store was too busy to finish the call; it may be tried again.
    #[error("the node is too busy to answer now; try again")]
    Busy,
    /// The request needs a running node (peers, status), and none runs on this replica.
    #[error("this needs a running node")]
    NotRunning,
    /// A [`NodeConfig`] setting cannot be used.
    #[error("invalid node setting: {0}")]
    Config(&'static str),
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
    store_thread: Option<StoreThread>,
}

impl Node {
    /// Starts a node on `store`: listens, dials the configured peers and starts syncing.
    /// Returns once every listener has its first address.
    ///
    /// # Errors
    /// [`NodeError::Listen`] when an address cannot be listened on (a taken
    /// [`crate::config::DEFAULT_PORT`] falls back to any port), [`NodeError::Transport`],
    /// [`NodeError::Config`] for a zero [`NodeConfig::sync_interval`].
    pub async fn start(
        store: weft_storage::Store,
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
        // tokio's timer panics on a zero period, and a node that never waits would spin.
        if config.sync_interval.is_zero() {
            return Err(NodeError::Config("sync_interval must be longer than zero"));
        }
        let holdings = worker.run(Holdings::of).await??;
        let counters = Arc::new(WireCounters::default());
        let mut swarm = build_swarm(&keypair, &config, Arc::clone(&counters))?;
        let topics = gossip::subscribe(&mut swarm, &holdings.namespaces)?;
        let Listening {
            addrs: listen,
            early,
        } = listen_all(&mut swarm, &config.listen).await?;
        for addr in &listen {
            info!(%addr, "listening");
        }
        let me = swarm.local_peer_id().to_bytes();
        let reach = Reach::new(
            *swarm.local_peer_id(),
            config.peers.clone(),
            &config.bootstrap,
            &holdings.namespaces,
            AddressBook::load(Some(&worker.facts().dir)),
        );
        let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
        let metrics = Arc::new(Metrics::new());
        let handle = NodeHandle {
            commands,
            worker: worker.clone(),
            peer_id: *swarm.local_peer_id(),
            counters: Arc::clone(&counters),
            metrics: Arc::clone(&metrics),
        };
        let mut task = Task {
            counters,
            metrics,
            server: Server::new(me.clone(), holdings.namespaces.iter().copied()),
            client: Client::new(me, holdings),
            topics,
            swarm,
            worker,
            pending: HashMap::new(),
            remote_gets: HashMap::new(),
            jobs: FuturesUnordered::new(),
            banned: HashMap::new(),
            no_sync: HashSet::new(),
            reach,
        };
        // Peers that connected (found it by mDNS, say) and asked while it was still starting.
        for event in early {
            task.on_swarm(event);
        }
        task.reach_round();
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
    /// A part that panicked while the node ran is reported here, so it is never silent.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        let _ = self.handle.commands.send(Command::Shutdown).await;
        let task = self.task.await;
        drop(self.handle);
        if let Err(error) = task
            && error.is_panic()
        {
            return Err(NodeError::panicked("swarm task", error.into_panic()));
        }
        match self.store_thread {
            Some(thread) => thread.join().await,
            None => Ok(()),
        }
    }
}

impl NodeError {
    pub(crate) fn panicked(part: &'static str, panic: Box<dyn std::any::Any + Send>) -> NodeError {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".to_string());
        NodeError::Panicked { part, message }
    }
}

type SyncAction = Action<PeerId, MessageId>;

/// Store work finished, for the swarm task to act on.
enum Finished {
    /// An answer to a peer's request, to send.
    Served {
        /// The asker's peer id bytes, whose share of the server this frees.
        asker: Vec<u8>,
        channel: ResponseChannel<Response>,
        response: Response,
        /// The asker and namespace, when its round's digest matched this replica's heads.
        matched: Option<(PeerId, NamespaceId)>,
    },
    /// A request admitted but not answered: the store went away.
    Unserved { asker: Vec<u8> },
    /// A sync client job, for the client.
    Sync(Done<PeerId, MessageId>),
    /// An ingest of this feed committed; its result waits for the disk.
    Committed(FeedId),
    /// Nothing to do: the job's result was its side effect, or the store thread dropped it
    /// (it is shutting down).
    Nothing,
}

/// A peer kept away for sending bad data.
struct Ban {
    until: Instant,
    /// The fault, kept so `status` can say why (and tests can check it was the right one).
    reason: String,
}

struct Task {
    swarm: Swarm<Behaviour>,
    worker: StoreWorker,
    client: Client<PeerId, MessageId>,
    server: Server,
    topics: HashMap<TopicHash, NamespaceId>,
    /// What each sync request in flight asked.
    pending: HashMap<OutboundRequestId, (PeerId, Pending)>,
    remote_gets: HashMap<u64, oneshot::Sender<Result<Vec<VersionInfo>, NodeError>>>,
    jobs: FuturesUnordered<BoxFuture<'static, Finished>>,
    banned: HashMap<PeerId, Ban>,
    /// Connected peers that do not speak the sync protocol (relays): not asked each round.
    no_sync: HashSet<PeerId>,
    reach: Reach,
    counters: Arc<WireCounters>,
    metrics: Arc<Metrics>,
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, interval: Duration) {
        self.admit_due();
        let phase = sync::timer_phase(&self.swarm.local_peer_id().to_bytes(), interval);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // Finish local work (ingests, served reads) before taking new remote work.
            tokio::select! {
                biased;
                Some(finished) = self.jobs.next(), if !self.jobs.is_empty() => self.on_finished(finished),
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(command) => self.on_command(command),
                },
                event = self.swarm.select_next_some() => self.on_swarm(event),
                _ = tick.tick() => {
                    self.admit_due();
                    self.reach_round();
                    let peers = self.sync_peers();
                    let actions = self.client.timer(&peers);
                    self.act(actions);
                }
            }
            let wants = self.client.wants();
            self.act(wants);
        }
        info!("node stopped");
    }

    /// Peers this node syncs with: connected, and speaking weft's sync protocol.
    fn sync_peers(&self) -> Vec<PeerId> {
        self.swarm
            .connected_peers()
            .filter(|peer| !self.no_sync.contains(peer))
            .copied()
            .collect()
    }

    /// Exchanges heads with every peer again: a new sync round.
    fn sync_round(&mut self) {
        let peers = self.sync_peers();
        let actions = self.client.tick(&peers);
        self.act(actions);
    }

    /// Carries out what the sync client asked for.
    fn act(&mut self, actions: Vec<SyncAction>) {
        for action in actions {
            match action {
                Action::Send {
                    peer,
                    request,
                    pending,
                } => {
                    self.metrics
                        .requests_sent
                        .get_or_create(&Kind::of(request.kind()))
                        .inc();
                    let id = self.swarm.behaviour_mut().sync.send_request(&peer, request);
                    self.pending.insert(id, (peer, pending));
                }
                Action::Store(job) => {
                    let dropped = match self.worker.reserve() {
                        Ok(slot) => {
                            let done = match job.ingested_feed() {
                                Some(feed) => {
                                    let fetched = job.fetched();
                                    let (committed, done) =
                                        slot.run_remote(feed, move |store| job.run(store));
                                    // A run catch-up asked for frees its share of the
                                    // scheduler's runs as soon as it has committed.
                                    if fetched {
                                        self.jobs.push(
                                            async move {
                                                committed.await.map_or(Finished::Nothing, |()| {
                                                    Finished::Committed(feed)
                                                })
                                            }
                                            .boxed(),
                                        );
                                    }
                                    done
                                }
                                None => slot.run(move |store| job.run(store)),
                            };
                            self.jobs.push(
                                async move { done.await.map_or(Finished::Nothing, Finished::Sync) }
                                    .boxed(),
                            );
                            None
                        }
                        Err(_) => Some(job),
                    };
                    if let Some(job) = dropped {
                        let actions = self.client.on_dropped(job);
                        self.act(actions);
                    }
                }
                Action::Penalize { peer, fault } => self.ban(peer, &fault),
                Action::Publish { ns, message } => gossip::publish(&mut self.swarm, &ns, &message),
                Action::Validate {
                    peer,
                    message,
                    verdict,
                } => gossip::report(&mut self.swarm, &message, &peer, verdict),
                Action::Answer { query, versions } => {
                    if let Some(reply) = self.remote_gets.remove(&query) {
                        let _ = reply.send(versions.ok_or(NodeError::Busy));
                    }
                }
            }
        }
    }

    fn on_finished(&mut self, finished: Finished) {
        match finished {
            Finished::Served {
                asker,
                channel,
                response,
                matched,
            } => {
                if let Some((peer, ns)) = matched {
                    self.client.peer_matched(peer, ns);
                }
                self.server.answered(&asker);
                self.respond(channel, response);
            }
            Finished::Unserved { asker } => self.server.answered(&asker),
            Finished::Sync(done) => {
                self.metrics.entries_ingested.inc_by(done.entries_stored());
                let actions = self.client.on_done(done);
                self.act(actions);
            }
            Finished::Committed(feed) => self.client.committed(feed),
            Finished::Nothing => {}
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Published { run } => {
                let actions = self.client.published(run);
                self.act(actions);
            }
            Command::Status(reply) => {
                let _ = reply.send(self.status());
            }
            Command::SyncNow(reply) => {
                self.sync_round();
                let _ = reply.send(self.client.round());
            }
            Command::Dial(addr) => {
                self.reach.add_peer(&mut self.swarm, addr);
                self.reach_round();
            }
            Command::Interest { ns, interest, held } => {
                self.client.set_interest(ns, interest, held);
            }
            Command::RemoteGet { ns, key, reply } => {
                let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
                match self.client.remote_get(ns, key, &peers) {
                    Some((query, actions)) => {
                        self.remote_gets.insert(query, reply);
                        self.act(actions);
                    }
                    None => {
                        let _ = reply.send(Err(NodeError::NoPeers));
                    }
                }
            }
            Command::Shutdown => {}
        }
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
            self.jobs.push(
                async move { done.await.map_or(Finished::Nothing, |()| Finished::Nothing) }.boxed(),
            );
        }
    }

    fn status(&self) -> Status {
        let (reachability, reservations, punched, punch_failed) = self.reach.status();
        let now = Instant::now();
        Status {
            peer_id: self.swarm.local_peer_id().to_string(),
            listen: self.swarm.listeners().map(ToString::to_string).collect(),
            peers: self
                .swarm
                .connected_peers()
                .map(|peer| {
                    let address = self.reach.connection_of(peer);
                    PeerStatus {
                        id: peer.to_string(),
                        address: address.map(ToString::to_string).unwrap_or_default(),
                        relayed: address.is_some_and(crate::reach::is_relayed),
                    }
                })
                .collect(),
            feeds: self
                .client
                .progress()
                .map(|((namespace, author), progress)| FeedStatus {
                    namespace: *namespace,
                    author: *author,
                    held: progress.held,
                    best_remote: progress.best_remote,
                    unserved: progress.unserved,
                })
                .collect(),
            wire_sent: self.counters.sent.load(Ordering::Relaxed),
            wire_received: self.counters.received.load(Ordering::Relaxed),
            head_exchanges: self.client.head_exchanges(),
            refusals: self.client.refusals(),
            round: self.client.round(),
            exchanged_round: self.client.exchanged_round(&self.sync_peers()),
            syncing: self.client.busy(),
            reachability,
            reservations,
            hole_punches: (punched, punch_failed),
            bans: self
                .banned
                .iter()
                .map(|(peer, ban)| BanStatus {
                    peer: peer.to_string(),
                    reason: ban.reason.clone(),
                    seconds_left: ban.until.saturating_duration_since(now).as_secs(),
                })
                .collect(),
        }
    }

    fn reach_round(&mut self) {
        let now = Instant::now();
        self.banned.retain(|_, ban| ban.until > now);
        let banned = self.banned.keys().copied().collect();
        self.reach.tick(&mut self.swarm, &banned);
    }

    fn is_banned(&mut self, peer: &PeerId) -> bool {
        match self.banned.get(peer) {
            Some(ban) if ban.until > Instant::now() => true,
            Some(_) => {
                self.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Hands libp2p's own metrics what they count.
    fn record(&self, event: &SwarmEvent<BehaviourEvent>) {
        use libp2p::metrics::Recorder;
        let metrics = &self.metrics.libp2p;
        metrics.record(event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => metrics.record(e),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(e)) => metrics.record(e),
            _ => {}
        }
    }

    /// Drops a peer that sent bad data: logged with its id, disconnected and kept away for
    /// [`BAN`]. The client has already forgotten what it asked of it.
    fn ban(&mut self, peer: PeerId, fault: &Fault) {
        warn!(%peer, reason = %fault, "rejecting bad data from peer; disconnecting it");
        self.metrics
            .bans
            .get_or_create(&Kind::of(fault.kind()))
            .inc();
        let ban = Ban {
            until: Instant::now() + BAN,
            reason: fault.to_string(),
        };
        self.banned.insert(peer, ban);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn on_swarm(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => self.on_sync(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            // A peer that joins a namespace's gossip may have missed pushes since it connected:
            // heads tell it what it lacks now rather than at the next round.
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Subscribed {
                peer_id,
                topic,
            })) if self.topics.contains_key(&topic) => {
                let actions = self.client.connected(&peer_id);
                self.act(actions);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                for (peer, addr) in found {
                    if !self.swarm.is_connected(&peer) && !self.is_banned(&peer) {
                        debug!(%peer, %addr, "found by mDNS");
                        // Every node on the segment hears an answer at once, so two nodes dial
                        // each other in the same instant. From their listening ports both dials
                        // would be one TCP connection (a simultaneous open) on which each side
                        // starts the handshake as the dialer, and both fail; from a fresh port
                        // they are two connections that both succeed.
                        let dial = DialOpts::peer_id(peer)
                            .addresses(vec![addr])
                            .allocate_new_port()
                            .build();
                        if let Err(error) = self.swarm.dial(dial) {
                            debug!(%peer, %error, "not dialing a peer found by mDNS");
                        }
                    }
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in &info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr.clone());
                }
                self.reach.announced(peer_id, info.listen_addrs);
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => self.reach.on_relay(event),
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.reach.on_dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.reach.on_autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::Rendezvous(event)) => {
                self.reach.on_rendezvous(&mut self.swarm, event);
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                num_established,
                endpoint,
                ..
            } => {
                if self.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                let remote = endpoint.get_remote_address().clone();
                if num_established.get() == 1 {
                    info!(peer = %peer_id, addr = %remote, "peer connected");
                    let actions = self.client.connected(&peer_id);
                    self.act(actions);
                }
                self.reach
                    .connected(&mut self.swarm, peer_id, connection_id, remote);
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.reach.closed(connection_id);
                if num_established == 0 {
                    info!(peer = %peer_id, "peer disconnected");
                    self.no_sync.remove(&peer_id);
                    self.client.disconnected(&peer_id);
                    self.server.peer_gone(&peer_id.to_bytes());
                }
            }
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                info!(addr = %address, "listening");
                self.reach.listening(&mut self.swarm, listener_id, address);
            }
            SwarmEvent::ExternalAddrConfirmed { address } => {
                info!(addr = %address, "reachable at");
                self.reach.external_confirmed(&mut self.swarm);
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => {
                self.reach.listener_closed(&mut self.swarm, listener_id);
            }
            _ => {}
        }
    }

    fn on_sync(&mut self, event: request_response::Event<Request, Response>) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    self.metrics
                        .requests_served
                        .get_or_create(&Kind::of(request.kind()))
                        .inc();
                    self.serve(peer, request, channel);
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    self.metrics
                        .responses_received
                        .get_or_create(&Kind::of(response.kind()))
                        .inc();
                    if let Some((_, pending)) = self.pending.remove(&request_id) {
                        if matches!(
                            (&pending, &response),
                            (
                                Pending::Heads { .. } | Pending::Ranges { .. },
                                Response::Heads { .. } | Response::Ranges { .. }
                            )
                        ) {
                            // It proved it holds the namespace: remember where it is.
                            self.reach.member(peer);
                        }
                        let actions = self.client.on_response(peer, pending, response);
                        self.act(actions);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.metrics
                    .responses_received
                    .get_or_create(&Kind::of("failed"))
                    .inc();
                let fault = match error {
                    OutboundFailure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                        Some(Fault::Unreadable(format!("sync response: {e}")))
                    }
                    OutboundFailure::UnsupportedProtocols => {
                        debug!(%peer, "peer does not speak weft sync");
                        self.no_sync.insert(peer);
                        None
                    }
                    other => {
                        debug!(%peer, error = %other, "sync request failed");
                        None
                    }
                };
                let actions = match self.pending.remove(&request_id) {
                    Some((_, pending)) => self.client.on_failure(peer, pending, fault),
                    None => fault
                        .map(|f| self.client.blame(peer, f))
                        .into_iter()
                        .collect(),
                };
                self.act(actions);
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                request_response::InboundFailure::Io(e)
                    if e.kind() == std::io::ErrorKind::InvalidData =>
                {
                    let fault = Fault::Unreadable(format!("sync request: {e}"));
                    let action = self.client.blame(peer, fault);
                    self.act(vec![action]);
                }
                other => debug!(%peer, error = %other, "serving a sync request failed"),
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn serve(&mut self, peer: PeerId, request: Request, channel: ResponseChannel<Response>) {
        let asker = peer.to_bytes();
        let ns = match self.server.admit(&asker, &request, Instant::now()) {
            Ok(ns) => ns,
            Err(refusal) => {
                debug!(%peer, ?refusal, "refusing a sync request");
                self.respond(channel, Response::Refused(refusal));
                return;
            }
        };
        let busy = match self.worker.reserve() {
            Ok(slot) => {
                let answered = slot.run(move |store| sync::answer_matching(store, &ns, request));
                self.jobs.push(
                    async move {
                        match answered.await {
                            Ok((response, matched)) => Finished::Served {
                                asker,
                                channel,
                                response,
                                matched: matched.then_some((peer, ns)),
                            },
                            Err(_) => Finished::Unserved { asker },
                        }
                    }
                    .boxed(),
                );
                None
            }
            Err(_) => Some(channel),
        };
        if let Some(channel) = busy {
            debug!(%peer, "store busy; refusing a sync request");
            self.server.answered(&peer.to_bytes());
            self.respond(channel, Response::Refused(Refusal::Busy));
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

    fn on_gossip(&mut self, peer: PeerId, id: MessageId, message: gossipsub::Message) {
        let Some(ns) = self.topics.get(&message.topic).copied() else {
            gossip::report(&mut self.swarm, &id, &peer, sync::Verdict::Reject);
            let action = self.client.blame(peer, Fault::ForeignGossip);
            self.act(vec![action]);
            return;
        };
        let actions = match gossip::open(&ns, &message.data) {
            Ok(gossip) => self.client.on_gossip(peer, id, ns, gossip),
            Err(e) => {
                gossip::report(&mut self.swarm, &id, &peer, sync::Verdict::Reject);
                vec![
                    self.client
                        .blame(peer, Fault::Unreadable(format!("gossip: {e}"))),
                ]
            }
        };
        self.act(actions);
    }
}
