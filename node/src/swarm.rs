//! The libp2p side of a node: its behaviours, the transport, listening (with the fallback
//! off a taken default port), and the sync protocol's codec as libp2p's request-response
//! wants it, over [`crate::sync`]'s plain reads and writes.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, MessageId};
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, autonat, dcutr, identify, mdns, ping, relay,
    rendezvous,
};
use tracing::warn;

use crate::config::NodeConfig;
use crate::node::NodeError;
use crate::sync::{self, Peer};
use crate::transport::{self, WireCounters};
use crate::wire::{self, MAX_PUSH, Request, Response};

/// How often each connection is pinged.
const PING_INTERVAL: Duration = Duration::from_secs(120);

/// What identify calls weft's protocol.
pub(crate) const IDENTIFY_PROTOCOL: &str = "/weft/1";

impl Peer for PeerId {
    fn id_bytes(&self) -> Vec<u8> {
        self.to_bytes()
    }
}

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub gossipsub: gossipsub::Behaviour,
    pub sync: request_response::Behaviour<SyncCodec>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub relay_client: relay::client::Behaviour,
    pub dcutr: dcutr::Behaviour,
    pub autonat: autonat::Behaviour,
    pub rendezvous: rendezvous::client::Behaviour,
}

pub(crate) fn build_swarm(
    key: &Keypair,
    config: &NodeConfig,
    counters: Arc<WireCounters>,
) -> Result<Swarm<Behaviour>, NodeError> {
    let transport_error = |e: &dyn std::fmt::Display| NodeError::Transport(e.to_string());
    let peer_id = key.public().to_peer_id();
    let (relayed, relay_client) = relay::client::new(peer_id);
    let transport =
        transport::build(key, counters, Some(relayed)).map_err(|e| transport_error(&e))?;
    let gossip_config = gossipsub::ConfigBuilder::default()
        // A mesh of 4 rather than libp2p's 6: each mesh peer beyond the first sends a node a
        // duplicate of every push (or an IDONTWANT for it), and a push is mostly proof, so in
        // W9 (20 nodes, 5 links each) this cut the gossip from 7.1-7.5 to 6.1-6.3 wire bytes
        // per entry byte per node at the same latency. Three paths in still survive a lost or
        // hostile mesh peer, and head exchange mends what gossip misses.
        .mesh_n(4)
        .mesh_n_low(3)
        .mesh_n_high(6)
        .mesh_outbound_min(2)
        // Entries carry their authors' signatures: libp2p's own signing would be wasted work,
        // and anonymous messages need an id from their content to be told apart.
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        // 20 bytes of the hash: every IDONTWANT and IHAVE names messages by it, and 160 bits
        // leave no collision within reach.
        .message_id_fn(|message| {
            MessageId::from(blake3::hash(&message.data).as_bytes()[..MESSAGE_ID].to_vec())
        })
        .validate_messages()
        .max_transmit_size(MAX_PUSH)
        .heartbeat_interval(Duration::from_millis(500))
        // A push of one small entry is about 300 bytes, under libp2p's 1,000-byte default,
        // so without this mesh peers were never told not to send a push already here.
        .idontwant_message_size_threshold(200)
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
                warn!(error = %e, "mDNS is unavailable; peers must be given explicitly");
                None
            }
        }
    } else {
        None
    };
    let behaviour = Behaviour {
        gossipsub,
        sync,
        identify: identify::Behaviour::new(identify::Config::new(
            IDENTIFY_PROTOCOL.into(),
            key.public(),
        )),
        // A ping every two minutes rather than libp2p's 15 s: weft reads nothing from it but
        // the round-trip time (a failed ping closes nothing), sync rounds already cross an
        // idle connection every few minutes, and once a minute it was a third of W8's idle
        // traffic (368 of about 1,070 bytes a minute, 184 each way).
        ping: ping::Behaviour::new(ping::Config::new().with_interval(PING_INTERVAL)),
        mdns: Toggle::from(mdns),
        relay_client,
        dcutr: dcutr::Behaviour::new(peer_id),
        autonat: autonat::Behaviour::new(
            peer_id,
            autonat::Config {
                only_global_ips: !config.nat_probe_private,
                ..autonat::Config::default()
            },
        ),
        rendezvous: rendezvous::client::Behaviour::new(key.clone()),
    };
    Ok(Swarm::new(
        transport,
        behaviour,
        peer_id,
        libp2p::swarm::Config::with_tokio_executor()
            .with_idle_connection_timeout(Duration::from_secs(120)),
    ))
}

/// Bytes of a gossip message id.
const MESSAGE_ID: usize = 20;

/// Gossip scoring per namespace topic: invalid messages (bad signature or proof, garbage)
/// weigh heavily. Delivery-rate penalties are off: a quiet namespace is normal, and the
/// defaults would graylist honest peers of one for not sending enough.
pub(crate) fn topic_score_params() -> gossipsub::TopicScoreParams {
    gossipsub::TopicScoreParams {
        topic_weight: 1.0,
        invalid_message_deliveries_weight: -100.0,
        invalid_message_deliveries_decay: 0.5,
        mesh_message_deliveries_weight: 0.0,
        mesh_failure_penalty_weight: 0.0,
        ..gossipsub::TopicScoreParams::default()
    }
}

/// Events kept while [`listen_all`] waits, for the node to act on once it runs: a peer on the
/// LAN can find a starting node by mDNS and ask it something within milliseconds, and a
/// request dropped unanswered would look to that peer like a broken answer. Past this many,
/// later ones are dropped; their askers see a failed request, which costs them nothing.
const EARLY_EVENTS: usize = 1024;

/// What [`listen_all`] found.
pub(crate) struct Listening<E> {
    /// Every listener's addresses.
    pub addrs: Vec<Multiaddr>,
    /// Every other event that came meanwhile, in order.
    pub early: Vec<SwarmEvent<E>>,
}

/// Listens on every address, falling back to an OS-picked port when the default port is taken,
/// and waits for each listener's first address.
pub(crate) async fn listen_all<B: NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    addrs: &[Multiaddr],
) -> Result<Listening<B::ToSwarm>, NodeError> {
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
    let mut early = Vec::new();
    let mut keep = |event: SwarmEvent<B::ToSwarm>| {
        if early.len() < EARLY_EVENTS {
            early.push(event);
        }
    };
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
                other => keep(other),
            },
            _ = &mut deadline => break,
        }
    }
    // A listener on every interface reports one address per interface, in quick succession;
    // one on a given address reports just that one, and the node need not wait.
    if !addrs.iter().any(on_every_interface) {
        return Ok(Listening {
            addrs: found,
            early,
        });
    }
    let settle = tokio::time::sleep(Duration::from_millis(200));
    tokio::pin!(settle);
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => found.push(address),
                other => keep(other),
            },
            _ = &mut settle => break,
        }
    }
    Ok(Listening {
        addrs: found,
        early,
    })
}

/// Whether `addr` listens on every interface (`0.0.0.0` or `::`).
fn on_every_interface(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => ip.is_unspecified(),
        Protocol::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
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

/// The sync protocol's codec: one capped message per stream direction
/// ([`crate::sync::read_request`] and the rest).
#[derive(Clone, Default)]
pub(crate) struct SyncCodec;

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> std::io::Result<Request>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(sync::read_request(io).await?)
    }

    async fn read_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
    ) -> std::io::Result<Response>
    where
        T: futures::AsyncRead + Unpin + Send,
    {
        Ok(sync::read_response(io).await?)
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
        Ok(sync::write_request(io, &request).await?)
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
        Ok(sync::write_response(io, &response).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_listener_on_every_interface_waits_for_more_addresses() {
        for (addr, every) in [
            ("/ip4/0.0.0.0/tcp/0", true),
            ("/ip6/::/udp/0/quic-v1", true),
            ("/ip4/127.0.0.1/tcp/0", false),
            ("/ip4/192.0.2.1/tcp/4919", false),
        ] {
            let addr: Multiaddr = addr.parse().expect("a multiaddr");
            assert_eq!(on_every_interface(&addr), every, "{addr}");
        }
    }
}
