//! The string one device hands another to share a namespace: its id and where to find a peer.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};
use weft_storage::NamespaceId;

/// Every ticket starts with this, so a ticket is recognisable and its format versioned.
const PREFIX: &str = "weft1";

/// A namespace and the addresses of peers holding it. Written as `weft1` followed by the
/// URL-safe base64 (no padding) of the postcard encoding of [`TicketBody`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ticket {
    /// The namespace shared.
    pub namespace: NamespaceId,
    /// Addresses of peers that hold it, each ending in `/p2p/<peer id>`.
    pub peers: Vec<Multiaddr>,
}

#[derive(Serialize, Deserialize)]
struct TicketBody {
    namespace: [u8; 32],
    peers: Vec<Vec<u8>>,
}

/// Why a string is not a ticket.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a weft ticket ({0}); copy the whole string `weft ticket` printed")]
pub struct BadTicket(&'static str);

impl fmt::Display for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let body = TicketBody {
            namespace: self.namespace.0,
            peers: self.peers.iter().map(|a| a.to_vec()).collect(),
        };
        let bytes = postcard::to_allocvec(&body).expect("tickets always encode");
        write!(f, "{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl FromStr for Ticket {
    type Err = BadTicket;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(BadTicket("it does not start with weft1"))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(rest)
            .map_err(|_| BadTicket("it is not base64"))?;
        let body: TicketBody =
            postcard::from_bytes(&bytes).map_err(|_| BadTicket("it is truncated or damaged"))?;
        let peers = body
            .peers
            .into_iter()
            .map(Multiaddr::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| BadTicket("it holds a bad address"))?;
        Ok(Ticket {
            namespace: NamespaceId(body.namespace),
            peers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_round_trip_and_damage_is_refused() {
        let ticket = Ticket {
            namespace: NamespaceId([7; 32]),
            peers: vec![
                "/ip4/127.0.0.1/tcp/4919/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
                    .parse()
                    .expect("addr"),
            ],
        };
        let text = ticket.to_string();
        assert!(text.starts_with("weft1"));
        assert!(!text.contains(char::is_whitespace));
        assert_eq!(text.parse::<Ticket>(), Ok(ticket));
        assert!("weft2abc".parse::<Ticket>().is_err());
        assert!("weft1!!!".parse::<Ticket>().is_err());
        assert!(text[..text.len() - 5].parse::<Ticket>().is_err());
    }
}
