//! A relay and bootstrap node (`weft node --relay`): circuit relay v2 for devices that cannot
//! be dialed, a rendezvous point where the members of a namespace find each other under a
//! key derived from it, and AutoNAT answers so devices learn whether they are reachable.
//!
//! It holds no replica and joins no namespace. What it relays is end-to-end encrypted
//! (noise inside the circuit) and the sync messages inside are capability-checked and sealed;
//! the rendezvous keys are hashes of namespace ids. It learns peer ids, addresses and traffic
//! volume, as any observer of the network does, and nothing more.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, autonat, identify, ping, relay, rendezvous};
use tracing::{debug, info};

use crate::config::RelayLimits;
use crate::node::NodeError;
use crate::shutdown::Shutdown;
use crate::swarm::{IDENTIFY_PROTOCOL, listen_all};
use crate::transport::{self, WireCounters};

/// How often a relay logs what it carries.
const REPORT: Duration = Duration::from_secs(60);

/// Rendezvous registrations one peer may hold: one per namespace it is a member of.
const REGISTRATIONS_PER_PEER: usize = 64;

#[derive(NetworkBehaviour)]
struct RelayBehaviour {
    relay: relay::Behaviour,
    rendezvous: rendezvous::server::Behaviour,
    autonat: autonat::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// A running relay's counts, as its log reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayCounts {
    /// Reservations accepted since start.
    pub reservations: u64,
    /// Circuits opened since start.
    pub circuits: u64,
    /// Circuits that ended since start.
    pub circuits_closed: u64,
}

/// A relay node, listening, not yet serving.
pub struct RelayNode {
    swarm: Swarm<RelayBehaviour>,
    listen: Vec<Multiaddr>,
    counters: Arc<WireCounters>,
}

impl RelayNode {
    /// Listens on `listen` as the node `keypair` names, serving within `limits`. With
    /// `nat_probe_private`, AutoNAT answers probes of private and documentation addresses too
    /// (a test bed, a network of private routers).
    ///
    /// # Errors
    /// [`NodeError::Listen`], [`NodeError::Transport`].
    pub async fn start(
        keypair: Keypair,
        listen: &[Multiaddr],
        limits: RelayLimits,
        nat_probe_private: bool,
    ) -> Result<RelayNode, NodeError> {
        let peer_id = keypair.public().to_peer_id();
        let counters = Arc::new(WireCounters::default());
        let transport = transport::build(&keypair, Arc::clone(&counters), None)
            .map_err(|e| NodeError::Transport(e.to_string()))?;
        let relay_config = relay::Config {
            max_reservations: limits.max_reservations,
            max_reservations_per_peer: limits.max_reservations_per_peer,
            reservation_duration: Duration::from_secs(limits.reservation_secs),
            max_circuits: limits.max_circuits,
            max_circuits_per_peer: limits.max_circuits_per_peer,
            max_circuit_duration: Duration::from_secs(limits.max_circuit_secs),
            max_circuit_bytes: limits.max_circuit_bytes,
            ..relay::Config::default()
        };
        let behaviour = RelayBehaviour {
            relay: relay::Behaviour::new(peer_id, relay_config),
            rendezvous: rendezvous::server::Behaviour::new(
                rendezvous::server::Config::default()
                    .with_max_registration_per_peer(REGISTRATIONS_PER_PEER),
            ),
            autonat: autonat::Behaviour::new(
                peer_id,
                autonat::Config {
                    only_global_ips: !nat_probe_private,
                    ..autonat::Config::default()
                },
            ),
            identify: identify::Behaviour::new(identify::Config::new(
                IDENTIFY_PROTOCOL.into(),
                keypair.public(),
            )),
            ping: ping::Behaviour::new(ping::Config::new()),
        };
        let mut swarm = Swarm::new(
            transport,
            behaviour,
            peer_id,
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(Duration::from_secs(120)),
        );
        // The relay's behaviours answer peers themselves; what they reported while it started
        // is only news.
        let listen = listen_all(&mut swarm, listen).await?.addrs;
        // A relay serves only once it knows an address others reach it at. Listening on
        // loopback alone, it is a relay for this machine.
        let loopback_only = !listen.iter().any(is_routable);
        for addr in &listen {
            if loopback_only || is_routable(addr) {
                swarm.add_external_address(addr.clone());
            }
        }
        Ok(RelayNode {
            swarm,
            listen,
            counters,
        })
    }

    /// The relay's peer id.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// The addresses it listened on at start.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen
    }

    /// Bytes written and read on its TCP connections.
    pub fn counters(&self) -> Arc<WireCounters> {
        Arc::clone(&self.counters)
    }

    /// Serves until `shutdown` fires.
    pub async fn run(mut self, mut shutdown: Shutdown) -> RelayCounts {
        let mut counts = RelayCounts::default();
        let mut report = tokio::time::interval(REPORT);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.wait() => break,
                _ = report.tick() => info!(
                    peers = self.swarm.connected_peers().count(),
                    reservations = counts.reservations,
                    circuits = counts.circuits,
                    circuits_closed = counts.circuits_closed,
                    bytes = self.counters.total(),
                    "relay"
                ),
                event = self.swarm.select_next_some() => self.on_event(event, &mut counts),
            }
        }
        info!("relay stopped");
        counts
    }

    fn on_event(&mut self, event: SwarmEvent<RelayBehaviourEvent>, counts: &mut RelayCounts) {
        match event {
            SwarmEvent::Behaviour(RelayBehaviourEvent::Relay(event)) => {
                match &event {
                    relay::Event::ReservationReqAccepted { .. } => counts.reservations += 1,
                    relay::Event::CircuitReqAccepted { .. } => counts.circuits += 1,
                    relay::Event::CircuitClosed { .. } => counts.circuits_closed += 1,
                    _ => {}
                }
                debug!(?event, "relay");
            }
            // Where peers see this relay is where others can reach it, behind a forwarded port
            // too.
            SwarmEvent::Behaviour(RelayBehaviourEvent::Identify(identify::Event::Received {
                info,
                ..
            })) if is_routable(&info.observed_addr) => {
                self.swarm.add_external_address(info.observed_addr);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                info!(addr = %address, "listening");
                if is_routable(&address) {
                    self.swarm.add_external_address(address);
                }
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. } => debug!(%peer_id, "connected"),
            _ => {}
        }
    }
}

/// Whether another host could dial `addr`: not loopback, not every interface.
fn is_routable(addr: &Multiaddr) -> bool {
    addr.iter().all(|p| match p {
        Protocol::Ip4(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        Protocol::Ip6(ip) => !ip.is_loopback() && !ip.is_unspecified(),
        _ => true,
    })
}
