//! What a node reports about itself: peers, feeds, wire bytes and whether it has caught up.

use serde::{Deserialize, Serialize};
use weft_storage::{AuthorId, NamespaceId};

/// What a node reports about itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's peer id.
    pub peer_id: String,
    /// Where it listens.
    pub listen: Vec<String>,
    /// Connected peers.
    pub peers: Vec<PeerStatus>,
    /// Every feed the node knows of.
    pub feeds: Vec<FeedStatus>,
    /// Bytes written and read on TCP connections.
    pub wire_sent: u64,
    /// See `wire_sent`.
    pub wire_received: u64,
    /// Completed head exchanges: sync is caught up once one has happened and no feed is
    /// behind.
    pub head_exchanges: u64,
    /// Requests peers refused: busy, or asking for what they do not hold or share.
    pub refusals: u64,
    /// The current sync round (one every sync interval, or when `weft sync` asks for one).
    pub round: u64,
    /// The latest round whose head exchanges have ended with every connected peer: once it
    /// reaches a round, what the peers held when that round began has been advertised here.
    pub exchanged_round: u64,
    /// Whether runs are being fetched or ingested.
    pub syncing: bool,
    /// Whether others can dial this node, as AutoNAT found.
    pub reachability: Reachability,
    /// A reservation per bootstrap relay: where others reach this node through it, once
    /// accepted.
    pub reservations: Vec<Reservation>,
    /// Relayed connections upgraded to direct ones by hole punching, and attempts that failed.
    pub hole_punches: (u64, u64),
    /// Peers cut off for sending bad data, and why, while they are kept away.
    pub bans: Vec<BanStatus>,
}

/// Whether others can dial a node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reachability {
    /// Not known yet: AutoNAT has not asked enough peers.
    #[default]
    Unknown,
    /// Peers dialed it back at a public address.
    Public,
    /// Peers could not dial it back: it is behind a NAT or firewall, and reachable only through
    /// a relay or by hole punching.
    Private,
}

impl std::fmt::Display for Reachability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        })
    }
}

/// A reservation asked of a bootstrap relay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    /// The relay.
    pub relay: String,
    /// The relayed address others dial, once the relay accepted.
    pub address: Option<String>,
}

/// A connected peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its peer id.
    pub id: String,
    /// The address of the connection to it (a direct one, when there is one).
    pub address: String,
    /// Whether that connection goes through a relay.
    pub relayed: bool,
}

/// A peer this node cut off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanStatus {
    /// Its peer id.
    pub peer: String,
    /// What it sent that did not verify, as the log said.
    pub reason: String,
    /// Seconds until it may connect again.
    pub seconds_left: u64,
}

/// A feed as the node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedStatus {
    /// Its namespace.
    pub namespace: NamespaceId,
    /// Its author.
    pub author: AuthorId,
    /// Entries stored here.
    pub held: u64,
    /// The longest length a connected peer advertised and may still send.
    pub best_remote: u64,
    /// The longest length a connected peer advertised past `held` and then did not send, as
    /// a replica does past an entry it pruned, or one holding a head ahead of its entries;
    /// 0 when none.
    pub unserved: u64,
}

impl Status {
    /// Whether a head exchange has happened and every feed holds what peers advertised and
    /// will send. A feed held short of what a peer would not send still counts as caught up
    /// here: see [`Status::held_short`].
    pub fn caught_up(&self) -> bool {
        self.head_exchanges > 0
            && !self.syncing
            && self.feeds.iter().all(|f| f.held >= f.best_remote)
    }

    /// The feeds held short of what a connected peer advertised, because it did not send the
    /// entries that come next: it pruned them, or has not fetched them yet.
    pub fn held_short(&self) -> impl Iterator<Item = &FeedStatus> {
        self.feeds.iter().filter(|f| f.unserved > f.held)
    }
}
