//! The sync protocol, with no libp2p in it: the node and the simulation (`tests/sim.rs`) run
//! the same code, and only move bytes and store jobs for it.
//!
//! # Layout
//! - [`Client`] (`client.rs`): the asking side. Fed what happens (connections, answers,
//!   finished store jobs, gossip), it returns [`Action`]s (`actions.rs`): requests to send,
//!   store jobs to run ([`Job`], `jobs.rs`), peers to cut off for a [`Fault`], gossip to
//!   publish and to validate.
//! - [`Scheduler`] (`scheduler.rs`): which runs to ask which peer for, within bounds.
//! - [`Server`] and [`answer`] (`server.rs`): which requests are answered, and the answers,
//!   read from the store.
//! - `ranges.rs`: heads reconciliation by ranges of feeds, for peers whose digests differ.
//! - `holdings.rs`: what a replica holds when a client starts from it.
//! - `remote.rs`: remote reads in flight.
//! - `rounds.rs`: sync rounds: their numbers, the exchanges of each that ended, and when the
//!   timer starts the next.
//! - `codec.rs`: the messages' bytes on a stream, with size caps.
//!
//! # States of a feed
//! | state | event | next |
//! |---|---|---|
//! | idle | a peer advertises more than is held | asked (one run request in flight) |
//! | asked | the run asked for arrives | queued (the next run may be asked at once, up to [`MAX_QUEUED_PER_FEED`] queued) |
//! | asked | refused as busy, failed, or the peer left | idle (ask again, maybe another peer) |
//! | asked | a run not asked for, or one that does not verify | idle; the peer is cut off |
//! | queued | ingested | idle, or asked if more is advertised |
//! | queued | ingest refused or the store busy | idle from what is held |
//! | any | a fork proof of the feed | frozen: nothing more is asked |

mod actions;
mod client;
mod codec;
mod holdings;
mod jobs;
mod ranges;
mod remote;
mod rounds;
mod scheduler;
mod server;

use std::fmt::Debug;
use std::hash::Hash;

pub use actions::{Action, Blame, Fault, ForkStep, Pending, Verdict};
pub use client::{Client, MAX_HEAD_PAGES};
pub use codec::{
    MAX_REQUEST, MAX_RESPONSE, read_request, read_response, write_request, write_response,
};
pub use holdings::Holdings;
pub use jobs::{Done, Job, local_length, read_push};
pub use rounds::{MAX_QUIET_DOUBLINGS, timer_phase};
pub use scheduler::{
    FeedProgress, MAX_OUTSTANDING, MAX_PER_PEER, MAX_QUEUED_PER_FEED, Scheduler, Want,
};
pub use server::{
    REQUEST_BURST, REQUESTS_PER_SECOND, SERVING_PER_PEER, Server, answer, answer_matching,
    heads_digest,
};
use weft_storage::{AuthorId, NamespaceId};

/// A feed: an author's log in a namespace.
pub type FeedId = (NamespaceId, AuthorId);

/// A peer as the protocol sees it: something to tell peers apart by, with the bytes of its
/// id that capabilities bind ([`crate::access::Cap`]).
pub trait Peer: Clone + Eq + Hash + Debug {
    /// The peer's id as capabilities bind it: for a libp2p peer, its peer id's bytes.
    fn id_bytes(&self) -> Vec<u8>;
}
