//! The string one device hands another to share a namespace: its id and where to find a peer.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use weft_storage::{Charter, Interest, Options, Store};

use crate::config::is_unspecified;

/// Every ticket starts with this, so a ticket is recognisable and its format versioned.
const PREFIX: &str = "weft3";

/// The previous format, without bootstrap nodes, still read.
const PREFIX_2: &str = "weft2";

/// A namespace, the addresses of peers holding it, the bootstrap nodes they use and, in a
/// write ticket for a closed namespace, an author key the owner has granted. Written as
/// `weft3` followed by the URL-safe base64 (no padding) of the postcard encoding of
/// `TicketBody` (`docs/format.md`).
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The namespace's charter, signed by its key: the joining device learns who may write
    /// from the namespace key itself.
    pub charter: Charter,
    /// Addresses of peers that hold it, each ending in `/p2p/<peer id>`.
    pub peers: Vec<Multiaddr>,
    /// A write ticket's author secret key: whoever holds the ticket writes as that author.
    pub author_key: Option<[u8; 32]>,
    /// Bootstrap nodes (relays and rendezvous points) the namespace's members use, each
    /// ending in `/p2p/<peer id>`: how a device reaches the others across networks, and finds
    /// them again when their addresses change.
    pub bootstrap: Vec<Multiaddr>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The author key is a secret: never in logs.
        f.debug_struct("Ticket")
            .field("namespace", &self.charter.namespace)
            .field("peers", &self.peers)
            .field("write", &self.author_key.is_some())
            .field("bootstrap", &self.bootstrap)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct TicketBody {
    charter: Charter,
    peers: Vec<Vec<u8>>,
    author_key: Option<[u8; 32]>,
    bootstrap: Vec<Vec<u8>>,
}

/// A `weft2` ticket's body.
#[derive(Deserialize)]
struct TicketBody2 {
    charter: Charter,
    peers: Vec<Vec<u8>>,
    author_key: Option<[u8; 32]>,
}

/// Why a string is not a ticket.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a weft ticket ({0}); copy the whole ticket")]
pub struct BadTicket(&'static str);

/// Why a replica could not be made from a ticket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The store could not be made, e.g. `dir` already holds a replica.
    #[error(transparent)]
    Store(#[from] weft_storage::Error),
    /// The ticket's peers could not be saved in the config file.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

impl Ticket {
    /// Makes a replica in `dir` of the ticket's namespace, writing as the ticket's author when
    /// it carries one, and saves its peers in the config file as bootstrap peers. With
    /// `interest`, a sparse replica of the keys under it.
    ///
    /// # Errors
    /// [`JoinError`].
    pub fn join(
        &self,
        dir: &Path,
        options: Options,
        interest: Option<Interest>,
    ) -> Result<Store, JoinError> {
        let store = Store::init_joined(dir, options, &self.charter, self.author_key)?;
        if let Some(interest) = interest {
            store.set_interest(&self.charter.namespace, interest)?;
        }
        crate::config::ConfigFile {
            peers: self.peers.clone(),
            bootstrap: self.bootstrap.clone(),
            ..crate::config::ConfigFile::default()
        }
        .save(dir)?;
        Ok(store)
    }
}

impl Ticket {
    /// The ticket a replica hands out: the charter and author key an
    /// [`ApiRequest::Share`](crate::api::ApiRequest::Share) returned, and the addresses its
    /// node `peer` listens on, each given `/p2p/<peer>`. Addresses no peer can dial (every
    /// interface, `0.0.0.0` or `::`) are left out.
    pub fn mint(
        charter: Charter,
        author_key: Option<[u8; 32]>,
        peer: PeerId,
        listen: impl IntoIterator<Item = Multiaddr>,
        bootstrap: Vec<Multiaddr>,
    ) -> Ticket {
        Ticket {
            charter,
            author_key,
            peers: dialable(peer, listen),
            bootstrap,
        }
    }

    /// Whether the ticket only works on the network it was made on: none of its peers has
    /// an address that another network could reach (all private, link-local or loopback),
    /// and it names no bootstrap node.
    pub fn local_only(&self) -> bool {
        self.bootstrap.is_empty() && self.peers.iter().all(is_local)
    }
}

/// The addresses of `listen` another peer can dial, each ending in `/p2p/<peer>`: what a
/// ticket carries of a node listening there.
pub fn dialable(peer: PeerId, listen: impl IntoIterator<Item = Multiaddr>) -> Vec<Multiaddr> {
    listen
        .into_iter()
        .filter(|addr| !is_unspecified(addr))
        .map(|addr| match addr.iter().last() {
            Some(Protocol::P2p(_)) => addr,
            _ => addr.with(Protocol::P2p(peer)),
        })
        .collect()
}

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = TicketBody {
            charter: self.charter.clone(),
            peers: self.peers.iter().map(|a| a.to_vec()).collect(),
            author_key: self.author_key,
            bootstrap: self.bootstrap.iter().map(|a| a.to_vec()).collect(),
        };
        let bytes = postcard::to_allocvec(&body).expect("tickets always encode");
        write!(f, "{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl FromStr for Ticket {
    type Err = BadTicket;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (body, old) = match (s.strip_prefix(PREFIX), s.strip_prefix(PREFIX_2)) {
            (Some(body), _) => (body, false),
            (None, Some(body)) => (body, true),
            (None, None) => return Err(BadTicket("it does not start with weft3")),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| BadTicket("it is not base64"))?;
        let damaged = |_| BadTicket("it is truncated or damaged");
        let body: TicketBody = if old {
            let body: TicketBody2 = postcard::from_bytes(&bytes).map_err(damaged)?;
            TicketBody {
                charter: body.charter,
                peers: body.peers,
                author_key: body.author_key,
                bootstrap: Vec::new(),
            }
        } else {
            postcard::from_bytes(&bytes).map_err(damaged)?
        };
        body.charter
            .verify()
            .map_err(|_| BadTicket("its charter is not signed by the namespace key"))?;
        let addrs = |list: Vec<Vec<u8>>| {
            list.into_iter()
                .map(Multiaddr::try_from)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| BadTicket("it holds a bad address"))
        };
        Ok(Ticket {
            charter: body.charter,
            peers: addrs(body.peers)?,
            author_key: body.author_key,
            bootstrap: addrs(body.bootstrap)?,
        })
    }
}

/// Whether `addr` can only be reached on its own network: private, link-local, loopback or
/// every interface.
fn is_local(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => {
            ip.is_private() || ip.is_loopback() || ip.is_link_local() || ip.is_unspecified()
        }
        Protocol::Ip6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_unicast_link_local()
                || ip.is_unique_local()
        }
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weft_storage::Mode;

    #[test]
    fn tickets_round_trip_and_damage_is_refused() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let ticket = Ticket {
            charter: Charter::sign(&key, Mode::Open),
            peers: vec![
                "/ip4/127.0.0.1/tcp/4919/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
                    .parse()
                    .expect("addr"),
            ],
            author_key: Some([9; 32]),
            bootstrap: vec![
                "/ip4/203.0.113.10/tcp/4919/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
                    .parse()
                    .expect("addr"),
            ],
        };
        let text = ticket.to_string();
        assert!(text.starts_with("weft3"));
        assert!(!text.contains(char::is_whitespace));
        assert_eq!(text.parse::<Ticket>(), Ok(ticket.clone()));
        assert!(
            !format!("{ticket:?}").contains("9, 9"),
            "the secret is in Debug"
        );
        assert!("weft1abc".parse::<Ticket>().is_err());
        assert!("weft2!!!".parse::<Ticket>().is_err());
        assert!(text[..text.len() - 5].parse::<Ticket>().is_err());

        // Minted from a node's listen addresses: dialable ones only, each naming the node.
        let peer = PeerId::random();
        let minted = Ticket::mint(
            ticket.charter.clone(),
            None,
            peer,
            [
                "/ip4/0.0.0.0/tcp/1",
                "/ip4/192.0.2.1/tcp/2",
                "/ip6/::/udp/3/quic-v1",
            ]
            .map(|a| a.parse::<Multiaddr>().expect("addr")),
            Vec::new(),
        );
        assert_eq!(
            minted.peers,
            vec![
                "/ip4/192.0.2.1/tcp/2"
                    .parse::<Multiaddr>()
                    .expect("addr")
                    .with(Protocol::P2p(peer))
            ]
        );

        // A charter the namespace key did not sign: someone claiming an open namespace.
        let mut forged = ticket;
        forged.charter.mode = Mode::Closed {
            owner: weft_storage::AuthorId([1; 32]),
        };
        assert_eq!(
            forged.to_string().parse::<Ticket>(),
            Err(BadTicket("its charter is not signed by the namespace key"))
        );
    }
}
