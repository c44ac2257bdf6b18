//! Reaching peers across networks: the configured peers and bootstrap nodes kept dialed, a
//! reservation on every bootstrap relay (so devices behind NAT can be dialed through it),
//! registration and discovery at every bootstrap rendezvous point under a key derived from
//! each namespace, hole punching's result (relayed connections are closed once a direct one
//! exists), AutoNAT's verdict, and the address book of members seen.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, dcutr, relay, rendezvous};
use tracing::{debug, info, warn};
use weft_storage::NamespaceId;

use crate::access;
use crate::book::AddressBook;
use crate::status::{Reachability, Reservation};
use crate::swarm::Behaviour;

/// How often every rendezvous point is asked for new members.
const DISCOVER_EVERY: Duration = Duration::from_secs(30);

/// How long after one dial of a known peer the next is tried.
const REDIAL_AFTER: Duration = Duration::from_secs(60);

/// How long a dial of one address is left to finish before that address is dialed again:
/// rounds can come moments apart (the one at start and the timer's first), and a second dial
/// of an address still being dialed opens a second connection, over which every idle minute
/// then pings too. Other addresses of the peer are still dialed meanwhile, so a direct one
/// can win over a relayed one.
const DIAL_PATIENCE: Duration = Duration::from_secs(5);

/// Address book peers dialed per round, at most.
const DIALS_PER_ROUND: usize = 8;

/// A bootstrap node: a relay and rendezvous point.
struct Bootstrap {
    peer: PeerId,
    addr: Multiaddr,
    /// The listener of the reservation asked of it, and the relayed address once accepted.
    reservation: Option<(ListenerId, Option<Multiaddr>)>,
    /// When this node's registrations there run out.
    registered_until: Option<Instant>,
    discovered_at: Option<Instant>,
    cookies: HashMap<rendezvous::Namespace, rendezvous::Cookie>,
}

/// The reach state of a node.
pub(crate) struct Reach {
    me: PeerId,
    /// Peers to keep dialing (config and ticket peers), each ending in `/p2p/<id>`.
    peers: Vec<Multiaddr>,
    bootstrap: Vec<Bootstrap>,
    /// The rendezvous key of each namespace held.
    keys: Vec<rendezvous::Namespace>,
    nat: Reachability,
    /// Every open connection: its peer and remote address.
    connections: HashMap<ConnectionId, (PeerId, Multiaddr)>,
    /// The addresses each peer last announced (identify).
    announced: HashMap<PeerId, Vec<Multiaddr>>,
    book: AddressBook,
    dialed: HashMap<PeerId, Instant>,
    /// When each configured or bootstrap address was last dialed.
    addr_dialed: HashMap<Multiaddr, Instant>,
    /// Peers not to dial (kept away for bad data), as of the last round.
    banned: HashSet<PeerId>,
    punched: u64,
    punch_failed: u64,
}

impl Reach {
    /// The reach of node `me` holding `namespaces`: dialing `peers`, through `bootstrap`
    /// nodes, remembering members in `book`.
    pub fn new(
        me: PeerId,
        peers: Vec<Multiaddr>,
        bootstrap: &[Multiaddr],
        namespaces: &[NamespaceId],
        book: AddressBook,
    ) -> Reach {
        let bootstrap = bootstrap
            .iter()
            .filter_map(|addr| match peer_of(addr) {
                Some(peer) => Some(Bootstrap {
                    peer,
                    addr: addr.clone(),
                    reservation: None,
                    registered_until: None,
                    discovered_at: None,
                    cookies: HashMap::new(),
                }),
                None => {
                    warn!(%addr, "a bootstrap address must end in /p2p/<peer id>; ignoring it");
                    None
                }
            })
            .collect();
        let keys = namespaces
            .iter()
            .filter_map(|ns| rendezvous::Namespace::new(access::discovery_key(ns)).ok())
            .collect();
        Reach {
            me,
            peers,
            bootstrap,
            keys,
            nat: Reachability::Unknown,
            connections: HashMap::new(),
            announced: HashMap::new(),
            book,
            dialed: HashMap::new(),
            addr_dialed: HashMap::new(),
            banned: HashSet::new(),
            punched: 0,
            punch_failed: 0,
        }
    }

    /// Adds a peer to keep dialing, and dials it now unless it is connected or kept away.
    pub fn add_peer(&mut self, swarm: &mut Swarm<Behaviour>, addr: Multiaddr) {
        self.addr_dialed.remove(&addr);
        self.dial(swarm, &addr);
        if !self.peers.contains(&addr) {
            self.peers.push(addr);
        }
    }

    /// A round: dial what is not connected, renew what runs out, ask for new members, save
    /// the address book.
    pub fn tick(&mut self, swarm: &mut Swarm<Behaviour>, banned: &HashSet<PeerId>) {
        self.banned = banned.clone();
        for index in 0..self.bootstrap.len() {
            let addr = self.bootstrap[index].addr.clone();
            self.dial(swarm, &addr);
            if swarm.is_connected(&self.bootstrap[index].peer) {
                self.serve_bootstrap(swarm, index);
            }
        }
        self.dial_known(swarm);
        self.book.save();
    }

    fn dial(&mut self, swarm: &mut Swarm<Behaviour>, addr: &Multiaddr) {
        if let Some(peer) = peer_of(addr)
            && (swarm.is_connected(&peer) || self.banned.contains(&peer))
        {
            return;
        }
        let now = Instant::now();
        if self
            .addr_dialed
            .get(addr)
            .is_some_and(|at| now.duration_since(*at) < DIAL_PATIENCE)
        {
            return;
        }
        self.addr_dialed.insert(addr.clone(), now);
        if let Err(e) = swarm.dial(addr.clone()) {
            debug!(%addr, error = %e, "dial failed");
        }
    }

    /// Dials the configured peers and, a few at a time, the address book's.
    fn dial_known(&mut self, swarm: &mut Swarm<Behaviour>) {
        for addr in self.peers.clone() {
            self.dial(swarm, &addr);
        }
        let now = Instant::now();
        let mut dials = 0;
        for (peer, addrs) in self.book.peers() {
            if dials == DIALS_PER_ROUND {
                break;
            }
            let recent = self
                .dialed
                .get(&peer)
                .is_some_and(|at| now.duration_since(*at) < REDIAL_AFTER);
            if peer == self.me || swarm.is_connected(&peer) || self.banned.contains(&peer) || recent
            {
                continue;
            }
            self.dialed.insert(peer, now);
            dials += 1;
            dial_peer(swarm, peer, addrs);
        }
    }

    /// Reserves on, registers at and discovers through the connected bootstrap node `index`,
    /// as far as each is due.
    fn serve_bootstrap(&mut self, swarm: &mut Swarm<Behaviour>, index: usize) {
        let now = Instant::now();
        let node = &mut self.bootstrap[index];
        if node.reservation.is_none() {
            match swarm.listen_on(node.addr.clone().with(Protocol::P2pCircuit)) {
                Ok(listener) => node.reservation = Some((listener, None)),
                Err(e) => debug!(addr = %node.addr, error = %e, "cannot reserve on the relay"),
            }
        }
        if node.registered_until.is_none_or(|until| until <= now)
            && swarm.external_addresses().next().is_some()
        {
            for key in &self.keys {
                if let Err(e) =
                    swarm
                        .behaviour_mut()
                        .rendezvous
                        .register(key.clone(), node.peer, None)
                {
                    debug!(error = %e, "cannot register at the rendezvous point");
                }
            }
            // Until the answer says for how long; asked again next round if it never comes.
            node.registered_until = Some(now + Duration::from_secs(30));
        }
        if node
            .discovered_at
            .is_none_or(|at| now.duration_since(at) >= DISCOVER_EVERY)
        {
            node.discovered_at = Some(now);
            for key in &self.keys {
                let cookie = node.cookies.get(key).cloned();
                swarm.behaviour_mut().rendezvous.discover(
                    Some(key.clone()),
                    cookie,
                    None,
                    node.peer,
                );
            }
        }
    }

    /// A connection opened. A bootstrap node is served at once; a direct connection makes
    /// any relayed one to the same peer redundant, and it is closed so traffic stays off the
    /// relay.
    pub fn connected(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        peer: PeerId,
        connection: ConnectionId,
        remote: Multiaddr,
    ) {
        let relayed = is_relayed(&remote);
        self.connections.insert(connection, (peer, remote));
        if let Some(index) = self.bootstrap.iter().position(|b| b.peer == peer) {
            let addr = self.bootstrap[index].addr.clone();
            swarm.behaviour_mut().autonat.add_server(peer, Some(addr));
            self.serve_bootstrap(swarm, index);
            // Peers reached through this relay can be dialed now, not at the next round.
            self.dialed.clear();
            self.dial_known(swarm);
        }
        let redundant: Vec<ConnectionId> = self
            .connections
            .iter()
            .filter(|(id, (p, addr))| {
                *p == peer
                    && if relayed {
                        **id == connection && self.has_direct(peer)
                    } else {
                        is_relayed(addr)
                    }
            })
            .map(|(id, _)| *id)
            .collect();
        for id in redundant {
            debug!(%peer, "closing a relayed connection: a direct one is open");
            swarm.close_connection(id);
        }
    }

    fn has_direct(&self, peer: PeerId) -> bool {
        self.connections
            .values()
            .any(|(p, addr)| *p == peer && !is_relayed(addr))
    }

    /// A connection closed.
    pub fn closed(&mut self, connection: ConnectionId) {
        self.connections.remove(&connection);
    }

    /// A listener has an address: a relayed one means the reservation was accepted, and the
    /// address is where others reach this node.
    pub fn listening(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        listener: ListenerId,
        address: Multiaddr,
    ) {
        if let Some(node) = self.bootstrap.iter_mut().find(|b| {
            b.reservation
                .as_ref()
                .is_some_and(|(id, _)| *id == listener)
        }) {
            info!(addr = %address, "reserved on a relay: reachable through it");
            node.reservation = Some((listener, Some(address.clone())));
            node.registered_until = None;
            swarm.add_external_address(address);
        }
    }

    /// A new address others reach this node at (a relayed one, or one AutoNAT confirmed):
    /// register it at every rendezvous point now, where the members look.
    pub fn external_confirmed(&mut self, swarm: &mut Swarm<Behaviour>) {
        for index in 0..self.bootstrap.len() {
            self.bootstrap[index].registered_until = None;
            if swarm.is_connected(&self.bootstrap[index].peer) {
                self.serve_bootstrap(swarm, index);
            }
        }
    }

    /// A listener closed: a reservation that ended is asked again next round.
    pub fn listener_closed(&mut self, swarm: &mut Swarm<Behaviour>, listener: ListenerId) {
        for node in &mut self.bootstrap {
            if let Some((id, address)) = &node.reservation
                && *id == listener
            {
                if let Some(address) = address {
                    swarm.remove_external_address(address);
                }
                node.reservation = None;
            }
        }
    }

    /// `peer` announced `addrs` (identify).
    pub fn announced(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        self.announced.insert(peer, addrs);
    }

    /// `peer` proved it holds a namespace held here (it answered a heads request): remember
    /// where it is.
    pub fn member(&mut self, peer: PeerId) {
        let mut addrs: Vec<Multiaddr> = self
            .connections
            .values()
            .filter(|(p, addr)| *p == peer && !is_relayed(addr))
            .map(|(_, addr)| addr.clone())
            .collect();
        addrs.extend(self.announced.get(&peer).into_iter().flatten().cloned());
        self.book.seen(peer, addrs);
    }

    pub fn on_relay(&mut self, event: relay::client::Event) {
        if let relay::client::Event::ReservationReqAccepted {
            relay_peer_id,
            renewal: false,
            ..
        } = event
        {
            debug!(relay = %relay_peer_id, "reservation accepted");
        }
    }

    pub fn on_rendezvous(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        event: rendezvous::client::Event,
    ) {
        match event {
            rendezvous::client::Event::Registered {
                rendezvous_node,
                ttl,
                ..
            } => {
                if let Some(node) = self
                    .bootstrap
                    .iter_mut()
                    .find(|b| b.peer == rendezvous_node)
                {
                    // Renewed at half the lifetime, so a registration never lapses.
                    node.registered_until = Some(Instant::now() + Duration::from_secs(ttl / 2));
                }
            }
            rendezvous::client::Event::Discovered {
                rendezvous_node,
                registrations,
                cookie,
            } => {
                for registration in registrations {
                    let peer = registration.record.peer_id();
                    if peer == self.me || swarm.is_connected(&peer) {
                        continue;
                    }
                    debug!(%peer, "found a member at a rendezvous point");
                    if let Some(node) = self
                        .bootstrap
                        .iter_mut()
                        .find(|b| b.peer == rendezvous_node)
                    {
                        node.cookies
                            .insert(registration.namespace.clone(), cookie.clone());
                    }
                    dial_peer(swarm, peer, registration.record.addresses().to_vec());
                }
            }
            rendezvous::client::Event::RegisterFailed { error, .. } => {
                debug!(?error, "registration refused");
            }
            rendezvous::client::Event::DiscoverFailed { error, .. } => {
                debug!(?error, "discovery refused");
            }
            rendezvous::client::Event::Expired { .. } => {}
        }
    }

    pub fn on_autonat(&mut self, event: autonat::Event) {
        if let autonat::Event::StatusChanged { new, .. } = event {
            self.nat = match new {
                autonat::NatStatus::Public(_) => Reachability::Public,
                autonat::NatStatus::Private => Reachability::Private,
                autonat::NatStatus::Unknown => Reachability::Unknown,
            };
            info!(reachability = ?self.nat, "reachability");
        }
    }

    pub fn on_dcutr(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(_) => {
                self.punched += 1;
                info!(peer = %event.remote_peer_id, "hole punched: a direct connection");
            }
            Err(e) => {
                self.punch_failed += 1;
                debug!(peer = %event.remote_peer_id, error = %e, "hole punching failed; staying relayed");
            }
        }
    }

    /// How this node is reached, and its reservations.
    pub fn status(&self) -> (Reachability, Vec<Reservation>, u64, u64) {
        let reservations = self
            .bootstrap
            .iter()
            .map(|b| Reservation {
                relay: b.addr.to_string(),
                address: b
                    .reservation
                    .as_ref()
                    .and_then(|(_, address)| address.as_ref())
                    .map(ToString::to_string),
            })
            .collect();
        (self.nat, reservations, self.punched, self.punch_failed)
    }

    /// The address of the connection to `peer` status shows: a direct one if any.
    pub fn connection_of(&self, peer: &PeerId) -> Option<&Multiaddr> {
        let mut addrs = self.connections.values().filter(|(p, _)| p == peer);
        let first = addrs.next().map(|(_, addr)| addr)?;
        Some(
            addrs
                .map(|(_, addr)| addr)
                .chain(std::iter::once(first))
                .find(|addr| !is_relayed(addr))
                .unwrap_or(first),
        )
    }
}

fn dial_peer(swarm: &mut Swarm<Behaviour>, peer: PeerId, addrs: Vec<Multiaddr>) {
    let opts = DialOpts::peer_id(peer)
        .addresses(addrs)
        .condition(PeerCondition::DisconnectedAndNotDialing)
        .build();
    if let Err(e) = swarm.dial(opts) {
        debug!(%peer, error = %e, "dial failed");
    }
}

/// The peer an address ends in.
pub(crate) fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().last().and_then(|p| match p {
        Protocol::P2p(peer) => Some(peer),
        _ => None,
    })
}

/// Whether `addr` goes through a relay.
pub(crate) fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}
